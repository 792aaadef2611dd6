/**
 * vmtap: Linux TAP devices for virtual machines.
 *
 * `openTap()` does what Ganeti's `netdev.OpenTap(name, features)` does — one
 * `/dev/net/tun` fd per queue, IFF_VNET_HDR / IFF_MULTI_QUEUE only when the
 * kernel reports them, one `/dev/vhost-net` fd per queue when asked — and
 * returns a typed `TapDevice` owning close-on-exec fds ready for
 * `qemu -netdev tap,fds=...,vhostfds=...`.
 *
 * Arguments are validated here, before any syscall; the native addon
 * (crates/node, over the Rust core in crates/tap) does the kernel work.
 */

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { TapError, type TapErrorFields } from './lib/errors'
import { snapshotOptions, validateInteger, validateName, validatePath, validateTristate } from './lib/validate'

export { TapError, type TapErrorFields } from './lib/errors'
export {
  cloudHypervisorArgs,
  cloudHypervisorNet,
  handOff,
  qemuArgs,
  qemuDevice,
  qemuNetdev,
  type CloudHypervisorNetOptions,
  type HandedDevice,
  type HandOff,
  type HandOffOptions,
  type HandOffSource,
  type QemuNetOptions,
  type StdioEntry,
} from './lib/handoff'

// ---------------------------------------------------------------------------
// Native binding: types and loader
// ---------------------------------------------------------------------------

/** @internal An opaque native handle (a type-tagged N-API external). */
export type NativeHandle = { readonly __vmtapHandle: unique symbol }

/** @internal What `open` returns. */
export interface NativeOpenResult {
  handle: NativeHandle
  ifname: string
  tapFds: number[]
  vhostFds: number[]
  flags: number
  features: number
}

/** @internal The normalized options `open` takes. */
export interface NativeOpenOptions {
  name: string
  queues: number
  vnetHdr: 0 | 1 | 2
  vhost: 0 | 1 | 2
  tunPath: string
  vhostPath: string
}

/** @internal The functions the addon exports (see crates/node/src/lib.rs). */
export interface NativeBinding {
  open(options: NativeOpenOptions): NativeOpenResult
  close(handle: NativeHandle): boolean
  probeFeatures(tunPath: string, vhostPath: string): { raw: number | null; vhostNet: boolean }
  getTunFeatures(fd: number): number | null
  constants: Readonly<Record<string, number>>
}

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

function loadNative(): NativeBinding {
  const suffix = platformSuffix()
  const file = `vmtap.${suffix}.node`
  const candidates: string[] = []
  const envPath = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (envPath) candidates.push(envPath)
  // The local build: next to index.ts (source checkout) or one level up
  // from dist/index.js.
  for (const dir of [__dirname, join(__dirname, '..')]) {
    const p = join(dir, file)
    if (!candidates.includes(p)) candidates.push(p)
  }
  candidates.push(`vmtap-${suffix}`)
  const errors: string[] = []
  for (const c of candidates) {
    if (c.endsWith('.node') && !existsSync(c)) {
      errors.push(`  ${c}: not found`)
      continue
    }
    try {
      return require(c) as NativeBinding
    } catch (e) {
      errors.push(`  ${c}: ${(e as Error).message.split('\n')[0]}`)
    }
  }
  const libc = process.platform === 'linux' ? (suffix.endsWith('-musl') ? 'musl' : 'glibc') : 'n/a'
  throw new Error(
    `vmtap: no native binary loads on this platform (${process.platform} ${process.arch}, libc ${libc}). ` +
      `Expected the package vmtap-${suffix} (installed through optionalDependencies) or ${file}. Tried:\n` +
      `${errors.join('\n')}\n` +
      `Reinstall without --no-optional / --omit=optional, or build from source: ` +
      `git clone the vmtap repository, then npm install (needs Rust and cargo).`,
  )
}

let nativeBinding: NativeBinding | undefined
/** @internal The loaded addon (loaded on first use). Tests may wrap its functions. */
export function native(): NativeBinding {
  return (nativeBinding ??= loadNative())
}

// ---------------------------------------------------------------------------
// Errors from the addon
// ---------------------------------------------------------------------------

/** Turn what the addon threw into the public error types. */
function fromNative(e: unknown): unknown {
  const n = e as Partial<TapErrorFields> & { vmtapError?: number; message?: string }
  if (e instanceof Error && n.vmtapError === 1 && typeof n.code === 'string') {
    const err = new TapError(e.message, {
      code: n.code,
      errno: n.errno ?? 0,
      syscall: n.syscall ?? '',
      path: n.path,
      ifname: n.ifname,
    })
    return err
  }
  return e
}

function call<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    const err = fromNative(e)
    if (err !== e) Error.captureStackTrace(err as Error, call)
    throw err
  }
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/** Options of {@link openTap}. All are optional; unknown keys are refused. */
export interface OpenTapOptions {
  /**
   * `''` or omitted: the kernel picks `tap%d`. A template with one `%d`
   * (`vm%d`): the kernel fills the lowest free number. Otherwise an exact
   * name of 1-15 bytes of printable ASCII without `/`, `:`, whitespace or `%`;
   * an existing TAP device of that name is attached to.
   */
  name?: string
  /** 1-256 (the kernel's MAX_TAP_QUEUES); more than 1 makes a multi-queue device. Default 1. */
  queues?: number
  /** `'auto'` (default): IFF_VNET_HDR when the kernel offers it; `true`: required; `false`: never. */
  vnetHdr?: boolean | 'auto'
  /** `false` (default): no vhost fds; `true`: one /dev/vhost-net fd per queue or fail; `'auto'`: all of them when possible, else none. */
  vhost?: boolean | 'auto'
  /** The TUN/TAP clone device. Default `/dev/net/tun`. */
  tunPath?: string
  /** The vhost-net device. Default `/dev/vhost-net`. */
  vhostPath?: string
}

const OPEN_KEYS = ['name', 'queues', 'vnetHdr', 'vhost', 'tunPath', 'vhostPath'] as const

/** @internal Validate and normalize openTap options (no syscall). */
export function normalizeOpenOptions(options: unknown): NativeOpenOptions {
  const o = snapshotOptions(options, 'options', OPEN_KEYS)
  return {
    name: validateName(o.name, 'options.name'),
    queues: o.queues === undefined ? 1 : validateInteger(o.queues, 'options.queues', 1, MAX_QUEUES),
    vnetHdr: validateTristate(o.vnetHdr, 'options.vnetHdr', 1),
    vhost: validateTristate(o.vhost, 'options.vhost', 0),
    tunPath: validatePath(o.tunPath, 'options.tunPath', '/dev/net/tun'),
    vhostPath: validatePath(o.vhostPath, 'options.vhostPath', '/dev/vhost-net'),
  }
}

/** The kernel's maximum number of queues of one TAP device (MAX_TAP_QUEUES). */
export const MAX_QUEUES = 256

const kToken = Symbol('vmtap.TapDevice')
const kDispose: typeof Symbol.dispose = Symbol.dispose ?? (Symbol.for('nodejs.dispose') as typeof Symbol.dispose)

interface Held {
  handle: NativeHandle
  ifname: string
}

// The backstop for devices nobody closed: release the fds when the TapDevice
// is garbage-collected, and say so, as Node does for an unclosed FileHandle.
const unclosed = new FinalizationRegistry<Held>((held) => {
  let closedNow = false
  try {
    closedNow = native().close(held.handle)
  } catch {
    // nothing more can be done here
  }
  if (closedNow) {
    process.emitWarning(
      `Closing TAP device ${held.ifname} on garbage collection; close it with tap.close() (or \`using\`) instead`,
      { type: 'Warning', code: 'VMTAP_UNCLOSED_DEVICE' },
    )
  }
})

/**
 * An open TAP device: its name and the fds that keep it alive (the seed
 * design's `(ifname, tapfds, vhostfds)`). All fds are close-on-exec; hand
 * them to a VMM explicitly. `close()` closes every fd (idempotent); a
 * non-persistent device disappears with its last fd.
 */
export class TapDevice implements Disposable {
  /** The interface name, e.g. `tap0`. */
  readonly ifname!: string
  /** One `/dev/net/tun` fd per queue, all attached to this device. */
  readonly tapFds!: readonly number[]
  /** One `/dev/vhost-net` fd per queue, or none. */
  readonly vhostFds!: readonly number[]
  /** Whether IFF_VNET_HDR is set on the device. */
  readonly vnetHdr!: boolean
  /** Whether the device is multi-queue (IFF_MULTI_QUEUE). */
  readonly multiQueue!: boolean
  #handle: NativeHandle | null

  /** @internal Use {@link openTap}. */
  constructor(token: symbol, raw: NativeOpenResult) {
    if (token !== kToken) throw new TypeError('TapDevice is not constructible; use openTap()')
    const { constants: c } = native()
    this.#handle = raw.handle
    Object.defineProperties(this, {
      ifname: { value: raw.ifname, enumerable: true },
      tapFds: { value: Object.freeze(raw.tapFds.slice()), enumerable: true },
      vhostFds: { value: Object.freeze(raw.vhostFds.slice()), enumerable: true },
      vnetHdr: { value: (raw.flags & c.IFF_VNET_HDR) !== 0, enumerable: true },
      multiQueue: { value: (raw.flags & c.IFF_MULTI_QUEUE) !== 0, enumerable: true },
    })
    unclosed.register(this, { handle: raw.handle, ifname: raw.ifname }, this)
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#handle === null
  }

  /** Close every fd. Calling it again does nothing. */
  close(): void {
    const h = this.#handle
    if (h === null) return
    this.#handle = null
    unclosed.unregister(this)
    call(() => native().close(h))
  }

  [kDispose](): void {
    this.close()
  }
}

/**
 * Open (create, or attach to) a TAP device. See {@link OpenTapOptions}.
 * Throws TypeError/RangeError for bad arguments before any syscall, and
 * {@link TapError} when the kernel refuses; nothing stays open on failure.
 */
export function openTap(options?: OpenTapOptions): TapDevice {
  const opts = normalizeOpenOptions(options)
  const raw = call(() => native().open(opts))
  return new TapDevice(kToken, raw)
}

/** What this host supports (from TUNGETFEATURES and /dev/vhost-net). */
export interface TapFeatures {
  /** TUNGETFEATURES, or null when /dev/net/tun cannot be opened. */
  raw: number | null
  tap: boolean
  noPi: boolean
  oneQueue: boolean
  vnetHdr: boolean
  multiQueue: boolean
  /** Whether /dev/vhost-net can be opened read-write by this process. */
  vhostNet: boolean
}

/** Ask the kernel what it supports. Never throws for a missing device: `raw` is null. */
export function probeFeatures(): TapFeatures {
  const n = native()
  const c = n.constants
  const { raw, vhostNet } = call(() => n.probeFeatures('/dev/net/tun', '/dev/vhost-net'))
  const has = (flag: number) => raw !== null && (raw & flag) !== 0
  return {
    raw,
    tap: has(c.IFF_TAP),
    noPi: has(c.IFF_NO_PI),
    oneQueue: has(c.IFF_ONE_QUEUE),
    vnetHdr: has(c.IFF_VNET_HDR),
    multiQueue: has(c.IFF_MULTI_QUEUE),
    vhostNet,
  }
}

/** TUNGETFEATURES for `fd`, or null when the ioctl fails (e.g. a regular file). */
export function getTunFeatures(fd: number): number | null {
  validateInteger(fd, 'fd', 0, 2 ** 31 - 1)
  return call(() => native().getTunFeatures(fd))
}

/** Values from `<linux/if_tun.h>`. */
export interface TunConstants {
  readonly TUNSETIFF: number
  readonly TUNGETIFF: number
  readonly TUNGETFEATURES: number
  readonly TUNSETPERSIST: number
  readonly TUNSETOWNER: number
  readonly TUNSETGROUP: number
  readonly TUNSETOFFLOAD: number
  readonly TUNGETVNETHDRSZ: number
  readonly TUNSETVNETHDRSZ: number
  readonly TUNSETQUEUE: number
  readonly IFF_TUN: number
  readonly IFF_TAP: number
  readonly IFF_NO_PI: number
  readonly IFF_ONE_QUEUE: number
  readonly IFF_VNET_HDR: number
  readonly IFF_MULTI_QUEUE: number
  readonly IFF_ATTACH_QUEUE: number
  readonly IFF_DETACH_QUEUE: number
  readonly IFF_PERSIST: number
  readonly IFF_TUN_EXCL: number
  readonly MAX_QUEUES: number
}

/** Values from `<linux/if_tun.h>` (TUNSETIFF, IFF_TAP, ...), as the kernel defines them. */
export const constants: TunConstants = Object.freeze({
  TUNSETIFF: 0x400454ca,
  TUNGETIFF: 0x800454d2,
  TUNGETFEATURES: 0x800454cf,
  TUNSETPERSIST: 0x400454cb,
  TUNSETOWNER: 0x400454cc,
  TUNSETGROUP: 0x400454ce,
  TUNSETOFFLOAD: 0x400454d0,
  TUNGETVNETHDRSZ: 0x800454d7,
  TUNSETVNETHDRSZ: 0x400454d8,
  TUNSETQUEUE: 0x400454d9,
  IFF_TUN: 0x0001,
  IFF_TAP: 0x0002,
  IFF_NO_PI: 0x1000,
  IFF_ONE_QUEUE: 0x2000,
  IFF_VNET_HDR: 0x4000,
  IFF_MULTI_QUEUE: 0x0100,
  IFF_ATTACH_QUEUE: 0x0200,
  IFF_DETACH_QUEUE: 0x0400,
  IFF_PERSIST: 0x0800,
  IFF_TUN_EXCL: 0x8000,
  MAX_QUEUES: 256,
})
