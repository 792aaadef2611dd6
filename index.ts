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
import type { Socket } from 'node:net'
import { join } from 'node:path'

import { constants } from './lib/constants'
import { invalidType, invalidValue, outOfRange, TapError, type TapErrorFields } from './lib/errors'
import type * as Qmp from './lib/qmp'
import { copyArray, isArray, readProperty, snapshotOptions, validateBoolean, validateInteger, validateMac, validateName, validatePath, validateTristate } from './lib/validate'

export { constants, type TunConstants } from './lib/constants'
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
export type { HotpluggedNic, HotplugNicOptions, QmpConnectOptions, QmpEvent } from './lib/qmp'

// ---------------------------------------------------------------------------
// Native binding: types and loader
// ---------------------------------------------------------------------------

/** @internal An opaque native handle (a type-tagged N-API external). */
export type NativeHandle = { readonly __vmtapHandle: unique symbol }

/** @internal What `open` returns: `[handle, ifname, flags, features, tapFds, vhostFds]` (an array: cheaper to build than an object). */
export type NativeOpenResult = [handle: NativeHandle, ifname: string, flags: number, features: number, tapFds: number[], vhostFds: number[]]

/** @internal The configuration part of openTap's options; `null` when none is given (the usual case). */
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

/** @internal The normalized options: `open(name, queues, vnetHdr, vhost, tunPath, vhostPath, config)`. */
export interface NativeOpenOptions {
  name: string
  queues: number
  vnetHdr: 0 | 1 | 2
  vhost: 0 | 1 | 2
  /** null: /dev/net/tun */
  tunPath: string | null
  /** null: /dev/vhost-net */
  vhostPath: string | null
  config: NativeOpenConfig | null
}

/** @internal The functions the addon exports (see crates/node/src/lib.rs). */
export interface NativeBinding {
  open(name: string, queues: number, vnetHdr: number, vhost: number, tunPath: string | null, vhostPath: string | null, config: NativeOpenConfig | null): NativeOpenResult
  close(handle: NativeHandle): boolean
  openAsync(name: string, queues: number, vnetHdr: number, vhost: number, tunPath: string | null, vhostPath: string | null, config: NativeOpenConfig | null): Promise<NativeOpenResult>
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
  linkInfo(handle: NativeHandle): LinkInfo
  setMtu(handle: NativeHandle, mtu: number): void
  setMac(handle: NativeHandle, mac: string): void
  bridgeAdd(handle: NativeHandle, bridge: string): void
  bridgeDel(handle: NativeHandle, bridge: string): void
  probeOffloads(tunPath: string): number
  deleteTap(name: string, tunPath: string): void
  sendFds(socket: number, data: Buffer, fds: number[], timeoutMs: number | null): Promise<number>
  recvFds(socket: number, maxBytes: number, maxFds: number, timeoutMs: number | null): Promise<{ data: Buffer; fds: number[]; truncated: boolean }>
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
  const supported = ['linux-x64-gnu', 'linux-x64-musl', 'linux-arm64-gnu', 'linux-arm64-musl']
  throw new Error(
    `vmtap: no native binary loads on this platform (${process.platform} ${process.arch}, libc ${libc}). ` +
      `Expected the package vmtap-${suffix} (installed through optionalDependencies) or ${file}. Tried:\n` +
      `${errors.join('\n')}\n` +
      (supported.includes(suffix)
        ? `Reinstall without --no-optional / --omit=optional; if a package-lock.json made on another platform lacks ` +
          `vmtap-${suffix} (npm/cli#4828), delete package-lock.json and node_modules and run npm install again. `
        : `vmtap ships prebuilt binaries for ${supported.join(', ')} only. `) +
      `Or build from source (needs Rust >= 1.77 and cargo): git clone https://github.com/vmtap/vmtap && cd vmtap && ` +
      `npm install, then set NAPI_RS_NATIVE_LIBRARY_PATH=$PWD/${file}.`,
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

/** `call` for the addon's promises: a rejection becomes the public error type too. */
async function callAsync<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (e) {
    throw fromNative(e)
  }
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

/** @internal */
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

/** @internal */
export function bitsToOffloads(bits: number): Required<Offloads> {
  const out = {} as Required<Offloads>
  for (const k of OFFLOAD_KEYS) out[k] = (bits & OFFLOAD_BITS[k]) !== 0
  return out
}

/** Link settings, applied in libvirt's order: MTU, MAC, bridge, then up. */
export interface LinkOptions {
  /** 68-65535 (a TAP device takes at most 65521). */
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
   * `''` or omitted: the kernel picks `tap%d`. A template with one `%d`
   * (`vm%d`): the kernel fills the lowest free number (or vmtap does, see
   * `uniqueName`). Otherwise an exact name of 1-15 bytes of printable ASCII
   * without `/`, `:`, whitespace or `%`; an existing TAP device of that
   * name is attached to (unless `exclusive`).
   */
  name?: string
  /** 1-256 (the kernel's MAX_TAP_QUEUES); more than 1 makes a multi-queue device. Default 1. */
  queues?: number
  /** `'auto'` (default): IFF_VNET_HDR when the kernel offers it; `true`: required; `false`: never. */
  vnetHdr?: boolean | 'auto'
  /** `false` (default): no vhost fds; `true`: one /dev/vhost-net fd per queue or fail; `'auto'`: all of them when possible, else none. */
  vhost?: boolean | 'auto'
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
  /** TUNSETVNETHDRSZ: 10, 12 or 20. Needs vnetHdr. */
  vnetHdrSize?: 10 | 12 | 20
  /** TUNSETOFFLOAD with QEMU's fallback (retry without USO, then without UFO). Needs vnetHdr. */
  offloads?: Offloads
  /** The TUN/TAP clone device. Default `/dev/net/tun`. */
  tunPath?: string
  /** The vhost-net device. Default `/dev/vhost-net`. */
  vhostPath?: string
}

const OPEN_KEYS = [
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

const MAX_ID = 2 ** 32 - 2

/** @internal */
export function validateVnetHdrSize(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value)
  if (value !== 10 && value !== 12 && value !== 20) throw outOfRange(name, '10, 12 or 20', value)
  return value
}

/** @internal 68-65535, what SIOCSIFMTU carries (a TAP device takes at most 65521). */
export function validateMtu(value: unknown, name: string): number {
  return validateInteger(value, name, 68, 65535)
}

/** @internal */
export function validateBridge(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  const b = validateName(value, name)
  if (b === '' || b.includes('%d')) throw invalidValue(name, 'must be an interface name', value)
  return b
}

/**
 * Validate {@link openTap} options without opening anything: throws the
 * TypeError/RangeError openTap would throw. Useful to check several
 * devices' options before opening the first.
 */
export function checkOpenTapOptions(options?: OpenTapOptions): void {
  normalizeOpenOptions(options)
}

const CONFIG_KEYS = ['exclusive', 'uniqueName', 'persist', 'owner', 'group', 'vnetHdrSize', 'offloads', 'mtu', 'mac', 'bridge', 'up'] as const

/** @internal Validate and normalize openTap options (no syscall). */
export function normalizeOpenOptions(options: unknown): NativeOpenOptions {
  const o = snapshotOptions(options, 'options', OPEN_KEYS)
  const n: NativeOpenOptions = {
    name: validateName(o.name, 'options.name'),
    queues: o.queues === undefined ? 1 : validateInteger(o.queues, 'options.queues', 1, MAX_QUEUES),
    vnetHdr: validateTristate(o.vnetHdr, 'options.vnetHdr', 1),
    vhost: validateTristate(o.vhost, 'options.vhost', 0),
    tunPath: o.tunPath === undefined ? null : validatePath(o.tunPath, 'options.tunPath', '/dev/net/tun'),
    vhostPath: o.vhostPath === undefined ? null : validatePath(o.vhostPath, 'options.vhostPath', '/dev/vhost-net'),
    config: null,
  }
  if (!CONFIG_KEYS.some((k) => o[k] !== undefined)) return n
  const opt = <T>(v: unknown, f: (v: unknown) => T): T | null => (v === undefined ? null : f(v))
  const bool = (v: unknown, name: string) => (v === undefined ? false : validateBoolean(v, name))
  const c: NativeOpenConfig = {
    exclusive: bool(o.exclusive, 'options.exclusive'),
    uniqueName: bool(o.uniqueName, 'options.uniqueName'),
    persist: bool(o.persist, 'options.persist'),
    owner: opt(o.owner, (v) => validateInteger(v, 'options.owner', 0, MAX_ID)),
    group: opt(o.group, (v) => validateInteger(v, 'options.group', 0, MAX_ID)),
    vnetHdrSize: opt(o.vnetHdrSize, (v) => validateVnetHdrSize(v, 'options.vnetHdrSize')),
    offloads: opt(o.offloads, (v) => offloadsToBits(v, 'options.offloads')),
    mtu: opt(o.mtu, (v) => validateMtu(v, 'options.mtu')),
    mac: opt(o.mac, (v) => validateMac(v, 'options.mac')),
    bridge: opt(o.bridge, (v) => validateBridge(v, 'options.bridge')),
    up: bool(o.up, 'options.up'),
  }
  if (c.uniqueName && n.name !== '' && !n.name.includes('%d')) {
    throw invalidValue('options.uniqueName', 'needs a name template with %d (or no name)', o.name)
  }
  if (n.vnetHdr === 0 && ((c.offloads ?? 0) !== 0 || c.vnetHdrSize !== null)) {
    throw invalidValue('options.vnetHdr', 'must not be false with offloads or vnetHdrSize (virtio-net headers carry them)', o.vnetHdr)
  }
  n.config = c
  return n
}

/** The kernel's maximum number of queues of one TAP device (MAX_TAP_QUEUES). */
export const MAX_QUEUES = 256

/** What the kernel reports about the link. */
export interface LinkInfo {
  up: boolean
  mtu: number
  mac: string
  ifindex: number
}

function closedError(ifname: string): Error & { code: string } {
  const e = new Error(`The TAP device ${ifname} is closed; its fd numbers may belong to something else now`) as Error & { code: string }
  e.code = 'ERR_VMTAP_CLOSED'
  return e
}

const kToken = Symbol('vmtap.TapDevice')
const kDispose: typeof Symbol.dispose = Symbol.dispose ?? (Symbol.for('nodejs.dispose') as typeof Symbol.dispose)
const kAsyncDispose: typeof Symbol.asyncDispose =
  Symbol.asyncDispose ?? (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose)

/** Take the native handle out of a device (marking it closed), or null if it was closed. */
let takeHandle: (d: TapDevice) => NativeHandle | null
/** Whether `d` is a real TapDevice (a brand check on its private field). */
let isTapDevice: (d: unknown) => d is TapDevice

interface Held {
  handle: NativeHandle
  ifname: string
}

// The backstop for devices nobody closed: release the fds when the TapDevice
// is garbage-collected, and say so, as Node does for an unclosed FileHandle.
const unclosed = new FinalizationRegistry<Held>((held) => {
  // Only open devices are registered (closing unregisters), so this one
  // was never closed. Release it off the JS thread and say so.
  process.emitWarning(
    `Closing TAP device ${held.ifname} on garbage collection; close it with tap.close() or closeAsync() (or \`using\`) instead`,
    { type: 'Warning', code: 'VMTAP_UNCLOSED_DEVICE' },
  )
  try {
    native()
      .closeAsync(held.handle)
      .catch(() => undefined)
  } catch {
    // nothing more can be done here; the handle's own finalizer closes the fds
  }
})

/**
 * An open TAP device: its name and the fds that keep it alive (the seed
 * design's `(ifname, tapfds, vhostfds)`). All fds are close-on-exec; hand
 * them to a VMM explicitly. `close()` closes every fd (idempotent); a
 * non-persistent device disappears with its last fd.
 */
export class TapDevice implements Disposable, AsyncDisposable {
  /** The interface name, e.g. `tap0`. */
  declare readonly ifname: string
  /** One `/dev/net/tun` fd per queue, all attached to this device. */
  declare readonly tapFds: readonly number[]
  /** One `/dev/vhost-net` fd per queue, or none. */
  declare readonly vhostFds: readonly number[]
  /** Whether IFF_VNET_HDR is set on the device. */
  declare readonly vnetHdr: boolean
  /** Whether the device is multi-queue (IFF_MULTI_QUEUE). */
  declare readonly multiQueue: boolean
  #handle: NativeHandle | null

  static {
    isTapDevice = (d): d is TapDevice => typeof d === 'object' && d !== null && #handle in d
    takeHandle = (d) => {
      const h = d.#handle
      if (h === null) return null
      d.#handle = null
      unclosed.unregister(d)
      return h
    }
  }

  /** @internal Use {@link openTap}. */
  constructor(token: symbol, raw: NativeOpenResult) {
    if (token !== kToken) throw new TypeError('TapDevice is not constructible; use openTap()')
    const [handle, ifname, flags, , tapFds, vhostFds] = raw
    this.#handle = handle
    // Plain assignments, then freeze: the public fields are read-only (the
    // private #handle is not affected by freezing). The arrays are fresh
    // from the addon.
    const self = this as { -readonly [K in 'ifname' | 'tapFds' | 'vhostFds' | 'vnetHdr' | 'multiQueue']: TapDevice[K] }
    self.ifname = ifname
    self.tapFds = Object.freeze(tapFds)
    self.vhostFds = Object.freeze(vhostFds)
    self.vnetHdr = (flags & constants.IFF_VNET_HDR) !== 0
    self.multiQueue = (flags & constants.IFF_MULTI_QUEUE) !== 0
    Object.freeze(this)
    unclosed.register(this, { handle, ifname }, this)
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#handle === null
  }

  /**
   * Close every fd. Calling it again does nothing. The kernel tears a
   * non-persistent device down inside the last close (~16 ms here), which
   * blocks the event loop: prefer {@link closeAsync} or {@link closeAll}.
   * Every fd is released even if one fails (then a TapError with code
   * EBADF says an fd was closed behind the device's back).
   */
  close(): void {
    const h = takeHandle(this)
    if (h === null) return
    call(() => native().close(h))
  }

  /**
   * Close every fd off the JS thread (the libuv pool). The device counts as
   * closed at once; the promise settles when the kernel is done.
   */
  closeAsync(): Promise<void> {
    const h = takeHandle(this)
    if (h === null) return Promise.resolve()
    return callAsync(() => native().closeAsync(h)).then(() => undefined)
  }

  [kAsyncDispose](): Promise<void> {
    return this.closeAsync()
  }

  /** Run `f` on the open handle; ERR_VMTAP_CLOSED after close(): never touch an fd number then. */
  #do<R>(f: (n: NativeBinding, h: NativeHandle) => R): R {
    const h = this.#handle
    if (h === null) throw closedError(this.ifname)
    return call(() => f(native(), h))
  }

  /** Bring the link up (or down with `false`). SIOCSIFFLAGS. */
  setLinkUp(up = true): void {
    const v = validateBoolean(up, 'up')
    this.#do((n, h) => n.setLinkUp(h, v))
  }

  /** The link as the kernel has it now: up, MTU, MAC, ifindex. */
  getLinkInfo(): LinkInfo {
    return this.#do((n, h) => n.linkInfo(h))
  }

  /** SIOCGIFMTU. */
  getMtu(): number {
    return this.getLinkInfo().mtu
  }

  /** SIOCSIFMTU: 68-65535; a TAP device takes at most 65521 (EINVAL above). */
  setMtu(mtu: number): void {
    const v = validateMtu(mtu, 'mtu')
    this.#do((n, h) => n.setMtu(h, v))
  }

  /** SIOCGIFHWADDR, as `aa:bb:cc:dd:ee:ff`. */
  getMac(): string {
    return this.getLinkInfo().mac
  }

  /** SIOCSIFHWADDR: the host-side MAC (unicast). See {@link hostMacFor}. */
  setMac(mac: string): void {
    const v = validateMac(mac, 'mac')
    this.#do((n, h) => n.setMac(h, v))
  }

  /** Make the device a port of the Linux bridge `bridge` (SIOCBRADDIF). */
  attachToBridge(bridge: string): void {
    const b = validateBridge(bridge, 'bridge')
    this.#do((n, h) => n.bridgeAdd(h, b))
  }

  /** Remove the device from `bridge` (SIOCBRDELIF). */
  detachFromBridge(bridge: string): void {
    const b = validateBridge(bridge, 'bridge')
    this.#do((n, h) => n.bridgeDel(h, b))
  }

  /**
   * Apply link settings in libvirt's order: MTU (before enslaving, so the
   * bridge does not clamp), MAC, bridge, then up.
   */
  configure(options: LinkOptions): void {
    const o = snapshotOptions(options, 'options', ['mtu', 'mac', 'bridge', 'up'])
    const mtu = o.mtu === undefined ? undefined : validateMtu(o.mtu, 'options.mtu')
    const mac = o.mac === undefined ? undefined : validateMac(o.mac, 'options.mac')
    const bridge = o.bridge === undefined ? undefined : validateBridge(o.bridge, 'options.bridge')
    const up = o.up === undefined ? undefined : validateBoolean(o.up, 'options.up')
    this.#do((n, h) => {
      if (mtu !== undefined) n.setMtu(h, mtu)
      if (mac !== undefined) n.setMac(h, mac)
      if (bridge !== undefined) n.bridgeAdd(h, bridge)
      if (up !== undefined) n.setLinkUp(h, up)
    })
  }

  /** TUNGETVNETHDRSZ. */
  getVnetHdrSize(): number {
    return this.#do((n, h) => n.getVnetHdrSize(h))
  }

  /** TUNSETVNETHDRSZ: 10, 12 or 20. Per device; it persists across users of a persistent device. */
  setVnetHdrSize(size: 10 | 12 | 20): void {
    const v = validateVnetHdrSize(size, 'size')
    if (!this.vnetHdr) throw invalidValue('size', `needs a device with vnetHdr (${this.ifname} has none)`, size)
    this.#do((n, h) => n.setVnetHdrSize(h, v))
  }

  /**
   * TUNSETOFFLOAD with QEMU's probe-and-fallback: when the kernel refuses the
   * set, it is retried without USO, then without UFO. Returns what was
   * applied. `{}` turns every offload off.
   */
  setOffloads(offloads: Offloads): Required<Offloads> {
    const bits = offloadsToBits(offloads, 'offloads')
    if (bits !== 0 && !this.vnetHdr) throw invalidValue('offloads', `need a device with vnetHdr (${this.ifname} has none)`, offloads)
    return bitsToOffloads(this.#do((n, h) => n.setOffloads(h, bits)))
  }

  /**
   * Enable or disable queue `index` of a multi-queue device (TUNSETQUEUE
   * with IFF_ATTACH_QUEUE / IFF_DETACH_QUEUE). A disabled queue's fd stays
   * open but gets no packets.
   */
  setQueueEnabled(index: number, enabled: boolean): void {
    if (!this.multiQueue) throw invalidValue('index', `needs a multi-queue device (${this.ifname} has one queue)`, index)
    const i = validateInteger(index, 'index', 0, this.tapFds.length - 1)
    const on = validateBoolean(enabled, 'enabled')
    this.#do((n, h) => n.setQueueEnabled(h, i, on))
  }

  /** TUNSETPERSIST. A persistent device outlives its fds; `false` lets it go with the last one. */
  setPersist(persist: boolean): void {
    const v = validateBoolean(persist, 'persist')
    this.#do((n, h) => n.setPersist(h, v))
  }

  /** TUNSETOWNER: `uid` may attach without CAP_NET_ADMIN. */
  setOwner(uid: number): void {
    const v = validateInteger(uid, 'uid', 0, MAX_ID)
    this.#do((n, h) => n.setOwner(h, v))
  }

  /** TUNSETGROUP: members of `gid` may attach without CAP_NET_ADMIN. */
  setGroup(gid: number): void {
    const v = validateInteger(gid, 'gid', 0, MAX_ID)
    this.#do((n, h) => n.setGroup(h, v))
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
  const raw = call(() => native().open(opts.name, opts.queues, opts.vnetHdr, opts.vhost, opts.tunPath, opts.vhostPath, opts.config))
  return new TapDevice(kToken, raw)
}

/**
 * {@link openTap} with the syscalls on the libuv pool. Invalid options
 * reject (TypeError/RangeError) before any syscall; kernel failures reject
 * with the same TapError openTap throws.
 */
export async function openTapAsync(options?: OpenTapOptions): Promise<TapDevice> {
  const opts = normalizeOpenOptions(options)
  const raw = await callAsync(() => native().openAsync(opts.name, opts.queues, opts.vnetHdr, opts.vhost, opts.tunPath, opts.vhostPath, opts.config))
  return new TapDevice(kToken, raw)
}

/** Options of {@link closeAll}. */
export interface CloseAllOptions {
  /** How many threads tear devices down at once. Default 128. */
  maxThreads?: number
}

/**
 * Close many devices in parallel on threads of their own: the kernel's
 * per-device teardown (RCU grace periods) overlaps, so 64 devices take
 * about as long as a few. Every device is marked closed at once and every
 * fd is released; if some failed, the promise rejects with an
 * AggregateError of their TapErrors (each with `ifname`) after all are done.
 * Already-closed devices are skipped.
 */
export async function closeAll(devices: Iterable<TapDevice>, options?: CloseAllOptions): Promise<void> {
  const iterator = devices !== null && typeof devices === 'object' ? readProperty(devices, Symbol.iterator, 'devices') : undefined
  if (typeof iterator !== 'function') throw invalidType('devices', 'an iterable of TapDevice', devices)
  let list: unknown[]
  try {
    list = [...devices]
  } catch (e) {
    throw Object.assign(invalidValue('devices', 'could not be iterated', devices), { cause: e })
  }
  list.forEach((d, i) => {
    // A brand check: never throws (instanceof runs Proxy traps and accepts Object.create(TapDevice.prototype)).
    if (!isTapDevice(d)) throw invalidType(`devices[${i}]`, 'a TapDevice', d)
  })
  const o = snapshotOptions(options, 'options', ['maxThreads'])
  const maxThreads = o.maxThreads === undefined ? 128 : validateInteger(o.maxThreads, 'options.maxThreads', 1, 1024)
  const handles: NativeHandle[] = []
  const owners: TapDevice[] = []
  for (const d of list as TapDevice[]) {
    const h = takeHandle(d)
    if (h !== null) {
      handles.push(h)
      owners.push(d)
    }
  }
  if (handles.length === 0) return
  const results = await native().closeAll(handles, maxThreads)
  const failures: Error[] = []
  const names: string[] = []
  results.forEach((e, i) => {
    if (!e) return
    failures.push(fromNative(e) as Error)
    names.push(owners[i].ifname)
  })
  if (failures.length) {
    throw new AggregateError(failures, `${failures.length} of ${handles.length} devices did not close cleanly (${names.join(', ')}); every fd was released`)
  }
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
export function probeFeatures(options?: { tunPath?: string; vhostPath?: string }): TapFeatures {
  const o = snapshotOptions(options, 'options', ['tunPath', 'vhostPath'])
  const tunPath = validatePath(o.tunPath, 'options.tunPath', '/dev/net/tun')
  const vhostPath = validatePath(o.vhostPath, 'options.vhostPath', '/dev/vhost-net')
  const c = constants
  const { raw, vhostNet } = call(() => native().probeFeatures(tunPath, vhostPath))
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

/** A connected Unix stream socket: a `net.Socket` or a raw fd number. */
export type FdSocket = Socket | number

/**
 * The fd of a connected Unix stream socket. For a `net.Socket` this reads
 * `socket._handle.fd`, the fd of the libuv stream Node exposes on POSIX
 * (undocumented but stable since Node 0.x, and what fd-passing addons rely
 * on). vmtap borrows it for the call (working on a close-on-exec duplicate
 * that it closes again); the socket keeps owning its fd.
 */
function socketFd(socket: unknown, name: string): number {
  if (typeof socket === 'number') return validateInteger(socket, name, 0, 2 ** 31 - 1)
  if (socket !== null && typeof socket === 'object') {
    const fd = (socket as { _handle?: { fd?: unknown } | null })._handle?.fd
    if (typeof fd === 'number' && Number.isInteger(fd) && fd >= 0) return fd
    if (typeof (socket as Socket).write === 'function') throw invalidValue(name, 'is not a connected socket (it has no fd)', '[net.Socket]')
  }
  throw invalidType(name, 'a connected net.Socket or an fd number', socket)
}

/** Options of {@link sendFds}. */
export interface SendFdsOptions {
  /** How long to wait for a full socket to drain. Default: no limit. */
  timeoutMs?: number
}

/**
 * Send `data` with `fds` attached (sendmsg + SCM_RIGHTS) over a connected
 * Unix stream socket: what QEMU's QMP `getfd` and cloud-hypervisor's
 * `add-net` take. At most 253 fds (SCM_MAX_FD); `data` must not be empty.
 * A partial write sends the rest without fds; a full non-blocking socket is
 * waited for with poll(2) on the libuv pool, never busy-looped. Resolves
 * with the number of bytes sent. Do not `socket.write()` while it runs: bytes
 * Node still buffers would go out after these.
 */
export async function sendFds(socket: FdSocket, data: string | Uint8Array, fds: readonly number[], options?: SendFdsOptions): Promise<number> {
  const fd = socketFd(socket, 'socket')
  let buf: Buffer
  if (typeof data === 'string') buf = Buffer.from(data, 'utf8')
  else if (data instanceof Uint8Array) buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  else throw invalidType('data', 'a string, Buffer or Uint8Array', data)
  if (buf.length === 0) throw invalidValue('data', 'must not be empty: fds travel with at least one byte', data)
  if (!isArray(fds, 'fds')) throw invalidType('fds', 'an array of fd numbers', fds)
  const items = copyArray(fds, 'fds')
  if (items.length > 253) throw outOfRange('fds.length', '<= 253 (SCM_MAX_FD)', items.length)
  const list = items.map((f, i) => validateInteger(f, `fds[${i}]`, 0, 2 ** 31 - 1))
  const o = snapshotOptions(options, 'options', ['timeoutMs'])
  const timeoutMs = o.timeoutMs === undefined ? null : validateInteger(o.timeoutMs, 'options.timeoutMs', 0, 2 ** 31 - 1)
  return callAsync(() => native().sendFds(fd, buf, list, timeoutMs))
}

/** Options of {@link recvFds}. */
export interface RecvFdsOptions {
  /** The most bytes to read. Default 65536. */
  maxBytes?: number
  /** The most fds to accept (extra ones are closed and `truncated` set). Default 253. */
  maxFds?: number
  /** How long to wait for a message. Default: no limit. */
  timeoutMs?: number
}

/** What {@link recvFds} received. */
export interface ReceivedFds {
  /** The bytes read (empty when the peer closed the connection). */
  data: Buffer
  /** The fds that came with them: close-on-exec, and yours to close. */
  fds: number[]
  /** The peer sent more fds than `maxFds`. */
  truncated: boolean
}

/**
 * Receive one message and its fds (recvmsg with MSG_CMSG_CLOEXEC) from a
 * connected Unix stream socket. Node must not be reading the same socket
 * (create the server with `pauseOnConnect: true`, or pass a raw fd).
 */
export async function recvFds(socket: FdSocket, options?: RecvFdsOptions): Promise<ReceivedFds> {
  const fd = socketFd(socket, 'socket')
  const o = snapshotOptions(options, 'options', ['maxBytes', 'maxFds', 'timeoutMs'])
  const maxBytes = o.maxBytes === undefined ? 65536 : validateInteger(o.maxBytes, 'options.maxBytes', 1, 2 ** 30)
  const maxFds = o.maxFds === undefined ? 253 : validateInteger(o.maxFds, 'options.maxFds', 0, 253)
  const timeoutMs = o.timeoutMs === undefined ? null : validateInteger(o.timeoutMs, 'options.timeoutMs', 0, 2 ** 31 - 1)
  return callAsync(() => native().recvFds(fd, maxBytes, maxFds, timeoutMs))
}

// lib/qmp (and node:net and node:stream behind it) load on first use, so
// `require('vmtap')` stays cheap. The getters below keep the names visible to
// ESM `import { QmpClient } from 'vmtap'` (Node's cjs-module-lexer reads them). module.exports,
// not exports: it is the same object under tsc, and the live one when tsx/esbuild runs the source.
let qmpModule: typeof Qmp | undefined
function qmpLib(): typeof Qmp {
  return (qmpModule ??= require('./lib/qmp') as typeof Qmp)
}
const lazyQmp = {
  get QmpClient() {
    return qmpLib().QmpClient
  },
  get QmpError() {
    return qmpLib().QmpError
  },
}
/** A connected QMP session: see {@link connectQmp}. */
export type QmpClient = Qmp.QmpClient
/** A QMP command's error reply: `errorClass`, `desc`, `command`; `code` is `ERR_VMTAP_QMP`. */
export type QmpError = Qmp.QmpError
export declare const QmpClient: typeof Qmp.QmpClient
export declare const QmpError: typeof Qmp.QmpError
Object.defineProperty(module.exports, 'QmpClient', { enumerable: true, get: function () { return lazyQmp.QmpClient } })
Object.defineProperty(module.exports, 'QmpError', { enumerable: true, get: function () { return lazyQmp.QmpError } })

/**
 * Hot-add a NIC backed by `tap` to a running QEMU: `getfd` for every tap and
 * vhost fd (sent with SCM_RIGHTS), `netdev_add` naming them, then
 * `device_add` (with `mq=on,vectors=2N+2` for N > 1 queues). QEMU keeps its
 * own copies, so the caller may close `tap` afterwards. On failure the
 * commands that succeeded are undone (`netdev_del`, `closefd`).
 */
export function hotplugNic(...args: Parameters<typeof Qmp.hotplugNic>): ReturnType<typeof Qmp.hotplugNic> {
  return qmpLib().hotplugNic(...args)
}

/**
 * Hot-remove a NIC added by {@link hotplugNic}: `device_del`, wait for the
 * guest to release it (DEVICE_DELETED), `netdev_del`, then `closefd` for any
 * named fd QEMU still holds.
 */
export function unplugNic(...args: Parameters<typeof Qmp.unplugNic>): ReturnType<typeof Qmp.unplugNic> {
  return qmpLib().unplugNic(...args)
}

/**
 * Connect to QEMU's QMP socket (`-qmp unix:PATH,server=on,wait=off`),
 * negotiate capabilities, and return a client whose commands can carry fds
 * (see {@link hotplugNic}).
 */
export function connectQmp(path: string | Socket, options?: Qmp.QmpConnectOptions): Promise<QmpClient> {
  return qmpLib().QmpClient.connect(path, (sock, data, fds) => sendFds(sock, data, fds), options)
}

/**
 * Which offloads this kernel accepts (TUNSETOFFLOAD tried on a throwaway
 * kernel-named TAP device). Needs CAP_NET_ADMIN.
 */
export function probeOffloads(): Required<Offloads> {
  return bitsToOffloads(call(() => native().probeOffloads('/dev/net/tun')))
}

/**
 * Delete a persistent TAP device: attach to it, TUNSETPERSIST 0, close. A
 * device still held by a process disappears when that one closes it.
 */
export function deleteTap(name: string, options?: { tunPath?: string }): void {
  const n = validateBridge(name, 'name')
  const o = snapshotOptions(options, 'options', ['tunPath'])
  const tunPath = validatePath(o.tunPath, 'options.tunPath', '/dev/net/tun')
  call(() => native().deleteTap(n, tunPath))
}

/**
 * The host-side MAC for a guest's MAC, as libvirt and Ganeti derive it: the
 * first octet becomes 0xfe (0xfa if it already is 0xfe), so a bridge never
 * takes the guest's address as its own.
 */
export function hostMacFor(guestMac: string): string {
  const m = validateMac(guestMac, 'guestMac')
  return `${m.startsWith('fe') ? 'fa' : 'fe'}${m.slice(2)}`
}
