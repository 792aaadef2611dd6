// Flags shared by the commands that open devices (exec, create): their
// parsers, the --net group syntax, and the one mapping from a NIC's flags to
// openTap's options.

import { type Command, InvalidArgumentError, Option } from 'commander'

import {
  checkOpenMacvtapOptions,
  checkOpenTapOptions,
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
export type TristateFlag = 'on' | 'off' | 'auto'
export const TRISTATE_FLAGS: readonly TristateFlag[] = ['on', 'off', 'auto']

function parseTristateFlag(value: string, what: string): TristateFlag {
  if (!(TRISTATE_FLAGS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`${what} must be on, off or auto.`)
  }
  return value as TristateFlag
}

/** The library's Tristate for a flag value. */
export function tristateOfFlag(v: TristateFlag): Tristate {
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
export const MTU_HELP = `${limits.minMtu}-${limits.maxMtu}; a TAP device takes at most ${limits.tapMaxMtu}`

/** How a macvtap shares its lower device, as the flags spell it. */
export const MACVTAP_MODES: readonly MacvtapMode[] = ['bridge', 'vepa', 'private', 'passthru']

function parseMacvtapMode(value: string, what: string): MacvtapMode {
  if (!(MACVTAP_MODES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`${what} must be ${MACVTAP_MODES.join(', ').replace(/, ([a-z]+)$/, ' or $1')}.`)
  }
  return value as MacvtapMode
}

/** One NIC, as the flags or one --net group describe it. */
export interface NicSpec {
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
}

const NET_KEYS = [
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
] as const

/**
 * A --net group: `key=value,...` with the keys of NET_KEYS; `up` alone
 * means up=on. An empty group is a NIC with the defaults.
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
    if (seen.has(key)) throw new InvalidArgumentError(`Key '${key}' is given twice.`)
    seen.add(key)
    if (value === undefined && key !== 'up') throw new InvalidArgumentError(`Key '${key}' needs a value (${key}=...).`)
    const v = value as string
    switch (key as (typeof NET_KEYS)[number]) {
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
    }
  }
  return nic
}

/** openTap's options for a NIC's flags: the one mapping exec and create share. */
export function nicOpenOptions(nic: NicSpec): OpenTapOptions {
  const o: OpenTapOptions = {}
  if (nic.name !== undefined) o.name = nic.name
  if (nic.queues !== undefined) o.queues = nic.queues
  if (nic.vhost !== undefined) o.vhost = tristateOfFlag(nic.vhost)
  if (nic.vnetHdr !== undefined) o.vnetHdr = tristateOfFlag(nic.vnetHdr)
  if (nic.mtu !== undefined) o.mtu = nic.mtu
  if (nic.mac !== undefined) o.mac = nic.mac
  if (nic.bridge !== undefined) o.bridge = nic.bridge
  if (nic.up !== undefined) o.up = nic.up
  if (nic.netns !== undefined) o.netns = nic.netns
  if (nic.tag !== undefined) o.tag = nic.tag
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
  const o: OpenMacvtapOptions = { link: nic.macvtap }
  if (nic.macvtapMode !== undefined) o.mode = nic.macvtapMode
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

/** Whether a NIC is a macvtap (or asks for a macvtap mode, which only a macvtap has). */
export function isMacvtapNic(nic: NicSpec): boolean {
  return nic.macvtap !== undefined || nic.macvtapMode !== undefined
}

/** Check a NIC's options as opening it would, before any device exists. */
export function checkNic(nic: NicSpec, where?: (flag: string) => string): void {
  if (isMacvtapNic(nic)) checkOpenMacvtapOptions(nicMacvtapOptions(nic, where))
  else checkOpenTapOptions(nicOpenOptions(nic))
}

/** Open a NIC: a TAP device, or a macvtap on `nic.macvtap`; `persist` as asked. */
export function openNic(nic: NicSpec, extra: { persist?: boolean } = {}): TapDevice {
  if (isMacvtapNic(nic)) return openMacvtap({ ...nicMacvtapOptions(nic), ...extra })
  return openTap({ ...nicOpenOptions(nic), ...extra })
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
export const NETNS_HELP = 'work in this network namespace: a name (as ip netns has it) or a namespace file path'
export function addNetnsFlag(cmd: Command): Command {
  return cmd.option('--netns <name|path>', NETNS_HELP)
}

/** The link flags exec and create both take (one definition, one help text). */
export function addLinkFlags(cmd: Command, macHelp: string): Command {
  return cmd
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
}
