// The native addon: its interface, and the loader that finds the binary for
// this platform. Loaded on first use, so `require('vmtap')` stays cheap.

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { type ErrorDetail, makeError } from './errors'
import type { Limits } from './limits'
import type { Tristate } from './validate'

/** An opaque native handle (a type-tagged N-API external). */
export type NativeHandle = { readonly __vmtapHandle: unique symbol }

/** What `open` returns: `[handle, ifname, flags, features, tapFds, vhostFds]` (an array: cheaper to build than an object). */
export type NativeOpenResult = [
  handle: NativeHandle,
  ifname: string,
  flags: number,
  features: number,
  tapFds: number[],
  vhostFds: number[],
]

/** The configuration part of openTap's options; `null` when none is given (the usual case). */
export interface NativeOpenConfig {
  exclusive: boolean
  uniqueName: boolean
  persist: boolean
  owner: number | null
  group: number | null
  vnetHdrSize: number | null
  offloads: number | null
  mtu: number | null
  mac: string | null
  bridge: string | null
  up: boolean
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
}

/** What the kernel reports about the link. */
export interface LinkInfo {
  up: boolean
  mtu: number
  mac: string
  ifindex: number
}

/** The functions the addon exports (crates/node). */
export interface NativeBinding {
  open(...args: NativeOpenArgs): NativeOpenResult
  close(handle: NativeHandle): boolean
  openAsync(...args: NativeOpenArgs): Promise<NativeOpenResult>
  closeAsync(handle: NativeHandle): Promise<boolean>
  closeAll(handles: NativeHandle[], maxThreads: number): Promise<(Error | null)[]>
  probeFeatures(tunPath: string, vhostPath: string): { raw: number | null; vhostNet: boolean }
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
  probeOffloads(tunPath: string): number
  deleteTap(name: string, tunPath: string): void
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
  init(makeError: (ctx: ErrorDetail) => Error): void
}

/** `open(name, queues, vnetHdr, vhost, tunPath, vhostPath, config, mode?)`. */
export type NativeOpenArgs = [
  name: string,
  queues: number,
  vnetHdr: Tristate,
  vhost: Tristate,
  tunPath: string | null,
  vhostPath: string | null,
  config: NativeOpenConfig | null,
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

function loadNative(): NativeBinding {
  const suffix = platformSuffix()
  const file = `vmtap.${suffix}.node`
  const candidates: string[] = []
  const envPath = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (envPath) candidates.push(envPath)
  // The local build: in the package root, one level up from lib/ (source
  // checkout) and two from dist/lib/.
  for (const dir of [join(__dirname, '..'), join(__dirname, '..', '..')]) {
    const p = join(dir, file)
    if (!candidates.includes(p)) candidates.push(p)
  }
  candidates.push(`vmtap-${suffix}`)
  const errors: string[] = []
  for (const c of candidates) {
    if (c.endsWith('.node') && !existsSync(c)) {
      errors.push(`${c}: not found`)
      continue
    }
    try {
      return require(c) as NativeBinding
    } catch (e) {
      errors.push(`${c}: ${(e as Error).message.split('\n')[0]}`)
    }
  }
  const libc = process.platform === 'linux' ? (suffix.endsWith('-musl') ? 'musl' : 'glibc') : 'n/a'
  throw new Error(
    `vmtap: no native binary loads on this platform (${process.platform} ${process.arch}, libc ${libc}). ` +
      `Expected the package vmtap-${suffix} (installed through optionalDependencies) or ${file}. Tried:\n` +
      `${errors.map((e) => `  ${e}`).join('\n')}\n` +
      (SUPPORTED.includes(suffix)
        ? `Reinstall without --no-optional / --omit=optional; if a package-lock.json made on another platform lacks ` +
          `vmtap-${suffix} (npm/cli#4828), delete package-lock.json and node_modules and run npm install again. `
        : `vmtap ships prebuilt binaries for ${SUPPORTED.join(', ')} only. `) +
      `Or build from source (needs Rust >= 1.77 and cargo): git clone https://github.com/vmtap/vmtap && cd vmtap && ` +
      `npm install, then set NAPI_RS_NATIVE_LIBRARY_PATH=$PWD/${file}.`,
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
    b.init(makeError)
    nativeBinding = b
  }
  return nativeBinding
}
