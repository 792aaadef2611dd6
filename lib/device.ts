// TapDevice and the calls that open and close devices.

import { constants } from './constants'
import { closedError, invalidType, invalidValue, outOfRange } from './errors'
import type { TapStats } from './inventory'
import type {
  LinkInfo,
  NativeBinding,
  NativeHandle,
  NativeOpenArgs,
  NativeOpenOptions,
  NativeOpenResult,
} from './native'
import { limits } from './limits'
import { native } from './native'
import { validateAddress, validateRoute } from './net'
import type * as Packet from './packet'
import type { FrameIterator, FramesOptions, QueueReader, Sink, TapFrame } from './packet'
import {
  type BridgePortFlags,
  bitsToOffloads,
  bridgePortOf,
  type LinkOptions,
  normalizeMacvtapOptions,
  normalizeOpenOptions,
  type Offloads,
  offloadsToBits,
} from './options'
import type { OpenMacvtapOptions, OpenTapOptions } from './options'
import {
  copyArray,
  isArray,
  type NetnsSpec,
  readProperty,
  snapshotOptions,
  validateBoolean,
  validateFd,
  validateId,
  validateIfName,
  validateInteger,
  validateMac,
  validateMtu,
  validateTag,
  validateVnetHdrSize,
} from './validate'

export type { LinkInfo } from './native'

// Packet I/O (./packet) loads on first use, so `require('vmtap')` stays cheap.
let packetModule: typeof Packet | undefined
const packet = (): typeof Packet => (packetModule ??= require('./packet') as typeof Packet)

const kToken = Symbol('vmtap.TapDevice')
/** What writeFrame returns when the frame went out at once. */
const WRITTEN = Promise.resolve()
const kDispose: typeof Symbol.dispose = Symbol.dispose ?? (Symbol.for('nodejs.dispose') as typeof Symbol.dispose)
const kAsyncDispose: typeof Symbol.asyncDispose =
  Symbol.asyncDispose ?? (Symbol.for('nodejs.asyncDispose') as typeof Symbol.asyncDispose)

/** Take the native handle out of a device (marking it closed), or null if it was closed. */
let takeHandle: (d: TapDevice) => NativeHandle | null
/** Whether `d` is a real TapDevice (a brand check on its private field). */
let isTapDevice: (d: unknown) => d is TapDevice

// A device nobody closed is closed when its TapDevice is garbage-collected,
// with a warning (as Node does for an unclosed FileHandle): by the native
// handle's finalizer (crates/node/src/device.rs), not a FinalizationRegistry,
// whose weak cell cost every open ~3.5 µs.

/**
 * An open TAP device or macvtap: its name and the fds that keep it alive
 * (Ganeti's `(ifname, tapfds, vhostfds)`). All fds are close-on-exec; hand
 * them to a VMM explicitly. `close()` closes every fd (idempotent); a
 * non-persistent device disappears with its last fd, and `close()` deletes a
 * non-persistent macvtap (which the kernel would keep).
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
  /** `'tap'` for a TAP device ({@link openTap}), `'macvtap'` for a macvtap ({@link openMacvtap}). */
  declare readonly kind: 'tap' | 'macvtap'
  /** `'tap'`: Ethernet frames (IFF_TAP; a macvtap too); `'tun'`: IP packets (IFF_TUN, openTap's `mode: 'tun'`). */
  declare readonly mode: 'tap' | 'tun'
  /**
   * The network namespace the device lives in, as it was given to openTap
   * (a name is shown as its path, `/run/netns/blue`; an fd as its number),
   * or `null` for the caller's namespace. Its link settings act there.
   */
  declare readonly netns: NetnsSpec | null
  #handle: NativeHandle | null
  #mac: string | null
  /** Queues being read (one reader per queue); made on first use, as most devices are never read. */
  #readers: Set<number> | null = null
  /** Per queue, the last write that had to wait: later writes go after it (made on first use). */
  #writing: Map<number, Promise<void>> | null = null

  static {
    isTapDevice = (d): d is TapDevice => typeof d === 'object' && d !== null && #handle in d
    takeHandle = (d) => {
      const h = d.#handle
      if (h === null) return null
      d.#handle = null
      return h
    }
  }

  /** @internal Use {@link openTap}. */
  constructor(token: symbol, raw: NativeOpenResult, netns: NetnsSpec | null = null) {
    if (token !== kToken) throw new TypeError('TapDevice is not constructible; use openTap()')
    const [handle, ifname, flags, , tapFds, vhostFds, kind, mac] = raw
    this.#handle = handle
    this.#mac = kind === 'macvtap' ? mac : null
    // Plain assignments, then freeze: the public fields are read-only (the
    // private #handle is not affected by freezing). The arrays are fresh
    // from the addon.
    const self = this as {
      -readonly [K in
        | 'ifname'
        | 'tapFds'
        | 'vhostFds'
        | 'vnetHdr'
        | 'multiQueue'
        | 'kind'
        | 'mode'
        | 'netns']: TapDevice[K]
    }
    self.ifname = ifname
    self.tapFds = Object.freeze(tapFds)
    self.vhostFds = Object.freeze(vhostFds)
    self.vnetHdr = (flags & constants.IFF_VNET_HDR) !== 0
    self.multiQueue = (flags & constants.IFF_MULTI_QUEUE) !== 0
    self.kind = kind === 'macvtap' ? 'macvtap' : 'tap'
    self.mode = (flags & constants.IFF_TUN) !== 0 ? 'tun' : 'tap'
    self.netns = netns
    Object.freeze(this)
  }

  /**
   * The MAC the guest NIC must use: a macvtap's own (as it was created, or
   * as last set with {@link setMac}), since a macvtap hands the guest only
   * frames addressed to it; `null` for a TAP device, whose guest MAC is the
   * caller's choice (its own MAC, {@link getMac}, is the host side's).
   * {@link handOff} passes it on, and the QEMU and cloud-hypervisor
   * formatters put it on the guest NIC unless given another.
   */
  get mac(): string | null {
    return this.#mac
  }

  /** Whether `close()` has been called. */
  get closed(): boolean {
    return this.#handle === null
  }

  /**
   * Close every fd. Calling it again does nothing. The kernel tears a
   * non-persistent device down inside the last close (~16 ms), which
   * blocks the event loop: prefer {@link closeAsync} or {@link closeAll}.
   * Every fd is released even if one fails (then a TapError with code
   * EBADF says an fd was closed behind the device's back).
   */
  close(): void {
    const h = takeHandle(this)
    if (h === null) return
    native().close(h)
  }

  /**
   * Close every fd off the JS thread (the libuv pool). The device counts as
   * closed at once; the promise settles when the kernel is done.
   */
  closeAsync(): Promise<void> {
    const h = takeHandle(this)
    if (h === null) return Promise.resolve()
    return native()
      .closeAsync(h)
      .then(() => undefined)
  }

  [kAsyncDispose](): Promise<void> {
    return this.closeAsync()
  }

  [kDispose](): void {
    this.close()
  }

  #noMacvtap(name: string, value: unknown): void {
    if (this.kind === 'macvtap') {
      throw invalidValue(
        name,
        `cannot be set: ${this.ifname} is a macvtap, which has no owner or group (who may open it is decided by its device node's permissions)`,
        value,
      )
    }
  }

  /** Run `f` on the open handle; ERR_VMTAP_CLOSED after close(): never touch an fd number then. */
  #do<R>(f: (n: NativeBinding, h: NativeHandle) => R): R {
    const h = this.#handle
    if (h === null) throw closedError(this.ifname)
    return f(native(), h)
  }

  /** A queue index of this device. */
  #queue(queue: unknown): number {
    return validateInteger(queue, 'queue', 0, this.tapFds.length - 1)
  }

  /** A reader of `queue` feeding `sink`; one per queue at a time. */
  #reader(queue: number, header: boolean, hwm: number): (sink: Sink) => QueueReader {
    const h = this.#handle
    if (h === null) throw closedError(this.ifname)
    if (this.#readers?.has(queue)) {
      throw invalidValue('queue', 'is already being read (by frames() or frameStream()); one reader per queue', queue)
    }
    return (sink) => {
      const r = new (packet().QueueReader)(h, queue, header, Math.min(hwm, 128), sink, () =>
        this.#readers?.delete(queue),
      )
      this.#readers ??= new Set()
      this.#readers.add(queue)
      return r
    }
  }

  /**
   * Read queue `queue`'s frames: an async iterable of `Buffer`s (Ethernet
   * frames, or IP packets on a TUN device), or of `{ header, frame }` with
   * `header: true`. On a vnetHdr device each frame's virtio-net header is
   * parsed (`header: true`) or dropped. Reading is event-driven: the queue is
   * watched on the event loop and read in batches while it has frames, only
   * while someone iterates and fewer than `highWaterMark` frames wait; no
   * thread, no polling. The queue's fd keeps its flags (a VMM holding it sees
   * no change). `break` (or `return()`) stops reading; closing the device ends
   * the iteration. One reader per queue at a time.
   */
  frames(queue?: number, options?: FramesOptions & { header?: false }): FrameIterator<Buffer>
  frames(queue: number, options: FramesOptions & { header: true }): FrameIterator<TapFrame>
  frames(queue = 0, options?: FramesOptions): FrameIterator<Buffer> | FrameIterator<TapFrame> {
    const q = this.#queue(queue)
    const p = packet()
    const o = p.framesOptions(options)
    const aborted = p.abortedAlready(o.signal)
    if (aborted) throw aborted
    return new p.FrameIterator<Buffer>(this.#reader(q, o.header, o.hwm), o.hwm, o.signal)
  }

  /**
   * Queue `queue` as an object-mode Duplex stream for pipelines: it reads
   * what {@link frames} yields (with the same options) and writes what
   * {@link writeFrame} takes. Back-pressure both ways; destroying it stops
   * reading; closing the device ends it.
   */
  frameStream(queue = 0, options?: FramesOptions): import('node:stream').Duplex {
    const q = this.#queue(queue)
    const p = packet()
    const o = p.framesOptions(options)
    return p.makeFrameStream(this.#reader(q, o.header, o.hwm), (f) => this.writeFrame(f as Buffer, q), o.hwm, o.signal)
  }

  /**
   * Write one frame (an Ethernet frame, or an IP packet on a TUN device) to
   * queue `queue`, without waiting: it resolves at once unless the queue is
   * full, then when the queue took it (waiting on the event loop). Frames on
   * one queue go out in call order. On a vnetHdr device a zero virtio-net
   * header is written before it, or the `header` of a `{ header, frame }`
   * argument. A frame shorter than its link (or IPv4) header, or longer than
   * the MTU allows (plus the Ethernet header and a VLAN tag), rejects with a
   * RangeError before any syscall; what the kernel refuses (EIO: the link is
   * down) rejects with a TapError.
   */
  writeFrame(frame: Uint8Array | TapFrame, queue = 0): Promise<void> {
    try {
      const q = this.#queue(queue)
      const [buf, header] = packet().frameArgument(frame, this.mode === 'tun', this.vnetHdr)
      const before = this.#writing?.get(q)
      if (before) {
        // Behind a waiting write: a copy, as the caller may reuse its buffer.
        const copy = Buffer.from(buf)
        return this.#track(
          q,
          before.then(() => this.#write(q, copy, header)),
        )
      }
      return this.#write(q, buf, header, true)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  #write(q: number, buf: Buffer, header: Buffer | null, track = false): Promise<void> {
    // #do written out: no closure per frame on this path.
    const h = this.#handle
    if (h === null) throw closedError(this.ifname)
    const r = native().writeFrame(h, q, buf, header, null)
    if (typeof r === 'number') return WRITTEN
    const p = r.then(() => undefined)
    return track ? this.#track(q, p) : p
  }

  #track(q: number, p: Promise<void>): Promise<void> {
    const settled = p.catch(() => undefined)
    const writing = (this.#writing ??= new Map())
    writing.set(q, settled)
    settled.then(() => {
      if (writing.get(q) === settled) writing.delete(q)
    })
    return p
  }

  /** Bring the link up (or down with `false`). */
  setLinkUp(up = true): void {
    const v = validateBoolean(up, 'up')
    this.#do((n, h) => n.setLinkUp(h, v))
  }

  /**
   * The link as the kernel has it now (one RTM_GETLINK): its name (after a
   * rename too), up, MTU, MAC, ifindex, carrier and transmit queue length.
   */
  getLinkInfo(): LinkInfo {
    return this.#do((n, h) => n.getLinkInfo(h))
  }

  /** The MTU. */
  getMtu(): number {
    return this.getLinkInfo().mtu
  }

  /** Set the MTU: limits.minMtu-limits.maxMtu; a TAP device takes at most limits.tapMaxMtu (EINVAL above). */
  setMtu(mtu: number): void {
    const v = validateMtu(mtu, 'mtu')
    this.#do((n, h) => n.setMtu(h, v))
  }

  /** The MAC, as `aa:bb:cc:dd:ee:ff`. */
  getMac(): string {
    return this.getLinkInfo().mac
  }

  /**
   * Set the host-side MAC (unicast). See {@link hostMacFor}. On a macvtap
   * this is the guest's MAC too: {@link mac} follows.
   */
  setMac(mac: string): void {
    const v = validateMac(mac, 'mac')
    this.#do((n, h) => n.setMac(h, v))
    if (this.kind === 'macvtap') this.#mac = v
  }

  /** Make the device a port of the Linux bridge `bridge`. */
  attachToBridge(bridge: string): void {
    const b = validateIfName(bridge, 'bridge')
    this.#do((n, h) => n.attachToBridge(h, b))
  }

  /** Remove the device from `bridge`. */
  detachFromBridge(bridge: string): void {
    const b = validateIfName(bridge, 'bridge')
    this.#do((n, h) => n.detachFromBridge(h, b))
  }

  /**
   * Apply link settings in libvirt's order: MTU (before enslaving, so the
   * bridge does not clamp), MAC, bridge, then up.
   */
  configure(options: LinkOptions): void {
    const o = snapshotOptions(options, 'options', ['mtu', 'mac', 'bridge', 'up'])
    const mtu = o.mtu === undefined ? undefined : validateMtu(o.mtu, 'options.mtu')
    const mac = o.mac === undefined ? undefined : validateMac(o.mac, 'options.mac')
    const bridge = o.bridge === undefined ? undefined : validateIfName(o.bridge, 'options.bridge')
    const up = o.up === undefined ? undefined : validateBoolean(o.up, 'options.up')
    this.#do((n, h) => {
      if (mtu !== undefined) n.setMtu(h, mtu)
      if (mac !== undefined) {
        n.setMac(h, mac)
        if (this.kind === 'macvtap') this.#mac = mac
      }
      if (bridge !== undefined) n.attachToBridge(h, bridge)
      if (up !== undefined) n.setLinkUp(h, up)
    })
  }

  /**
   * TUNSETCARRIER: turn the carrier on or off. The kernel turns it on when a
   * queue attaches; with it off the link is up but `NO-CARRIER`, and the host
   * stops sending to it, as when a cable is pulled. `getLinkInfo().carrier`.
   */
  setCarrier(on: boolean): void {
    const v = validateBoolean(on, 'on')
    this.#do((n, h) => n.setCarrier(h, v))
  }

  /** The transmit queue length (IFLA_TXQLEN): 0 to limits.maxTxQueueLen. */
  setTxQueueLen(len: number): void {
    const v = validateInteger(len, 'len', 0, limits.maxTxQueueLen)
    this.#do((n, h) => n.setTxQueueLen(h, v))
  }

  /**
   * Set flags of the device's bridge port (RTM_SETLINK, IFLA_BRPORT_*, as
   * `bridge link set`); missing keys are left alone. The device must be a
   * bridge port.
   */
  setBridgePort(flags: BridgePortFlags): void {
    const f = bridgePortOf(flags, 'flags')
    this.#do((n, h) => n.setBridgePort(h, f))
  }

  /**
   * Add an address to the device (RTM_NEWADDR, as `ip addr add CIDR dev
   * TAP`): `'192.0.2.1/32'`, `'2001:db8::1/64'`; a bare address is /32 or
   * /128. EEXIST if the device has it.
   */
  addAddress(cidr: string): void {
    const v = validateAddress(cidr, 'cidr')
    this.#do((n, h) => n.addAddress(h, v))
  }

  /** Remove an address (RTM_DELADDR); EADDRNOTAVAIL if the device has none such. */
  removeAddress(cidr: string): void {
    const v = validateAddress(cidr, 'cidr')
    this.#do((n, h) => n.removeAddress(h, v))
  }

  /**
   * Route `dest` through the device (RTM_NEWROUTE, main table, scope link, as
   * `ip route add DEST dev TAP`); host bits must be zero. EEXIST if the main
   * table has a route to `dest`; ENETDOWN while the link is down.
   */
  addRoute(dest: string): void {
    const v = validateRoute(dest, 'dest')
    this.#do((n, h) => n.addRoute(h, v))
  }

  /** Delete the route to `dest` through the device (RTM_DELROUTE); ESRCH if there is none. */
  removeRoute(dest: string): void {
    const v = validateRoute(dest, 'dest')
    this.#do((n, h) => n.removeRoute(h, v))
  }

  /** `/proc/sys/net/ipv4/conf/<if>/proxy_arp`, in the device's namespace. */
  setProxyArp(on: boolean): void {
    const v = validateBoolean(on, 'on')
    this.#do((n, h) => n.setProxyArp(h, v))
  }

  /** `/proc/sys/net/ipv6/conf/<if>/proxy_ndp`; ENOENT (with a hint) where the device has no IPv6. */
  setProxyNdp(on: boolean): void {
    const v = validateBoolean(on, 'on')
    this.#do((n, h) => n.setProxyNdp(h, v))
  }

  /**
   * `/proc/sys/net/ipv4/conf/<if>/forwarding`, then the IPv6 one (skipped
   * where the device has no IPv6); if the second write fails the first is
   * undone.
   */
  setForwarding(on: boolean): void {
    const v = validateBoolean(on, 'on')
    this.#do((n, h) => n.setForwarding(h, v))
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
    if (bits !== 0 && !this.vnetHdr) {
      throw invalidValue('offloads', `need a device with vnetHdr (${this.ifname} has none)`, offloads)
    }
    return bitsToOffloads(this.#do((n, h) => n.setOffloads(h, bits)))
  }

  /**
   * Enable or disable queue `index` of a multi-queue device (TUNSETQUEUE
   * with IFF_ATTACH_QUEUE / IFF_DETACH_QUEUE). A disabled queue's fd stays
   * open but gets no packets.
   */
  setQueueEnabled(index: number, enabled: boolean): void {
    if (!this.multiQueue) {
      throw invalidValue('index', `needs a multi-queue device (${this.ifname} has one queue)`, index)
    }
    const i = validateInteger(index, 'index', 0, this.tapFds.length - 1)
    const on = validateBoolean(enabled, 'enabled')
    this.#do((n, h) => n.setQueueEnabled(h, i, on))
  }

  /**
   * TUNSETPERSIST. A persistent device outlives its fds; `false` lets it go with the last one. A macvtap has
   * no such flag: for one this only chooses whether close() deletes the link.
   */
  setPersist(persist: boolean): void {
    const v = validateBoolean(persist, 'persist')
    this.#do((n, h) => n.setPersist(h, v))
  }

  /** TUNSETOWNER: `uid` may attach without CAP_NET_ADMIN. A macvtap has no owner (ERR_INVALID_ARG_VALUE). */
  setOwner(uid: number): void {
    const v = validateId(uid, 'uid')
    this.#noMacvtap('uid', uid)
    this.#do((n, h) => n.setOwner(h, v))
  }

  /** TUNSETGROUP: members of `gid` may attach without CAP_NET_ADMIN. A macvtap has no group. */
  setGroup(gid: number): void {
    const v = validateId(gid, 'gid')
    this.#noMacvtap('gid', gid)
    this.#do((n, h) => n.setGroup(h, v))
  }

  /**
   * Tag the device for {@link listTaps} and {@link gcTaps} (the interface
   * alias becomes `vmtap:tag=<tag>`, one netlink message); `null` clears the
   * alias. See openTap's `tag` for the syntax.
   */
  setTag(tag: string | null): void {
    const v = tag === null ? null : validateTag(tag, 'tag')
    this.#do((n, h) => n.setTag(h, v))
  }

  /**
   * The device's counters (IFLA_STATS64, one netlink message), as `ip -s link`
   * shows them. Frames written to a tap fd are the device's rx, frames the
   * host sends to it its tx. Numbers are exact up to 2**53.
   */
  getStats(): TapStats {
    return this.#do((n, h) => n.getStats(h))
  }
}

/**
 * Open (create, or attach to) a TAP device. See {@link OpenTapOptions}.
 * Throws TypeError/RangeError for bad arguments before any syscall, and
 * {@link TapError} when the kernel refuses; nothing stays open on failure.
 */
export function openTap(options?: OpenTapOptions): TapDevice {
  const o = normalizeOpenOptions(options)
  const raw = native().open(o.name, o.queues, o.vnetHdr, o.vhost, o.tunPath, o.vhostPath, o.config, o.netns, o.mode)
  return new TapDevice(kToken, raw, o.netns)
}

/** One openTapAsync waiting for its turn. */
interface PendingOpen {
  args: NativeOpenArgs
  netns: NetnsSpec | null
  resolve: (d: TapDevice) => void
  reject: (e: unknown) => void
}

/** How many waiting opens go to the addon in one call (at most limits.maxOpenBatch). */
const OPEN_BATCH = 16
const openQueue: PendingOpen[] = []
let openRunning = false

/**
 * Hand the waiting opens to the addon, OPEN_BATCH at a time, one call at a
 * time: one pool thread opens them one after the other. The kernel creates
 * devices one at a time anyway (under RTNL), so opens on several threads only
 * contend, and every thread busy in the kernel takes a core from the event
 * loop; one batch at a time keeps the rest of the pool free for fs and dns.
 */
function runOpens(): void {
  if (openRunning || openQueue.length === 0) return
  openRunning = true
  const batch = openQueue.splice(0, Math.min(OPEN_BATCH, limits.maxOpenBatch))
  let results: Promise<(NativeOpenResult | Error)[]>
  try {
    results = native().openBatch(batch.map((b) => b.args))
  } catch (e) {
    results = Promise.reject(e)
  }
  results
    .then(
      (out) => {
        for (let i = 0; i < batch.length; i++) {
          const r = out[i]
          if (Array.isArray(r)) batch[i].resolve(new TapDevice(kToken, r, batch[i].netns))
          else batch[i].reject(r)
        }
      },
      (e) => {
        for (const b of batch) b.reject(e)
      },
    )
    .finally(() => {
      openRunning = false
      runOpens()
    })
}

/**
 * {@link openTap} with the syscalls on the libuv pool. Invalid options
 * reject (TypeError/RangeError) before any syscall; kernel failures reject
 * with the same TapError openTap throws. Calls made together (in the same
 * tick, e.g. `Promise.all(nics.map((o) => openTapAsync(o)))`) are opened one
 * after the other by one pool thread, up to 16 per round trip: the kernel
 * serialises device creation, so this is as fast as opening them on several
 * threads, and it leaves the event loop a core and the rest of the pool free.
 */
export function openTapAsync(options?: OpenTapOptions): Promise<TapDevice> {
  let o: NativeOpenOptions
  try {
    o = normalizeOpenOptions(options)
  } catch (e) {
    return Promise.reject(e)
  }
  return new Promise((resolve, reject) => {
    const args: NativeOpenArgs = [
      o.name,
      o.queues,
      o.vnetHdr,
      o.vhost,
      o.tunPath,
      o.vhostPath,
      o.config,
      o.netns,
      o.mode,
    ]
    openQueue.push({ args, netns: o.netns, resolve, reject })
    // After the caller's synchronous code: the opens it starts together go together.
    if (!openRunning && openQueue.length === 1) queueMicrotask(runOpens)
  })
}

/**
 * Create a macvtap on `options.link` and open it: the other kind of VM NIC,
 * on the host's network without a bridge (libvirt's "direct" interface).
 * Returns the same {@link TapDevice} as openTap (kind `'macvtap'`, with the
 * {@link TapDevice.mac} the guest NIC must use); the fds go to a VMM the same
 * way. close() deletes the link unless `persist`. See
 * {@link OpenMacvtapOptions}. Throws TypeError/RangeError for bad arguments
 * before any syscall, and {@link TapError} when the kernel refuses; nothing
 * (fd, link, device node) stays on failure.
 */
export function openMacvtap(options: OpenMacvtapOptions): TapDevice {
  const o = normalizeMacvtapOptions(options)
  return new TapDevice(kToken, native().openMacvtap(...o.args), o.netns)
}

/** {@link openMacvtap} with the syscalls on the libuv pool (bad options reject before any syscall). */
export async function openMacvtapAsync(options: OpenMacvtapOptions): Promise<TapDevice> {
  const o = normalizeMacvtapOptions(options)
  return new TapDevice(kToken, await native().openMacvtapAsync(...o.args), o.netns)
}

/** A list of fd numbers, each read once and checked. */
function fdList(value: unknown, name: string): number[] {
  if (value === null || typeof value !== 'object' || !isArray(value, name)) {
    throw invalidType(name, 'an array of fd numbers', value)
  }
  return copyArray(value as unknown[], name).map((fd, i) => validateFd(fd, `${name}[${i}]`))
}

/**
 * A TapDevice from fds someone else opened, e.g. received with
 * {@link recvFds} from a privileged broker ({@link requestTap} does this):
 * `tapFds` one per queue, all attached to one TAP device; `vhostFds` none
 * or one per tap fd. The kernel is asked first (each fd open, attached to a
 * TAP device with TUNGETIFF, all to the same one — same name, flags and MAC —,
 * multi-queue when there are several; vhost fds answer VHOST_GET_FEATURES);
 * then the device takes the fds (the same numbers, made close-on-exec) and
 * closing it closes them. On failure nothing is taken or closed: the fds stay
 * yours. A disabled queue (TUNSETQUEUE detach) is still the device's and is
 * adopted as it is.
 */
export function adoptTap(tapFds: readonly number[], vhostFds: readonly number[] = []): TapDevice {
  const taps = fdList(tapFds, 'tapFds')
  const vhosts = fdList(vhostFds, 'vhostFds')
  if (taps.length < 1 || taps.length > limits.maxQueues) {
    throw outOfRange('tapFds.length', `>= 1 && <= ${limits.maxQueues}`, taps.length)
  }
  if (vhosts.length !== 0 && vhosts.length !== taps.length) {
    throw invalidValue('vhostFds', `must be empty or hold one fd per tap fd (${taps.length})`, vhostFds)
  }
  const seen = new Set<number>()
  for (const fd of [...taps, ...vhosts]) {
    if (seen.has(fd)) throw invalidValue('tapFds', `must not give fd ${fd} twice`, tapFds)
    seen.add(fd)
  }
  return new TapDevice(kToken, native().adoptTap(taps, vhosts))
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
  const iterator =
    devices !== null && typeof devices === 'object' ? readProperty(devices, Symbol.iterator, 'devices') : undefined
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
  const maxThreads =
    o.maxThreads === undefined ? 128 : validateInteger(o.maxThreads, 'options.maxThreads', 1, limits.maxCloseThreads)
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
    failures.push(e)
    names.push(owners[i].ifname)
  })
  if (failures.length) {
    throw new AggregateError(
      failures,
      `${failures.length} of ${handles.length} devices did not close cleanly (${names.join(', ')}); every fd was released`,
    )
  }
}
