// Flags shared by the commands that open devices (exec, create): their
// parsers, the --net group syntax, and the one mapping from a NIC's flags to
// openTap's options.

import { type Command, InvalidArgumentError, Option } from 'commander'

import { limits, type OpenTapOptions, type Tristate } from '../index'

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

/** How a device kind is spelled on the command line (openTap's `mode`). */
export type ModeFlag = 'tap' | 'tun'
export const MODE_FLAGS: readonly ModeFlag[] = ['tap', 'tun']

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
}

const NET_KEYS = ['mode', 'name', 'queues', 'vhost', 'vnet-hdr', 'bridge', 'mtu', 'mac', 'up'] as const

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
    }
  }
  return nic
}

/** openTap's options for a NIC's flags: the one mapping exec and create share. */
export function nicOpenOptions(nic: NicSpec): OpenTapOptions {
  const o: OpenTapOptions = {}
  if (nic.mode !== undefined) o.mode = nic.mode
  if (nic.name !== undefined) o.name = nic.name
  if (nic.queues !== undefined) o.queues = nic.queues
  if (nic.vhost !== undefined) o.vhost = tristateOfFlag(nic.vhost)
  if (nic.vnetHdr !== undefined) o.vnetHdr = tristateOfFlag(nic.vnetHdr)
  if (nic.mtu !== undefined) o.mtu = nic.mtu
  if (nic.mac !== undefined) o.mac = nic.mac
  if (nic.bridge !== undefined) o.bridge = nic.bridge
  if (nic.up !== undefined) o.up = nic.up
  return o
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
}
