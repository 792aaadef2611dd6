// openTap's options: their types, and the validation that turns them into
// the addon's arguments before any syscall.

import { constants } from './constants'
import { invalidType, invalidValue } from './errors'
import type {
  NativeBridgePort,
  NativeMacvtapArgs,
  NativeMacvtapConfig,
  NativeOpenConfig,
  NativeOpenOptions,
} from './native'
import { validateAddresses, validateRoutes } from './net'
import {
  type NetnsSpec,
  netnsOf,
  snapshotOptions,
  TUN_PATH,
  type Tristate,
  validateBoolean,
  validateDeviceName,
  validateId,
  validateIfName,
  validateInteger,
  validateMac,
  validateMtu,
  validateName,
  validatePath,
  validateTag,
  validateTristate,
  validateVnetHdrSize,
  VHOST_PATH,
} from './validate'
import { limits } from './limits'

/** TUNSETOFFLOAD flags by name. Missing keys are false. */
export interface Offloads {
  /** TUN_F_CSUM: the guest may send partially checksummed packets. Every other offload needs it. */
  csum?: boolean
  /** TUN_F_TSO4 */
  tso4?: boolean
  /** TUN_F_TSO6 */
  tso6?: boolean
  /** TUN_F_TSO_ECN */
  ecn?: boolean
  /** TUN_F_UFO */
  ufo?: boolean
  /** TUN_F_USO4 (the kernel takes USO4 and USO6 together) */
  uso4?: boolean
  /** TUN_F_USO6 */
  uso6?: boolean
}

const OFFLOAD_BITS: Readonly<Record<keyof Offloads, number>> = Object.freeze({
  csum: constants.TUN_F_CSUM,
  tso4: constants.TUN_F_TSO4,
  tso6: constants.TUN_F_TSO6,
  ecn: constants.TUN_F_TSO_ECN,
  ufo: constants.TUN_F_UFO,
  uso4: constants.TUN_F_USO4,
  uso6: constants.TUN_F_USO6,
})
const OFFLOAD_KEYS = Object.keys(OFFLOAD_BITS) as (keyof Offloads)[]

/** @internal Offloads by name → TUNSETOFFLOAD bits, with the core's pairing rules. */
export function offloadsToBits(value: unknown, name: string): number {
  const o = snapshotOptions(value, name, OFFLOAD_KEYS)
  let bits = 0
  for (const k of OFFLOAD_KEYS) {
    if (o[k] === undefined) continue
    if (validateBoolean(o[k], `${name}.${k}`)) bits |= OFFLOAD_BITS[k]
  }
  if (bits !== 0 && (bits & OFFLOAD_BITS.csum) === 0) {
    throw invalidValue(name, 'needs csum: true for any other offload (the kernel ignores them without it)', value)
  }
  if (bits & OFFLOAD_BITS.ecn && !(bits & (OFFLOAD_BITS.tso4 | OFFLOAD_BITS.tso6))) {
    throw invalidValue(name, 'needs tso4 or tso6 with ecn (the kernel refuses ecn alone)', value)
  }
  if (!(bits & OFFLOAD_BITS.uso4) !== !(bits & OFFLOAD_BITS.uso6)) {
    throw invalidValue(name, 'needs uso4 and uso6 together (the kernel takes them only as a pair)', value)
  }
  return bits
}

/**
 * @internal `vnetHdr: false` with offloads (TUNSETOFFLOAD bits, 0 for none) or
 * a header size is refused: virtio-net headers carry them. openTap's and the
 * broker's rule.
 */
export function checkVnetHdrFor(
  vnetHdr: Tristate | undefined,
  offloadBits: number,
  hasSize: boolean,
  name: string,
  value: unknown,
): void {
  if (vnetHdr === false && (offloadBits !== 0 || hasSize)) {
    throw invalidValue(name, 'must not be false with offloads or vnetHdrSize (virtio-net headers carry them)', value)
  }
}

/** @internal TUNSETOFFLOAD bits → offloads by name. */
export function bitsToOffloads(bits: number): Required<Offloads> {
  const out = {} as Required<Offloads>
  for (const k of OFFLOAD_KEYS) out[k] = (bits & OFFLOAD_BITS[k]) !== 0
  return out
}

/** A bridge port's flags (`IFLA_BRPORT_*`, as `bridge link set` sets them). Missing keys are left alone. */
export interface BridgePortFlags {
  /** Isolated ports only talk to non-isolated ones: guests on the bridge cannot reach each other, the uplink can. */
  isolated?: boolean
  /** Learn source MACs on this port. */
  learning?: boolean
  /** Flood unknown unicast to this port (`flood` in `bridge link`). */
  unicastFlood?: boolean
  /** Send frames back out of the port they came in on. */
  hairpin?: boolean
}

const BRIDGE_PORT_KEYS = ['isolated', 'learning', 'unicastFlood', 'hairpin'] as const

/** @internal Bridge port flags → the addon's form (null: leave alone). */
export function bridgePortOf(value: unknown, name: string): NativeBridgePort {
  const o = snapshotOptions(value, name, BRIDGE_PORT_KEYS)
  const flag = (k: (typeof BRIDGE_PORT_KEYS)[number]) =>
    o[k] === undefined ? null : validateBoolean(o[k], `${name}.${k}`)
  return {
    isolated: flag('isolated'),
    learning: flag('learning'),
    unicastFlood: flag('unicastFlood'),
    hairpin: flag('hairpin'),
  }
}

/**
 * The host side of the NIC, applied after the link is up (routes need it),
 * in this order: addresses, routes, proxy ARP, proxy NDP, forwarding. All in
 * the device's network namespace.
 */
export interface HostOptions {
  /**
   * Addresses on the device (RTM_NEWADDR), in CIDR form: `'192.0.2.1/32'`,
   * `'2001:db8::1/64'`; a bare address is /32 or /128. Host bits are kept
   * (`'192.0.2.1/24'` is 192.0.2.1 on 192.0.2.0/24). At most
   * limits.maxAddresses (256), none twice.
   */
  addresses?: string[]
  /**
   * Destinations routed through the device (RTM_NEWROUTE, main table, scope
   * link, as `ip route add DEST dev TAP`): `'192.0.2.2/32'`, `'2001:db8:2::/64'`.
   * Host bits must be zero, as `ip route` insists. Need `up: true`. At most
   * limits.maxRoutes (256), none twice.
   */
  routes?: string[]
  /** `/proc/sys/net/ipv4/conf/<if>/proxy_arp`: answer ARP for addresses routed elsewhere (routed mode). */
  proxyArp?: boolean
  /** `/proc/sys/net/ipv6/conf/<if>/proxy_ndp` (an error where the device has no IPv6). */
  proxyNdp?: boolean
  /** `/proc/sys/net/ipv4/conf/<if>/forwarding`, and the IPv6 one where the device has IPv6. */
  forwarding?: boolean
}

/** Link settings, applied in libvirt's order: MTU, MAC, bridge, then up. */
export interface LinkOptions {
  /** limits.minMtu-limits.maxMtu (68-65535; a TAP device takes at most limits.tapMaxMtu, 65521). */
  mtu?: number
  /** The host-side MAC, e.g. `hostMacFor(guestMac)`. Unicast. */
  mac?: string
  /** A Linux bridge to enslave the device to (SIOCBRADDIF). */
  bridge?: string
  /** Bring the link up. */
  up?: boolean
}

/** Options of {@link openTap}. All are optional; unknown keys are refused. */
export interface OpenTapOptions extends LinkOptions, HostOptions {
  /**
   * `'tap'` (default): an Ethernet device (IFF_TAP). `'tun'`: an IP device
   * (IFF_TUN): its frames are IP packets; it takes no `mac`, `bridge`,
   * `vnetHdr: true`, `vnetHdrSize`, `offloads` or `vhost` (vnetHdr `'auto'`
   * means none), and the kernel names it `tun%d` by default.
   */
  mode?: 'tap' | 'tun'
  /**
   * `''` or omitted: the kernel picks `tap%d`. A template with one `%d`
   * (`vm%d`): the kernel fills the lowest free number (or vmtap does, see
   * `uniqueName`). Otherwise an exact name of 1-15 bytes of printable ASCII
   * without `/`, `:`, whitespace or `%`; an existing TAP device of that
   * name is attached to (unless `exclusive`).
   */
  name?: string
  /** 1-256 (limits.maxQueues, the kernel's MAX_TAP_QUEUES); more than 1 makes a multi-queue device. Default 1. */
  queues?: number
  /** `'auto'` (default): IFF_VNET_HDR when the kernel offers it; `true`: required; `false`: never. */
  vnetHdr?: Tristate
  /** `false` (default): no vhost fds; `true`: one /dev/vhost-net fd per queue or fail; `'auto'`: all of them when possible, else none. */
  vhost?: Tristate
  /** Fail with EBUSY when the name exists (IFF_TUN_EXCL) instead of attaching to it. */
  exclusive?: boolean
  /**
   * Fill the `%d` of `name` (default template `tap%d`) from vmtap's own
   * process-wide counter, with an existence check and exclusive creation,
   * like libvirt's `vnet%d`: the kernel would hand out a name freed a moment
   * ago again at once, which races with anyone still looking it up.
   */
  uniqueName?: boolean
  /**
   * Make the device persistent (TUNSETPERSIST): it outlives its fds. Delete
   * it with {@link deleteTap}. Without `owner` or `group`, a device this call
   * makes persistent is owned by the caller's euid: the kernel would let
   * anyone who can open /dev/net/tun attach to an unowned one.
   */
  persist?: boolean
  /**
   * TUNSETOWNER: this uid may attach to the device without CAP_NET_ADMIN.
   * Without `owner` and `group`, a device this call creates is owned by the
   * caller's euid: the kernel lets anyone who can open /dev/net/tun attach a
   * queue to a device with neither (see SECURITY.md). `null` opts out: the
   * device gets no owner (and no group, unless `group` is given).
   */
  owner?: number | null
  /** TUNSETGROUP: members of this gid may attach without CAP_NET_ADMIN. */
  group?: number
  /** TUNSETVNETHDRSZ: 10, 12 or 20 (limits.vnetHdrSizes). Needs vnetHdr. */
  vnetHdrSize?: 10 | 12 | 20
  /** TUNSETOFFLOAD with QEMU's fallback (retry without USO, then without UFO). Needs vnetHdr. */
  offloads?: Offloads
  /** The TUN/TAP clone device. Default `/dev/net/tun`. */
  tunPath?: string
  /** The vhost-net device. Default `/dev/vhost-net`. */
  vhostPath?: string
  /**
   * The network namespace to create (or find) the device in, and where its
   * link settings act: a name as `ip netns` has it (`'blue'` is
   * `/run/netns/blue`), the path of a namespace file (`/proc/PID/ns/net`), or
   * an open fd of one. Default: the caller's. The calling thread never
   * changes namespace (the work runs on a short-lived thread of vmtap's own).
   */
  netns?: NetnsSpec
  /**
   * A tag for {@link listTaps} and {@link gcTaps}: 1 to limits.maxTagBytes (64)
   * bytes of ASCII letters, digits and `. _ - : @ /`, stored in the interface
   * alias as `vmtap:tag=<tag>` as the last configuration step. It replaces
   * the alias of an existing device.
   */
  tag?: string
  /**
   * Flags of the device's port on `bridge` (RTM_SETLINK, IFLA_BRPORT_*), set
   * right after it is enslaved. Needs `bridge`.
   */
  bridgePort?: BridgePortFlags
  /** The transmit queue length (IFLA_TXQLEN): 0 to limits.maxTxQueueLen. */
  txQueueLen?: number
}

/** The options that configure the device once it is open (the addon's `config`). */
const CONFIG_KEYS = [
  'exclusive',
  'uniqueName',
  'persist',
  'owner',
  'group',
  'vnetHdrSize',
  'offloads',
  'mtu',
  'mac',
  'bridge',
  'up',
  'tag',
  'bridgePort',
  'txQueueLen',
  'addresses',
  'routes',
  'proxyArp',
  'proxyNdp',
  'forwarding',
] as const

const OPEN_KEYS = [
  'mode',
  'name',
  'queues',
  'vnetHdr',
  'vhost',
  'tunPath',
  'vhostPath',
  'netns',
  ...CONFIG_KEYS,
] as const

/** What a TUN device cannot take (the core's rule, before any syscall). */
function checkTunOptions(o: Record<string, unknown>): void {
  const refuse = (key: string, why: string) => {
    throw invalidValue(`options.${key}`, `does not apply to a TUN device: ${why}`, o[key])
  }
  if (o.vnetHdr === true) refuse('vnetHdr', "vmtap's TUN devices carry plain IP packets")
  if (o.vnetHdrSize !== undefined) refuse('vnetHdrSize', "vmtap's TUN devices have no vnet header")
  if (o.offloads !== undefined && offloadsToBits(o.offloads, 'options.offloads') !== 0) {
    refuse('offloads', "vmtap's TUN devices have no vnet header to carry them")
  }
  if (o.vhost !== undefined && o.vhost !== false) refuse('vhost', "vhost-net serves a VM's TAP queues")
  if (o.mac !== undefined) refuse('mac', 'it has no link-layer address')
  if (o.bridge !== undefined) refuse('bridge', 'a Linux bridge takes Ethernet ports only')
}

/** @internal Validate and normalize openTap options (no syscall). */
export function normalizeOpenOptions(options: unknown): NativeOpenOptions {
  const o = snapshotOptions(options, 'options', OPEN_KEYS)
  let mode: NativeOpenOptions['mode'] = null
  if (o.mode !== undefined) {
    if (o.mode !== 'tap' && o.mode !== 'tun') throw invalidValue('options.mode', "must be 'tap' or 'tun'", o.mode)
    mode = o.mode === 'tun' ? 'tun' : null
  }
  const n: NativeOpenOptions = {
    mode,
    name: validateName(o.name, 'options.name'),
    queues: o.queues === undefined ? 1 : validateInteger(o.queues, 'options.queues', 1, limits.maxQueues),
    vnetHdr: validateTristate(o.vnetHdr, 'options.vnetHdr', 'auto'),
    vhost: validateTristate(o.vhost, 'options.vhost', false),
    tunPath: o.tunPath === undefined ? null : validatePath(o.tunPath, 'options.tunPath', TUN_PATH),
    vhostPath: o.vhostPath === undefined ? null : validatePath(o.vhostPath, 'options.vhostPath', VHOST_PATH),
    config: null,
    netns: netnsOf(o.netns),
  }
  if (mode === 'tun') checkTunOptions(o)
  if (!CONFIG_KEYS.some((k) => o[k] !== undefined)) return n
  const opt = <T>(v: unknown, f: (v: unknown) => T): T | null => (v === undefined ? null : f(v))
  const bool = (v: unknown, name: string) => (v === undefined ? false : validateBoolean(v, name))
  const c: NativeOpenConfig = {
    exclusive: bool(o.exclusive, 'options.exclusive'),
    uniqueName: bool(o.uniqueName, 'options.uniqueName'),
    persist: bool(o.persist, 'options.persist'),
    owner: o.owner === null ? null : opt(o.owner, (v) => validateId(v, 'options.owner')),
    group: opt(o.group, (v) => validateId(v, 'options.group')),
    ownerless: o.owner === null,
    vnetHdrSize: opt(o.vnetHdrSize, (v) => validateVnetHdrSize(v, 'options.vnetHdrSize')),
    offloads: opt(o.offloads, (v) => offloadsToBits(v, 'options.offloads')),
    mtu: opt(o.mtu, (v) => validateMtu(v, 'options.mtu')),
    mac: opt(o.mac, (v) => validateMac(v, 'options.mac')),
    bridge: opt(o.bridge, (v) => validateIfName(v, 'options.bridge')),
    up: bool(o.up, 'options.up'),
  }
  if (o.tag !== undefined) c.tag = validateTag(o.tag, 'options.tag')
  if (o.bridgePort !== undefined) c.bridgePort = bridgePortOf(o.bridgePort, 'options.bridgePort')
  if (o.txQueueLen !== undefined)
    c.txQueueLen = validateInteger(o.txQueueLen, 'options.txQueueLen', 0, limits.maxTxQueueLen)
  if (o.addresses !== undefined) c.addresses = validateAddresses(o.addresses, 'options.addresses')
  if (o.routes !== undefined) c.routes = validateRoutes(o.routes, 'options.routes')
  for (const k of ['proxyArp', 'proxyNdp', 'forwarding'] as const) {
    if (o[k] !== undefined) c[k] = validateBoolean(o[k], `options.${k}`)
  }
  if (c.bridgePort !== undefined && c.bridge === null) {
    throw invalidValue('options.bridgePort', 'needs bridge (the flags are those of the port on it)', o.bridgePort)
  }
  if ((c.routes?.length ?? 0) > 0 && !c.up) {
    throw invalidValue(
      'options.routes',
      'needs up: true (the kernel refuses a route through a link that is down)',
      o.routes,
    )
  }
  if (c.uniqueName && n.name !== '' && !n.name.includes('%d')) {
    throw invalidValue('options.uniqueName', 'needs a name template with %d (or no name)', o.name)
  }
  checkVnetHdrFor(n.vnetHdr, c.offloads ?? 0, c.vnetHdrSize !== null, 'options.vnetHdr', o.vnetHdr)
  n.config = c
  return n
}

/**
 * Validate {@link openTap} options without opening anything: throws the
 * TypeError/RangeError openTap would throw. Useful to check several
 * devices' options before opening the first.
 */
export function checkOpenTapOptions(options?: OpenTapOptions): void {
  normalizeOpenOptions(options)
}

/** How a macvtap shares its lower device (`ip link add ... type macvtap mode MODE`). */
export type MacvtapMode = 'bridge' | 'vepa' | 'private' | 'passthru'

const MACVTAP_MODES: readonly MacvtapMode[] = ['bridge', 'vepa', 'private', 'passthru']

/** Options of {@link openMacvtap}. `link` is required; unknown keys are refused. */
export interface OpenMacvtapOptions {
  /**
   * The lower device the macvtap sits on: an Ethernet device (not loopback,
   * not itself a macvtap or macvlan) in the macvtap's network namespace.
   */
  link: string
  /**
   * `'bridge'` (default): guests on macvtaps of the same device reach each
   * other directly; `'vepa'`: their traffic goes out to the switch;
   * `'private'`: they never reach each other; `'passthru'`: the only macvtap
   * of the device, which gets the guest's MAC and promiscuity.
   */
  mode?: MacvtapMode
  /** `''` or omitted: the kernel picks `macvtap%d`; a `%d` template; or an exact name that must not exist. */
  name?: string
  /**
   * The macvtap's MAC, which the guest NIC must use (see {@link TapDevice.mac}). Default: the kernel's
   * random one (locally administered).
   */
  mac?: string
  /** 1-256 (limits.maxQueues: the kernel's MAX_TAP_QUEUES is the same for macvtap): one fd per queue. Default 1. */
  queues?: number
  /** `'auto'` (default): IFF_VNET_HDR on every fd; `true`: required; `false`: never. */
  vnetHdr?: Tristate
  /** As openTap's: one /dev/vhost-net fd per queue. Default `false`. */
  vhost?: Tristate
  /** The vhost-net device. Default `/dev/vhost-net`. */
  vhostPath?: string
  /** The macvtap's MTU (at most its lower device's). */
  mtu?: number
  /** Bring the macvtap up (in the request that creates it). */
  up?: boolean
  /**
   * Keep the link when the device is closed (a macvtap outlives its fds; without `persist`, close() deletes
   * it). Delete it later with {@link deleteTap}.
   */
  persist?: boolean
  /** The network namespace to create the macvtap in, where `link` must be. As openTap's `netns`. */
  netns?: NetnsSpec
  /** A tag for the interface alias, as openTap's `tag`. */
  tag?: string
}

const MACVTAP_KEYS = [
  'link',
  'mode',
  'name',
  'mac',
  'queues',
  'vnetHdr',
  'vhost',
  'vhostPath',
  'mtu',
  'up',
  'persist',
  'netns',
  'tag',
] as const

/** The validated arguments of the addon's openMacvtap, and the namespace as given. */
interface NormalizedMacvtap {
  args: NativeMacvtapArgs
  netns: NetnsSpec | null
}

/** @internal Validate and normalize openMacvtap options (no syscall). */
export function normalizeMacvtapOptions(options: unknown): NormalizedMacvtap {
  if (options === undefined) throw invalidType('options', 'of type object', options)
  const o = snapshotOptions(options, 'options', MACVTAP_KEYS)
  const link = validateDeviceName(o.link, 'options.link', 'the lower device')
  let mode: MacvtapMode = 'bridge'
  if (o.mode !== undefined) {
    if (typeof o.mode !== 'string') throw invalidType('options.mode', 'of type string', o.mode)
    if (!(MACVTAP_MODES as readonly string[]).includes(o.mode)) {
      throw invalidValue('options.mode', `must be one of ${MACVTAP_MODES.join(', ')}`, o.mode)
    }
    mode = o.mode as MacvtapMode
  }
  const name = validateName(o.name, 'options.name', 'macvtap%d')
  if (name === link) throw invalidValue('options.name', 'must not be the name of its lower link', o.name)
  const netns = netnsOf(o.netns)
  let config: NativeMacvtapConfig | null = null
  if (['vhostPath', 'mac', 'mtu', 'up', 'persist', 'tag'].some((k) => o[k] !== undefined)) {
    config = {
      vhostPath: o.vhostPath === undefined ? null : validatePath(o.vhostPath, 'options.vhostPath', VHOST_PATH),
      mac: o.mac === undefined ? null : validateMac(o.mac, 'options.mac'),
      mtu: o.mtu === undefined ? null : validateMtu(o.mtu, 'options.mtu'),
      up: o.up === undefined ? false : validateBoolean(o.up, 'options.up'),
      persist: o.persist === undefined ? false : validateBoolean(o.persist, 'options.persist'),
    }
    if (o.tag !== undefined) config.tag = validateTag(o.tag, 'options.tag')
  }
  const args: NativeMacvtapArgs = [
    link,
    mode,
    name,
    o.queues === undefined ? 1 : validateInteger(o.queues, 'options.queues', 1, limits.maxQueues),
    validateTristate(o.vnetHdr, 'options.vnetHdr', 'auto'),
    validateTristate(o.vhost, 'options.vhost', false),
    config,
    netns,
  ]
  return { args, netns }
}

/**
 * Validate {@link openMacvtap} options without opening anything: throws the
 * TypeError/RangeError openMacvtap would throw.
 */
export function checkOpenMacvtapOptions(options: OpenMacvtapOptions): void {
  normalizeMacvtapOptions(options)
}
