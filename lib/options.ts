// openTap's options: their types, and the validation that turns them into
// the addon's arguments before any syscall.

import { constants } from './constants'
import { invalidValue } from './errors'
import type { NativeOpenConfig, NativeOpenOptions } from './native'
import {
  snapshotOptions,
  type Tristate,
  validateBoolean,
  validateId,
  validateIfName,
  validateInteger,
  validateMac,
  validateMtu,
  validateName,
  validatePath,
  validateTristate,
  validateVnetHdrSize,
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

/** @internal TUNSETOFFLOAD bits → offloads by name. */
export function bitsToOffloads(bits: number): Required<Offloads> {
  const out = {} as Required<Offloads>
  for (const k of OFFLOAD_KEYS) out[k] = (bits & OFFLOAD_BITS[k]) !== 0
  return out
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
export interface OpenTapOptions extends LinkOptions {
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
  /** TUNSETOWNER: this uid may attach to the device without CAP_NET_ADMIN. */
  owner?: number
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
}

const OPEN_KEYS = [
  'mode',
  'name',
  'queues',
  'vnetHdr',
  'vhost',
  'tunPath',
  'vhostPath',
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
] as const

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
    tunPath: o.tunPath === undefined ? null : validatePath(o.tunPath, 'options.tunPath', '/dev/net/tun'),
    vhostPath: o.vhostPath === undefined ? null : validatePath(o.vhostPath, 'options.vhostPath', '/dev/vhost-net'),
    config: null,
  }
  if (mode === 'tun') checkTunOptions(o)
  if (!CONFIG_KEYS.some((k) => o[k] !== undefined)) return n
  const opt = <T>(v: unknown, f: (v: unknown) => T): T | null => (v === undefined ? null : f(v))
  const bool = (v: unknown, name: string) => (v === undefined ? false : validateBoolean(v, name))
  const c: NativeOpenConfig = {
    exclusive: bool(o.exclusive, 'options.exclusive'),
    uniqueName: bool(o.uniqueName, 'options.uniqueName'),
    persist: bool(o.persist, 'options.persist'),
    owner: opt(o.owner, (v) => validateId(v, 'options.owner')),
    group: opt(o.group, (v) => validateId(v, 'options.group')),
    vnetHdrSize: opt(o.vnetHdrSize, (v) => validateVnetHdrSize(v, 'options.vnetHdrSize')),
    offloads: opt(o.offloads, (v) => offloadsToBits(v, 'options.offloads')),
    mtu: opt(o.mtu, (v) => validateMtu(v, 'options.mtu')),
    mac: opt(o.mac, (v) => validateMac(v, 'options.mac')),
    bridge: opt(o.bridge, (v) => validateIfName(v, 'options.bridge')),
    up: bool(o.up, 'options.up'),
  }
  if (c.uniqueName && n.name !== '' && !n.name.includes('%d')) {
    throw invalidValue('options.uniqueName', 'needs a name template with %d (or no name)', o.name)
  }
  if (n.vnetHdr === false && ((c.offloads ?? 0) !== 0 || c.vnetHdrSize !== null)) {
    throw invalidValue(
      'options.vnetHdr',
      'must not be false with offloads or vnetHdrSize (virtio-net headers carry them)',
      o.vnetHdr,
    )
  }
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
