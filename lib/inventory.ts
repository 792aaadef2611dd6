// The TUN/TAP devices of the network namespace: listing them (one netlink
// dump), who holds one (/proc), and collecting tagged leftovers.

import type { TapError } from './errors'
import { native } from './native'
import {
  type NetnsSpec,
  netnsOf,
  snapshotOptions,
  TUN_PATH,
  validateBoolean,
  validateIfName,
  validatePath,
  validateTag,
} from './validate'

/** One TUN/TAP device, as {@link listTaps} reports it. */
export interface TapInfo {
  ifname: string
  ifindex: number
  type: 'tap' | 'tun'
  /** IFF_VNET_HDR */
  vnetHdr: boolean
  /** IFF_MULTI_QUEUE */
  multiQueue: boolean
  /** TUNSETPERSIST: the device outlives its fds. */
  persist: boolean
  /** TUNSETOWNER's uid, or null. */
  owner: number | null
  /** TUNSETGROUP's gid, or null. */
  group: number | null
  /**
   * Attached (enabled) queues: the kernel's numqueues for a multi-queue
   * device; for a single-queue one 1 or 0, from its carrier (the kernel
   * turns it on at the attach and off at the detach).
   */
  queues: number
  /** Queues attached but disabled (TUNSETQUEUE), the kernel's numdisabled; 0 for single-queue devices. */
  disabledQueues: number
  mtu: number
  /** `aa:bb:cc:dd:ee:ff`, or null for a TUN device. */
  mac: string | null
  /** IFF_UP */
  up: boolean
  /** The bridge (or other master) the device is a port of, or null. */
  master: string | null
  /** The vmtap tag in the interface alias (`vmtap:tag=<tag>`), or null (no alias, or another one). */
  tag: string | null
}

/** A process holding fds attached to a device. */
export interface TapHolder {
  pid: number
  /** `/proc/<pid>/comm`: the executable's name, at most 15 bytes (`qemu-system-x86`). */
  command: string
  /** The fds attached to the device, ascending. */
  fds: number[]
}

/** A device's counters, as `ip -s link` shows them (IFLA_STATS64). */
export interface TapStats {
  rxPackets: number
  rxBytes: number
  rxErrors: number
  rxDropped: number
  txPackets: number
  txBytes: number
  txErrors: number
  txDropped: number
}

/** A tagged persistent device {@link gcTaps} looked at. */
export interface GcEntry {
  ifname: string
  ifindex: number
  tag: string
}

/** A device gcTaps kept because a process holds it. */
export interface GcKept extends GcEntry {
  /** Who, as /proc shows it (empty when this process may not read the holder's fds). */
  holders: TapHolder[]
}

/** A device gcTaps could not examine or remove: left as it was, unless the error says otherwise. */
export interface GcFailed extends GcEntry {
  error: TapError
}

/** What {@link gcTaps} did. */
export interface GcResult {
  dryRun: boolean
  /** Removed (with dryRun: unheld now, so they would be). */
  removed: GcEntry[]
  kept: GcKept[]
  failed: GcFailed[]
}

/** Where listTaps looks. */
export interface InventoryOptions {
  /** The network namespace to list (as openTap's `netns`). Default: the caller's. */
  netns?: NetnsSpec
}

/** Options of {@link tapHolders} (none yet; `{}` is accepted). */
export type HoldersOptions = Record<string, never>

/** Options of {@link gcTaps}. */
export interface GcTapsOptions {
  /** Only devices with this tag (default: any vmtap tag). */
  tag?: string
  /** Report what would be removed; remove nothing. */
  dryRun?: boolean
  /** The TUN/TAP clone device. Default `/dev/net/tun`. */
  tunPath?: string
  /** The network namespace to collect in (as openTap's `netns`). Default: the caller's. */
  netns?: NetnsSpec
}

const TAP = 1
const VNET_HDR = 2
const MULTI_QUEUE = 4
const PERSIST = 8
const UP = 16

/**
 * Every TUN/TAP device of this network namespace (or of `netns`), in ifindex order, from one
 * netlink dump (plus one request per bridge the devices are ports of, for
 * its name). No `ip`, no sysfs.
 */
export function listTaps(options?: InventoryOptions): TapInfo[] {
  const o = snapshotOptions(options, 'options', ['netns'])
  return native()
    .listTaps(netnsOf(o.netns))
    .map(([ifname, ifindex, bits, owner, group, queues, disabledQueues, mtu, mac, master, tag]) => ({
      ifname,
      ifindex,
      type: bits & TAP ? 'tap' : 'tun',
      vnetHdr: (bits & VNET_HDR) !== 0,
      multiQueue: (bits & MULTI_QUEUE) !== 0,
      persist: (bits & PERSIST) !== 0,
      owner,
      group,
      queues,
      disabledQueues,
      mtu,
      mac,
      up: (bits & UP) !== 0,
      master,
      tag,
    }))
}

/**
 * The processes holding fds attached to the device `name` (the `iff:` line of
 * `/proc/<pid>/fdinfo/<fd>`), in pid order; `[]` when none. It walks every
 * process's fds: tens of milliseconds on a busy host. Processes whose fds this
 * one may not read (another user's, when not root) are not seen, and fdinfo
 * does not say which network namespace a device is in: a process holding a
 * device of the same name in another namespace is listed too.
 */
export function tapHolders(name: string, options?: HoldersOptions): TapHolder[] {
  const n = validateIfName(name, 'name')
  snapshotOptions(options, 'options', [])
  return native().tapHolders(n)
}

/**
 * Remove the persistent TUN/TAP devices that carry a vmtap tag (`tag`, or
 * any) and that no process holds: the leftovers of a crashed VM manager.
 * Untagged devices and held ones are never touched; a device a process
 * acquires while it is collected is kept (see README, "Collecting
 * leftovers"). Runs on the libuv pool (each removal waits for the kernel's
 * teardown). A failure on one device is in `failed`; the others are still
 * collected.
 */
export async function gcTaps(options?: GcTapsOptions): Promise<GcResult> {
  const o = snapshotOptions(options, 'options', ['tag', 'dryRun', 'tunPath', 'netns'])
  const tag = o.tag === undefined ? null : validateTag(o.tag, 'options.tag')
  const dryRun = o.dryRun === undefined ? false : validateBoolean(o.dryRun, 'options.dryRun')
  const tunPath = validatePath(o.tunPath, 'options.tunPath', TUN_PATH)
  const netns = netnsOf(o.netns)
  const r = await native().gcTaps(tag, dryRun, tunPath, netns)
  return { dryRun, removed: r.removed, kept: r.kept, failed: r.failed as GcFailed[] }
}
