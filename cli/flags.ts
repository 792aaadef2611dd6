// Flags shared by the commands that open devices (exec, create): their
// parsers, the --net group syntax, and the one mapping from a NIC's flags to
// openTap's options.

import { type Command, InvalidArgumentError, Option } from 'commander'

import {
  checkOpenMacvtapOptions,
  checkOpenTapOptions,
  type BridgePortFlags,
  limits,
  type MacvtapMode,
  type OpenMacvtapOptions,
  openMacvtap,
  type OpenTapOptions,
  openTap,
  type TapDevice,
  type Tristate,
} from '../index'
import { UsageError } from './errors'

/** A decimal integer; ranges are the library's to check. */
export function parseInteger(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('It must be a non-negative decimal integer.')
  return Number(value)
}

/** How a Tristate is spelled on the command line. */
type TristateFlag = 'on' | 'off' | 'auto'
const TRISTATE_FLAGS: readonly TristateFlag[] = ['on', 'off', 'auto']

function parseTristateFlag(value: string, what: string): TristateFlag {
  if (!(TRISTATE_FLAGS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`${what} must be on, off or auto.`)
  }
  return value as TristateFlag
}

/** The library's Tristate for a flag value. */
function tristateOfFlag(v: TristateFlag): Tristate {
  return v === 'auto' ? 'auto' : v === 'on'
}

function parseOnOff(value: string, what: string): boolean {
  if (['on', 'yes', 'true', '1'].includes(value)) return true
  if (['off', 'no', 'false', '0'].includes(value)) return false
  throw new InvalidArgumentError(`${what} must be on or off.`)
}

/** A commander option whose value is on, off or auto. */
export function tristateOption(flags: string, description: string): Option {
  return new Option(flags, description).choices(TRISTATE_FLAGS as string[])
}

/** The MTU range, as the help shows it. */
const MTU_HELP = `${limits.minMtu}-${limits.maxMtu}; a TAP device takes at most ${limits.tapMaxMtu}`

/** How a macvtap shares its lower device, as the flags spell it. */
export const MACVTAP_MODES: readonly MacvtapMode[] = ['bridge', 'vepa', 'private', 'passthru']

function parseMacvtapMode(value: string, what: string): MacvtapMode {
  if (!(MACVTAP_MODES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`${what} must be ${MACVTAP_MODES.join(', ').replace(/, ([a-z]+)$/, ' or $1')}.`)
  }
  return value as MacvtapMode
}

/** How a device kind is spelled on the command line (openTap's `mode`). */
type ModeFlag = 'tap' | 'tun'
const MODE_FLAGS: readonly ModeFlag[] = ['tap', 'tun']

/** One NIC, as the flags or one --net group describe it. */
export interface NicSpec {
  mode?: ModeFlag
  name?: string
  queues?: number
  vhost?: TristateFlag
  vnetHdr?: TristateFlag
  bridge?: string
  mtu?: number
  mac?: string
  up?: boolean
  netns?: string
  tag?: string
  /** A macvtap on this lower link instead of a TAP device. */
  macvtap?: string
  macvtapMode?: MacvtapMode
  /** --address (repeatable) or address=... keys of a group. */
  address?: string[]
  /** --route (repeatable) or route=... keys of a group. */
  route?: string[]
  proxyArp?: boolean
  proxyNdp?: boolean
  forwarding?: boolean
  txqueuelen?: number
  bridgePort?: BridgePortFlags
}

const NET_KEYS = [
  'mode',
  'name',
  'queues',
  'vhost',
  'vnet-hdr',
  'bridge',
  'mtu',
  'mac',
  'up',
  'netns',
  'tag',
  'macvtap',
  'macvtap-mode',
  'address',
  'route',
  'proxy-arp',
  'proxy-ndp',
  'forwarding',
  'txqueuelen',
] as const

/** Keys that may come more than once in a group. */
const REPEATABLE_KEYS: readonly string[] = ['address', 'route']
/** Keys that mean on when given alone. */
const SWITCH_KEYS: readonly string[] = ['up', 'proxy-arp', 'proxy-ndp', 'forwarding']

/** `--bridge-port`: `isolated,learning=off,unicast-flood=off,hairpin` (a flag alone means on). */
function parseBridgePort(value: string): BridgePortFlags {
  const keys: Record<string, keyof BridgePortFlags> = {
    isolated: 'isolated',
    learning: 'learning',
    'unicast-flood': 'unicastFlood',
    hairpin: 'hairpin',
  }
  const out: BridgePortFlags = {}
  for (const item of value.split(',')) {
    const eq = item.indexOf('=')
    const key = eq < 0 ? item : item.slice(0, eq)
    const k = keys[key]
    if (k === undefined) {
      throw new InvalidArgumentError(
        `Unknown bridge port flag '${key}'; the flags are ${Object.keys(keys).join(', ')} (FLAG or FLAG=on|off, separated by commas).`,
      )
    }
    if (out[k] !== undefined) throw new InvalidArgumentError(`Bridge port flag '${key}' is given twice.`)
    out[k] = eq < 0 ? true : parseOnOff(item.slice(eq + 1), key)
  }
  return out
}

/**
 * A --net group: `key=value,...` with the keys of NET_KEYS; `up`,
 * `proxy-arp`, `proxy-ndp` and `forwarding` alone mean on; `address` and
 * `route` may come more than once. An empty group is a NIC with the defaults.
 */
export function parseNetSpec(spec: string): NicSpec {
  const nic: NicSpec = {}
  const seen = new Set<string>()
  for (const item of spec === '' ? [] : spec.split(',')) {
    const eq = item.indexOf('=')
    const key = eq < 0 ? item : item.slice(0, eq)
    const value = eq < 0 ? undefined : item.slice(eq + 1)
    if (!(NET_KEYS as readonly string[]).includes(key)) {
      throw new InvalidArgumentError(
        `Unknown key '${key}'; the keys are ${NET_KEYS.join(', ')} (key=value, separated by commas).`,
      )
    }
    if (seen.has(key) && !REPEATABLE_KEYS.includes(key)) throw new InvalidArgumentError(`Key '${key}' is given twice.`)
    seen.add(key)
    if (value === undefined && !SWITCH_KEYS.includes(key)) {
      throw new InvalidArgumentError(`Key '${key}' needs a value (${key}=...).`)
    }
    const v = value as string
    switch (key as (typeof NET_KEYS)[number]) {
      case 'mode':
        if (!(MODE_FLAGS as readonly string[]).includes(v)) throw new InvalidArgumentError('mode must be tap or tun.')
        nic.mode = v as ModeFlag
        break
      case 'name':
        nic.name = v
        break
      case 'queues':
        nic.queues = parseInteger(v)
        break
      case 'vhost':
        nic.vhost = parseTristateFlag(v, 'vhost')
        break
      case 'vnet-hdr':
        nic.vnetHdr = parseTristateFlag(v, 'vnet-hdr')
        break
      case 'bridge':
        nic.bridge = v
        break
      case 'mtu':
        nic.mtu = parseInteger(v)
        break
      case 'mac':
        nic.mac = v
        break
      case 'up':
        nic.up = value === undefined ? true : parseOnOff(v, 'up')
        break
      case 'netns':
        nic.netns = v
        break
      case 'tag':
        nic.tag = v
        break
      case 'macvtap':
        nic.macvtap = v
        break
      case 'macvtap-mode':
        nic.macvtapMode = parseMacvtapMode(v, 'macvtap-mode')
        break
      case 'address':
        nic.address = [...(nic.address ?? []), v]
        break
      case 'route':
        nic.route = [...(nic.route ?? []), v]
        break
      case 'proxy-arp':
        nic.proxyArp = value === undefined ? true : parseOnOff(v, 'proxy-arp')
        break
      case 'proxy-ndp':
        nic.proxyNdp = value === undefined ? true : parseOnOff(v, 'proxy-ndp')
        break
      case 'forwarding':
        nic.forwarding = value === undefined ? true : parseOnOff(v, 'forwarding')
        break
      case 'txqueuelen':
        nic.txqueuelen = parseInteger(v)
        break
    }
  }
  return nic
}

/** The options openTap and openMacvtap share, from a NIC's flags. */
type SharedOptions = Pick<
  OpenTapOptions & OpenMacvtapOptions,
  'name' | 'queues' | 'vhost' | 'vnetHdr' | 'mtu' | 'mac' | 'up' | 'netns' | 'tag'
>
function sharedOptions(nic: NicSpec): SharedOptions {
  const o: SharedOptions = {}
  if (nic.name !== undefined) o.name = nic.name
  if (nic.queues !== undefined) o.queues = nic.queues
  if (nic.vhost !== undefined) o.vhost = tristateOfFlag(nic.vhost)
  if (nic.vnetHdr !== undefined) o.vnetHdr = tristateOfFlag(nic.vnetHdr)
  if (nic.mtu !== undefined) o.mtu = nic.mtu
  if (nic.mac !== undefined) o.mac = nic.mac
  if (nic.up !== undefined) o.up = nic.up
  if (nic.netns !== undefined) o.netns = nic.netns
  if (nic.tag !== undefined) o.tag = nic.tag
  return o
}

/** openTap's options for a NIC's flags: the one mapping exec and create share. */
export function nicOpenOptions(nic: NicSpec): OpenTapOptions {
  const o: OpenTapOptions = sharedOptions(nic)
  if (nic.mode !== undefined) o.mode = nic.mode
  if (nic.bridge !== undefined) o.bridge = nic.bridge
  if (nic.address !== undefined) o.addresses = nic.address
  if (nic.route !== undefined) o.routes = nic.route
  if (nic.proxyArp !== undefined) o.proxyArp = nic.proxyArp
  if (nic.proxyNdp !== undefined) o.proxyNdp = nic.proxyNdp
  if (nic.forwarding !== undefined) o.forwarding = nic.forwarding
  if (nic.txqueuelen !== undefined) o.txQueueLen = nic.txqueuelen
  if (nic.bridgePort !== undefined) o.bridgePort = nic.bridgePort
  return o
}

/**
 * openMacvtap's options for a NIC with `macvtap` (its lower link): the one
 * mapping exec and create share. A macvtap is no bridge port, and
 * `macvtapMode` needs `macvtap`: both refused here (where is `--flag` or
 * `--net[i] key`, for the message).
 */
export function nicMacvtapOptions(nic: NicSpec, where: (flag: string) => string = (f) => `--${f}`): OpenMacvtapOptions {
  if (nic.macvtap === undefined) throw new UsageError(`${where('macvtap-mode')} needs ${where('macvtap')} LINK`)
  if (nic.bridge !== undefined) {
    throw new UsageError(
      `${where('bridge')} cannot be combined with ${where('macvtap')}: a macvtap is no bridge port, it sits on its lower link`,
    )
  }
  if (nic.mode === 'tun') {
    throw new UsageError(
      `${where('mode')} tun cannot be combined with ${where('macvtap')}: a macvtap carries Ethernet frames`,
    )
  }
  const hostSide: [keyof NicSpec, string][] = [
    ['address', 'address'],
    ['route', 'route'],
    ['proxyArp', 'proxy-arp'],
    ['proxyNdp', 'proxy-ndp'],
    ['forwarding', 'forwarding'],
    ['txqueuelen', 'txqueuelen'],
    ['bridgePort', 'bridge-port'],
  ]
  for (const [key, flag] of hostSide) {
    if (nic[key] !== undefined) {
      throw new UsageError(
        `${where(flag)} cannot be combined with ${where('macvtap')}: openMacvtap takes no host-side routing`,
      )
    }
  }
  const o: OpenMacvtapOptions = { ...sharedOptions(nic), link: nic.macvtap }
  if (nic.macvtapMode !== undefined) o.mode = nic.macvtapMode
  return o
}

/** Whether a NIC is a macvtap (or asks for a macvtap mode, which only a macvtap has). */
export function isMacvtapNic(nic: NicSpec): boolean {
  return nic.macvtap !== undefined || nic.macvtapMode !== undefined
}

/** Check a NIC's options as opening it would, before any device exists. */
export function checkNic(nic: NicSpec, where?: (flag: string) => string): void {
  if (isMacvtapNic(nic)) checkOpenMacvtapOptions(nicMacvtapOptions(nic, where))
  else checkOpenTapOptions(nicOpenOptions(nic))
}

/** openTap's options that a macvtap does not take, for {@link openNic}. */
export type TapOnlyOptions = Pick<OpenTapOptions, 'exclusive' | 'owner' | 'group'>

/** Open a NIC: a TAP device (with `tapOnly`), or a macvtap on `nic.macvtap`; `persist` as asked. */
export function openNic(nic: NicSpec, extra: { persist?: boolean } = {}, tapOnly: TapOnlyOptions = {}): TapDevice {
  if (isMacvtapNic(nic)) return openMacvtap({ ...nicMacvtapOptions(nic), ...extra })
  return openTap({ ...nicOpenOptions(nic), ...extra, ...tapOnly })
}

/** The macvtap flags exec and create both take. */
export function addMacvtapFlags(cmd: Command): Command {
  return cmd
    .option('--macvtap <link>', 'a macvtap on this lower device instead of a TAP device (the guest uses its MAC)')
    .addOption(
      new Option('--macvtap-mode <mode>', 'how the macvtap shares its lower device (default: bridge)').choices(
        MACVTAP_MODES as string[],
      ),
    )
}

/** --netns, the same on every command that takes it. */
const NETNS_HELP = 'work in this network namespace: a name (as ip netns has it) or a namespace file path'
export function addNetnsFlag(cmd: Command): Command {
  return cmd.option('--netns <name|path>', NETNS_HELP)
}

/** The link flags exec and create both take (one definition, one help text). */
export function addLinkFlags(cmd: Command, macHelp: string): Command {
  return cmd
    .addOption(
      new Option(
        '--mode <mode>',
        'tap: an Ethernet device (default); tun: an IP device (no MAC, bridge or vnet header)',
      ).choices(MODE_FLAGS as string[]),
    )
    .addOption(
      tristateOption(
        '--vnet-hdr <mode>',
        'IFF_VNET_HDR; on: required, auto: when the kernel offers it (default: auto)',
      ),
    )
    .option('--bridge <bridge>', 'enslave the device to this Linux bridge')
    .option('--mtu <mtu>', `the MTU (${MTU_HELP})`, parseInteger)
    .option('--mac <mac>', macHelp)
    .option('--up', 'bring the link up')
    .option('--tag <tag>', 'label the device for vmtap list and vmtap gc (its alias becomes vmtap:tag=TAG)')
    .option('--txqueuelen <n>', `the transmit queue length (0-${limits.maxTxQueueLen})`, parseInteger)
    .option(
      '--bridge-port <flags>',
      'flags of the port on --bridge: isolated, learning, unicast-flood, hairpin (FLAG or FLAG=on|off, comma-separated)',
      parseBridgePort,
    )
}

const collect = (v: string, prev?: string[]) => [...(prev ?? []), v]

/** The host-side flags exec and create both take: routed mode (one definition, one help text). */
export function addHostFlags(cmd: Command): Command {
  return cmd
    .option('--address <cidr>', 'an address on the device, e.g. 192.0.2.1/32 or 2001:db8::1/64 (repeatable)', collect)
    .option(
      '--route <cidr>',
      'route this destination through the device, e.g. 192.0.2.2/32 (repeatable; needs --up)',
      collect,
    )
    .option('--proxy-arp', 'turn on proxy ARP on the device (net.ipv4.conf.DEV.proxy_arp)')
    .option('--proxy-ndp', 'turn on proxy NDP on the device (net.ipv6.conf.DEV.proxy_ndp)')
    .option('--forwarding', 'turn on forwarding on the device (IPv4, and IPv6 where it has IPv6)')
}

/** The order and the undo of the host-side flags, for the help texts. */
export const HOST_HELP = `
Routed mode (Ganeti's routed NICs, Incus' routed NICs): --address, --route,
--proxy-arp, --proxy-ndp and --forwarding are applied after the link is up, in
that order, in the device's network namespace; --route needs --up. Without --mtu,
a device given --bridge takes the bridge's MTU before it is enslaved.`
