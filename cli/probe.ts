// `vmtap probe`: what this host supports, as a table or JSON (schema 1).

import { closeSync, constants as fsConstants, existsSync, openSync, readFileSync } from 'node:fs'
import { release } from 'node:os'

import type { Command } from 'commander'

import { constants, limits, type Offloads, probeFeatures, probeOffloads } from '../index'
import { describeError } from './errors'

/** `vmtap probe --json`, schema 1. Every key is always present. */
export interface ProbeReport {
  schema: 1
  /** os.release() */
  kernel: string
  /** CAP_NET_ADMIN in the effective set (CapEff bit 12), or null when /proc/self/status is unreadable. */
  capNetAdmin: boolean | null
  tun: DeviceNode
  vhostNet: DeviceNode
  features: {
    /** TUNGETFEATURES, or null when /dev/net/tun cannot be opened. */
    raw: number | null
    /** The names of its set bits (IFF_*); a bit without a name as 0x.... */
    names: string[]
    tap: boolean
    noPi: boolean
    oneQueue: boolean
    vnetHdr: boolean
    multiQueue: boolean
  }
  /** Queues one device may have: limits.maxQueues with IFF_MULTI_QUEUE, 1 without, null when unknown. */
  maxQueues: number | null
  /** Whether IFF_VNET_HDR is available (same as features.vnetHdr). */
  vnetHdr: boolean
  /** The offloads TUNSETOFFLOAD accepts, or null when they could not be probed. */
  offloads: Required<Offloads> | null
  /** Why offloads is null ("needs CAP_NET_ADMIN", or the error); null when it is not. */
  offloadsUnknownReason: string | null
}

export interface DeviceNode {
  path: string
  exists: boolean
  /** Whether this process can open it read-write. */
  openable: boolean
  /** The errno name of the failed open (ENOENT, EACCES...), or null. */
  error: string | null
}

/** The names of the bits of a TUNGETFEATURES value, lowest bit first. */
export function featureNames(raw: number): string[] {
  const byBit = new Map<number, string>()
  for (const [name, value] of Object.entries(constants)) {
    if (name.startsWith('IFF_') && value > 0 && (value & (value - 1)) === 0) byBit.set(value, name)
  }
  const names: string[] = []
  for (let bit = 1; bit !== 0 && bit <= raw; bit = (bit << 1) >>> 0) {
    if ((raw & bit) === 0) continue
    names.push(byBit.get(bit) ?? `0x${bit.toString(16).padStart(4, '0')}`)
  }
  return names
}

function probeNode(path: string): DeviceNode {
  const exists = existsSync(path)
  try {
    closeSync(openSync(path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK))
    return { path, exists, openable: true, error: null }
  } catch (e) {
    return { path, exists, openable: false, error: (e as NodeJS.ErrnoException).code ?? 'EIO' }
  }
}

const CAP_NET_ADMIN = 12

/** CapEff bit 12 of /proc/self/status, or null. */
export function hasCapNetAdmin(status?: string): boolean | null {
  let text = status
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/status', 'utf8')
    } catch {
      return null
    }
  }
  const m = text.match(/^CapEff:\s*([0-9a-fA-F]+)\s*$/m)
  if (!m) return null
  return ((BigInt(`0x${m[1]}`) >> BigInt(CAP_NET_ADMIN)) & 1n) === 1n
}

export function probe(netns?: string): ProbeReport {
  const where = netns === undefined ? {} : { netns }
  const tun = probeNode('/dev/net/tun')
  const vhostNet = probeNode('/dev/vhost-net')
  const f = probeFeatures(where)
  const capNetAdmin = hasCapNetAdmin()
  let offloads: Required<Offloads> | null = null
  let offloadsUnknownReason: string | null = null
  if (capNetAdmin !== true) offloadsUnknownReason = 'needs CAP_NET_ADMIN'
  else if (!tun.openable) offloadsUnknownReason = `/dev/net/tun cannot be opened (${tun.error})`
  else {
    try {
      offloads = probeOffloads(where)
    } catch (e) {
      const { line } = describeError(e)
      offloadsUnknownReason = line.replace(/^vmtap: /, '')
    }
  }
  return {
    schema: 1,
    kernel: release(),
    capNetAdmin,
    tun,
    vhostNet,
    features: {
      raw: f.raw,
      names: f.raw === null ? [] : featureNames(f.raw),
      tap: f.tap,
      noPi: f.noPi,
      oneQueue: f.oneQueue,
      vnetHdr: f.vnetHdr,
      multiQueue: f.multiQueue,
    },
    maxQueues: f.raw === null ? null : f.multiQueue ? limits.maxQueues : 1,
    vnetHdr: f.vnetHdr,
    offloads,
    offloadsUnknownReason,
  }
}

/** The human table: one `key  value` row per line, values aligned. */
export function probeTable(r: ProbeReport): string {
  const yesNo = (b: boolean) => (b ? 'yes' : 'no')
  const node = (n: DeviceNode) =>
    n.openable
      ? 'present, read/write'
      : n.exists
        ? `present, cannot be opened read/write (${n.error})`
        : `absent (${n.error})`
  const rows: [string, string][] = [
    ['kernel', r.kernel],
    ['CAP_NET_ADMIN', r.capNetAdmin === null ? 'unknown' : yesNo(r.capNetAdmin)],
    [r.tun.path, node(r.tun)],
    [r.vhostNet.path, node(r.vhostNet)],
    [
      'TUNGETFEATURES',
      r.features.raw === null
        ? 'unknown (/dev/net/tun cannot be opened)'
        : `0x${r.features.raw.toString(16).padStart(4, '0')} ${r.features.names.join(' ')}`,
    ],
    ['tap', r.features.raw === null ? 'unknown' : yesNo(r.features.tap)],
    [
      'multi-queue',
      r.maxQueues === null
        ? 'unknown'
        : r.features.multiQueue
          ? `yes, up to ${r.maxQueues} queues per device`
          : 'no (1 queue per device)',
    ],
    ['vnet_hdr', r.features.raw === null ? 'unknown' : yesNo(r.vnetHdr)],
    ['vhost-net', r.vhostNet.openable ? 'yes' : 'no'],
    [
      'offloads',
      r.offloads === null
        ? `unknown (${r.offloadsUnknownReason})`
        : Object.entries(r.offloads)
            .filter(([, on]) => on)
            .map(([k]) => k)
            .join(' ') || 'none',
    ],
  ]
  const width = Math.max(...rows.map(([k]) => k.length)) + 2
  return `${rows.map(([k, v]) => `${k.padEnd(width)}${v}`).join('\n')}\n`
}

const PROBE_HELP = `
Reports TUNGETFEATURES (bits by name), the queue limit of a multi-queue device,
vnet_hdr, the offloads TUNSETOFFLOAD accepts (probed on a throwaway device: needs
CAP_NET_ADMIN, "unknown" without it), whether /dev/net/tun and /dev/vhost-net
exist and open read/write, CAP_NET_ADMIN (CapEff bit 12) and the kernel release.

--json prints one object (schema 1; every key is always present):
  schema                 1
  kernel                 string      os.release()
  capNetAdmin            bool|null   null: /proc/self/status unreadable
  tun, vhostNet          { path: string, exists: bool, openable: bool, error: string|null }
                                     error: errno name of the failed open (ENOENT, EACCES...)
  features               { raw: number|null, names: string[], tap, noPi, oneQueue,
                           vnetHdr, multiQueue: bool }   raw null: /dev/net/tun unusable
  maxQueues              number|null ${limits.maxQueues} with IFF_MULTI_QUEUE, 1 without, null unknown
  vnetHdr                bool
  offloads               { csum, tso4, tso6, ecn, ufo, uso4, uso6: bool } | null
  offloadsUnknownReason  string|null why offloads is null

Examples:
  vmtap probe
  vmtap probe --json | jq .features.multiQueue
`

/** Add `probe` to the program. */
export function addProbeCommand(program: Command, onStatus: (status: number) => void): void {
  program
    .command('probe')
    .description('show what this host supports')
    .option('--json', 'print JSON (schema 1) instead of a table')
    .option('--netns <name|path>', 'probe inside this network namespace (features, offloads)')
    .addHelpText('after', PROBE_HELP)
    .action((opts: { json?: boolean; netns?: string }) => {
      const r = probe(opts.netns)
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : probeTable(r))
      onStatus(0)
    })
}
