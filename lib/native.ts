// The native addon: its interface, and the loader that finds the binary for
// this platform. Loaded on first use, so `require('vmtap')` stays cheap.

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { type ErrorDetail, makeError } from './errors'
import type { GcEntry, GcKept, TapHolder, TapStats } from './inventory'
import type { Limits } from './limits'
import type { NetnsSpec, Tristate } from './validate'

/** An opaque native handle (a type-tagged N-API external). */
export type NativeHandle = { readonly __vmtapHandle: unique symbol }

/**
 * What `open` and `openMacvtap` return: `[handle, ifname, flags, features, tapFds, vhostFds, kind, mac]`
 * (an array: cheaper to build than an object); `mac` is a macvtap's (the guest NIC's), null for a TAP device.
 */
export type NativeOpenResult = [
  handle: NativeHandle,
  ifname: string,
  flags: number,
  features: number,
  tapFds: number[],
  vhostFds: number[],
  kind: 'tap' | 'macvtap',
  mac: string | null,
]

/** The configuration part of openMacvtap's options; `null` when none is given. */
export interface NativeMacvtapConfig {
  /** null: /dev/vhost-net */
  vhostPath: string | null
  mac: string | null
  mtu: number | null
  up: boolean
  persist: boolean
  /** Present only when given. */
  tag?: string
}

/** `openMacvtap(link, mode, name, queues, vnetHdr, vhost, config, netns)` (the addon takes at most 8 arguments). */
export type NativeMacvtapArgs = [
  link: string,
  mode: string,
  name: string,
  queues: number,
  vnetHdr: Tristate,
  vhost: Tristate,
  config: NativeMacvtapConfig | null,
  netns: NetnsSpec | null,
]

/** The configuration part of openTap's options; `null` when none is given (the usual case). */
export interface NativeOpenConfig {
  exclusive: boolean
  uniqueName: boolean
  persist: boolean
  owner: number | null
  group: number | null
  /** The caller opted out of the default owner (`owner: null`). */
  ownerless: boolean
  vnetHdrSize: number | null
  offloads: number | null
  mtu: number | null
  mac: string | null
  bridge: string | null
  up: boolean
  /** Present only when given (the addon reads an absent one as null), as are the ones below. */
  tag?: string
  /** CIDR strings, validated (lib/net.ts). */
  addresses?: string[]
  routes?: string[]
  proxyArp?: boolean
  proxyNdp?: boolean
  forwarding?: boolean
  bridgePort?: NativeBridgePort
  txQueueLen?: number
}

/** Bridge port flags as the addon takes them: null leaves a flag alone. */
export interface NativeBridgePort {
  isolated: boolean | null
  learning: boolean | null
  unicastFlood: boolean | null
  hairpin: boolean | null
}

/** The normalized options: `open(name, queues, vnetHdr, vhost, tunPath, vhostPath, config, mode)`. */
export interface NativeOpenOptions {
  /** null: 'tap' */
  mode: 'tap' | 'tun' | null
  name: string
  queues: number
  vnetHdr: Tristate
  vhost: Tristate
  /** null: /dev/net/tun */
  tunPath: string | null
  /** null: /dev/vhost-net */
  vhostPath: string | null
  config: NativeOpenConfig | null
  /** null: the caller's namespace */
  netns: NetnsSpec | null
}

/** What the kernel reports about the link. */
export interface LinkInfo {
  /** The device's name now (it follows a rename). */
  ifname: string
  up: boolean
  mtu: number
  mac: string
  ifindex: number
  /** Whether the link has a carrier: on while a queue is attached, unless `setCarrier(false)`. */
  carrier: boolean
  /** The transmit queue length (`txqlen` in `ip link`). */
  txQueueLen: number
}

/**
 * One device of `listTaps()`: `[ifname, ifindex, bits, owner, group, queues,
 * disabledQueues, mtu, mac, master, tag]`; bits: 1 tap, 2 vnet_hdr,
 * 4 multi_queue, 8 persist, 16 up.
 */
export type NativeTapRow = [
  ifname: string,
  ifindex: number,
  bits: number,
  owner: number | null,
  group: number | null,
  queues: number,
  disabledQueues: number,
  mtu: number,
  mac: string | null,
  master: string | null,
  tag: string | null,
]

/** What `gcTaps` resolves with. */
export interface NativeGcReport {
  removed: GcEntry[]
  kept: GcKept[]
  failed: (GcEntry & { error: Error })[]
}

/** What `peerCredentials` returns: the kernel's record of a Unix socket's peer. */
export interface NativePeerCredentials {
  pid: number
  uid: number
  gid: number
  groups: number[] | null
}

/** The functions the addon exports (crates/node). */
export interface NativeBinding {
  open(...args: NativeOpenArgs): NativeOpenResult
  adoptTap(tapFds: number[], vhostFds: number[]): NativeOpenResult
  close(handle: NativeHandle): boolean
  /** Up to limits.maxOpenBatch `open` argument lists, opened one after the other on one pool thread: per entry what `open` returns, or its error. */
  openBatch(list: NativeOpenArgs[]): Promise<(NativeOpenResult | Error)[]>
  openAsync(...args: NativeOpenArgs): Promise<NativeOpenResult>
  openMacvtap(...args: NativeMacvtapArgs): NativeOpenResult
  openMacvtapAsync(...args: NativeMacvtapArgs): Promise<NativeOpenResult>
  closeAsync(handle: NativeHandle): Promise<boolean>
  closeAll(handles: NativeHandle[], maxThreads: number): Promise<(Error | null)[]>
  probeFeatures(tunPath: string, vhostPath: string, netns: NetnsSpec | null): { raw: number | null; vhostNet: boolean }
  getTunFeatures(fd: number): number | null
  setPersist(handle: NativeHandle, on: boolean): void
  setOwner(handle: NativeHandle, uid: number): void
  setGroup(handle: NativeHandle, gid: number): void
  getVnetHdrSize(handle: NativeHandle): number
  setVnetHdrSize(handle: NativeHandle, size: number): void
  setOffloads(handle: NativeHandle, bits: number): number
  setQueueEnabled(handle: NativeHandle, index: number, enabled: boolean): void
  setLinkUp(handle: NativeHandle, up: boolean): void
  getLinkInfo(handle: NativeHandle): LinkInfo
  setMtu(handle: NativeHandle, mtu: number): void
  setMac(handle: NativeHandle, mac: string): void
  attachToBridge(handle: NativeHandle, bridge: string): void
  detachFromBridge(handle: NativeHandle, bridge: string): void
  probeOffloads(tunPath: string, netns: NetnsSpec | null): number
  deleteTap(name: string, tunPath: string, netns: NetnsSpec | null): void
  setTag(handle: NativeHandle, tag: string | null): void
  getStats(handle: NativeHandle): TapStats
  addAddress(handle: NativeHandle, cidr: string): void
  removeAddress(handle: NativeHandle, cidr: string): void
  addRoute(handle: NativeHandle, dest: string): void
  removeRoute(handle: NativeHandle, dest: string): void
  setProxyArp(handle: NativeHandle, on: boolean): void
  setProxyNdp(handle: NativeHandle, on: boolean): void
  setForwarding(handle: NativeHandle, on: boolean): void
  setBridgePort(handle: NativeHandle, flags: NativeBridgePort): void
  setTxQueueLen(handle: NativeHandle, len: number): void
  setCarrier(handle: NativeHandle, on: boolean): void
  listTaps(netns: NetnsSpec | null): NativeTapRow[]
  tapHolders(name: string): TapHolder[]
  gcTaps(tag: string | null, dryRun: boolean, tunPath: string, netns: NetnsSpec | null): Promise<NativeGcReport>
  /** `onWait(id)` is called when the call starts waiting for the socket: `cancel(id)` aborts it. */
  sendFds(
    socket: number,
    data: Buffer,
    fds: number[],
    timeoutMs: number | null,
    onWait: ((id: number) => void) | null,
  ): Promise<number>
  recvFds(
    socket: number,
    maxBytes: number,
    maxFds: number,
    timeoutMs: number | null,
    onWait: ((id: number) => void) | null,
  ): Promise<{ data: Buffer; fds: number[]; truncated: boolean }>
  peerCredentials(fd: number): NativePeerCredentials
  /** Abort a waiting sendFds/recvFds (it rejects with ABORT_ERR); false when it already settled. */
  cancel(id: number): boolean
  /** Close-on-exec duplicates of `fds`, made now; the caller closes them. */
  dupFds(fds: number[]): number[]
  /**
   * A reader of queue `queue` (paused): `onFrames(null, pool, start, lengths, hdrLen)` per batch read (the
   * frames back to back in `pool` from `start`, their lengths as little-endian u32s), `onFrames(error)` once
   * after a failed read, `onFrames(null, null)` when the device closed.
   */
  frameReader(
    handle: NativeHandle,
    queue: number,
    onFrames: (err: Error | null, pool: Buffer | null, start: number, lengths: Buffer, hdrLen: number) => void,
    batch?: number,
  ): number
  readerResume(id: number): boolean
  readerPause(id: number): boolean
  readerClose(id: number): boolean
  /** Bytes written at once, or a promise of them when the queue had to be waited for. */
  writeFrame(
    handle: NativeHandle,
    queue: number,
    frame: Buffer,
    header: Buffer | null,
    onWait: ((id: number) => void) | null,
  ): number | Promise<number>
  constants: Readonly<Record<string, number>>
  limits: Limits
  /**
   * `makeError` builds every error the addon raises; `onUnclosed(ifname)` is
   * called when a device nobody closed was garbage-collected (the addon
   * closes it on a thread of its own).
   */
  init(makeError: (ctx: ErrorDetail) => Error, onUnclosed: (ifname: string) => void): void
}

/** `open(name, queues, vnetHdr, vhost, tunPath, vhostPath, config, netns, mode)`. */
export type NativeOpenArgs = [
  name: string,
  queues: number,
  vnetHdr: Tristate,
  vhost: Tristate,
  tunPath: string | null,
  vhostPath: string | null,
  config: NativeOpenConfig | null,
  netns?: NetnsSpec | null,
  mode?: 'tap' | 'tun' | null,
]

function isMusl(): boolean {
  // As napi-rs' generated loaders do: ldd's text first, then the report.
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    // fall through
  }
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    return !report?.header?.glibcVersionRuntime
  } catch {
    return false
  }
}

/** The napi-rs platform suffix of this process, e.g. `linux-x64-gnu`. */
export function platformSuffix(): string {
  const abi = process.platform === 'linux' ? (isMusl() ? '-musl' : '-gnu') : ''
  return `${process.platform}-${process.arch}${abi}`
}

const SUPPORTED = ['linux-x64-gnu', 'linux-x64-musl', 'linux-arm64-gnu', 'linux-arm64-musl']

interface Located {
  suffix: string
  file: string
  /** Where a binary was looked for, in order, and whether it is there. */
  candidates: { path: string; present: boolean; why?: string }[]
}

/**
 * Where the addon may be, in order: NAPI_RS_NATIVE_LIBRARY_PATH, the local
 * build (the package root: one level up from lib/ in a checkout, two from
 * dist/lib/), then the platform package vmtap-<platform>. Only looks (stat
 * and module resolution): nothing is loaded.
 */
function locate(): Located {
  const suffix = platformSuffix()
  const file = `vmtap.${suffix}.node`
  const paths: string[] = []
  const envPath = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (envPath) paths.push(envPath)
  for (const dir of [join(__dirname, '..'), join(__dirname, '..', '..')]) {
    const p = join(dir, file)
    if (!paths.includes(p)) paths.push(p)
  }
  paths.push(`vmtap-${suffix}`)
  const candidates = paths.map((path) => {
    if (path.endsWith('.node')) return { path, present: existsSync(path), why: 'not found' }
    try {
      require.resolve(path)
      return { path, present: true }
    } catch {
      return { path, present: false, why: 'not installed' }
    }
  })
  return { suffix, file, candidates }
}

/** ERR_VMTAP_NO_BINARY: what was tried, and what to do. */
function noBinary(l: Located, tried: string[]): Error {
  const libc = process.platform === 'linux' ? (l.suffix.endsWith('-musl') ? 'musl' : 'glibc') : 'n/a'
  return makeError({
    code: 'ERR_VMTAP_NO_BINARY',
    message:
      `no native binary loads on this platform (${process.platform} ${process.arch}, libc ${libc}). ` +
      `Expected the package vmtap-${l.suffix} (installed through optionalDependencies, or its tarball installed ` +
      `beside vmtap's) or ${l.file}. Tried: ${tried.join('; ')}. ` +
      (SUPPORTED.includes(l.suffix)
        ? `Reinstall without --no-optional / --omit=optional; if a package-lock.json made on another platform lacks ` +
          `vmtap-${l.suffix} (npm/cli#4828), delete package-lock.json and node_modules and run npm install again. ` +
          `A copy of a checkout without its binary (npm install --install-links) does not work: install the ` +
          `checkout itself (npm install /path/to/vmtap) or the two release tarballs. `
        : `vmtap ships prebuilt binaries for ${SUPPORTED.join(', ')} only. `) +
      `Or build from source (needs Rust >= 1.77 and cargo): git clone https://github.com/vmtap/vmtap && cd vmtap && ` +
      `npm install, then set NAPI_RS_NATIVE_LIBRARY_PATH=$PWD/${l.file}.`,
  })
}

// Looked up when the package is required, so an install without its binary
// fails at once with the reason instead of at the first call.
const located = locate()
if (!located.candidates.some((c) => c.present)) {
  throw noBinary(
    located,
    located.candidates.map((c) => `${c.path}: ${c.why}`),
  )
}

function loadNative(): NativeBinding {
  const tried: string[] = []
  for (const c of located.candidates) {
    if (!c.present) {
      tried.push(`${c.path}: ${c.why}`)
      continue
    }
    try {
      return require(c.path) as NativeBinding
    } catch (e) {
      tried.push(`${c.path}: ${(e as Error).message.split('\n')[0]}`)
    }
  }
  throw noBinary(located, tried)
}

/** The GC backstop's warning, as Node warns of an unclosed FileHandle. */
function warnUnclosed(ifname: string): void {
  process.emitWarning(
    `Closing TAP device ${ifname} on garbage collection; close it with tap.close() or closeAsync() (or \`using\`) instead`,
    { type: 'Warning', code: 'VMTAP_UNCLOSED_DEVICE' },
  )
}

let nativeBinding: NativeBinding | undefined
/**
 * The loaded addon (loaded on first use, once per thread). Every error it
 * raises is built by makeError, from lib/errors.ts' one table. Tests may wrap
 * its functions.
 */
export function native(): NativeBinding {
  if (nativeBinding === undefined) {
    const b = loadNative()
    b.init(makeError, warnUnclosed)
    nativeBinding = b
  }
  return nativeBinding
}
