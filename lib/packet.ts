// Frames from Node: a TAP (or TUN) queue read as an async iterable or a
// Duplex stream, and written frame by frame, all on the event loop (see
// crates/node/src/packet.rs). The virtio-net header that precedes each frame
// on a vnetHdr device is parsed and written here.

import type { Duplex } from 'node:stream'

import { abortError, invalidType, invalidValue, outOfRange } from './errors'
import { limits } from './limits'
import { type NativeHandle, native } from './native'
import { readProperty, snapshotOptions, validateAbortSignal, validateBoolean, validateInteger } from './validate'

export { virtioNet } from './constants'

/**
 * The virtio-net header of a frame on a device with `vnetHdr` (10, 12 or 20
 * bytes, see `getVnetHdrSize()`), in host byte order (little-endian on the
 * platforms vmtap ships for). With offloads off (vmtap's default) the kernel
 * sends all-zero headers: every frame is whole and checksummed.
 */
export interface VirtioNetHeader {
  /** `virtioNet.F_NEEDS_CSUM`, `F_DATA_VALID`, ... */
  flags: number
  /** `virtioNet.GSO_NONE`, `GSO_TCPV4`, ... (a GSO frame is up to 64 KiB, for the reader to segment). */
  gsoType: number
  /** Length of the headers before the GSO payload. */
  hdrLen: number
  /** Segment size of a GSO frame. */
  gsoSize: number
  /** Where the checksum to complete starts (with F_NEEDS_CSUM). */
  csumStart: number
  /** Where in it the checksum goes. */
  csumOffset: number
  /** 12- and 20-byte headers (mergeable receive buffers): how many buffers the frame spans. */
  numBuffers?: number
  /** 20-byte headers: the packet's hash. */
  hashValue?: number
  /** 20-byte headers: what the hash covers. */
  hashReport?: number
}

/** A frame with its virtio-net header: what `frames(q, { header: true })` yields and `writeFrame` takes. */
export interface TapFrame {
  /** `null` on a device without vnetHdr. */
  header: VirtioNetHeader | null
  /** The Ethernet frame (TAP) or IP packet (TUN), without the vnet header. */
  frame: Buffer
}

/** Options of `TapDevice.frames()` and `TapDevice.frameStream()`. */
export interface FramesOptions {
  /** Yield `{ header, frame }` with the virtio-net header parsed, instead of the bare frame. Default false. */
  header?: boolean
  /**
   * How many frames may wait for the consumer; reading stops there until it
   * catches up (the kernel holds, then drops, what arrives meanwhile). One
   * read goes on until the queue is empty or this many frames (at most 128)
   * were read, so up to twice this many may wait. Default 256.
   */
  highWaterMark?: number
  /** Ends the iteration (or destroys the stream) when aborted. */
  signal?: AbortSignal
}

function parseHeader(b: Buffer, len: number): VirtioNetHeader {
  const h: VirtioNetHeader = {
    flags: b[0],
    gsoType: b[1],
    hdrLen: b.readUInt16LE(2),
    gsoSize: b.readUInt16LE(4),
    csumStart: b.readUInt16LE(6),
    csumOffset: b.readUInt16LE(8),
  }
  if (len >= 12) h.numBuffers = b.readUInt16LE(10)
  if (len >= 20) {
    h.hashValue = b.readUInt32LE(12)
    h.hashReport = b.readUInt16LE(16)
  }
  return h
}

const HEADER_FIELDS: readonly [keyof VirtioNetHeader, number, number][] = [
  ['flags', 0, 1],
  ['gsoType', 1, 1],
  ['hdrLen', 2, 2],
  ['gsoSize', 4, 2],
  ['csumStart', 6, 2],
  ['csumOffset', 8, 2],
  ['numBuffers', 10, 2],
  ['hashValue', 12, 4],
  ['hashReport', 16, 2],
]

/** A header as the 20 bytes the addon takes (it writes the device's size of them). */
function serializeHeader(value: unknown, name: string): Buffer {
  const o = snapshotOptions(
    value,
    name,
    HEADER_FIELDS.map(([k]) => k),
  )
  const b = Buffer.alloc(20)
  for (const [k, at, size] of HEADER_FIELDS) {
    if (o[k] === undefined) continue
    const v = validateInteger(o[k], `${name}.${k}`, 0, 2 ** (8 * size) - 1)
    if (size === 1) b[at] = v
    else if (size === 2) b.writeUInt16LE(v, at)
    else b.writeUInt32LE(v, at)
  }
  return b
}

/** What a reader hands its consumer. @internal */
export interface Sink {
  frames(items: (Buffer | TapFrame)[]): void
  end(): void
  error(e: Error): void
}

/**
 * One queue's reader (the addon's watch on a duplicate of the queue's fd):
 * paused until `resume()`; frames arrive in batches.
 * @internal
 */
export class QueueReader {
  readonly #id: number
  #closed = false
  #paused = true

  constructor(handle: NativeHandle, queue: number, header: boolean, batch: number, sink: Sink, onClose: () => void) {
    this.#onClose = onClose
    this.#id = native().frameReader(
      handle,
      queue,
      (err, pool, start, lengths, hdrLen) => {
        if (err) {
          this.#finish()
          sink.error(err)
        } else if (pool === null) {
          this.#finish()
          sink.end()
        } else {
          // Frames are read into a pooled Buffer; each is a view of it.
          const n = lengths.length >>> 2
          const items: (Buffer | TapFrame)[] = new Array(n)
          let at = start
          for (let i = 0; i < n; i++) {
            const len = lengths.readUInt32LE(i << 2)
            const frame = pool.subarray(at + hdrLen, at + len)
            items[i] = header
              ? { header: hdrLen === 0 ? null : parseHeader(pool.subarray(at, at + hdrLen), hdrLen), frame }
              : frame
            at += len
          }
          sink.frames(items)
        }
      },
      batch,
    )
  }

  readonly #onClose: () => void

  #finish(): void {
    if (this.#closed) return
    this.#closed = true
    this.#onClose()
  }

  get closed(): boolean {
    return this.#closed
  }

  resume(): void {
    if (this.#closed || !this.#paused) return
    this.#paused = false
    native().readerResume(this.#id)
  }

  pause(): void {
    if (this.#closed || this.#paused) return
    this.#paused = true
    native().readerPause(this.#id)
  }

  /** Stop reading; the duplicate fd is closed now. */
  close(): void {
    if (this.#closed) return
    this.#finish()
    native().readerClose(this.#id)
  }
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true })

/**
 * The async iterator `TapDevice.frames()` returns. It reads only while
 * someone waits for frames or fewer than `highWaterMark` are buffered;
 * `return()` (a `break` out of `for await`) stops reading. Closing the device
 * ends it.
 */
export class FrameIterator<T extends Buffer | TapFrame = Buffer> implements AsyncIterableIterator<T> {
  #reader: QueueReader
  /** The batch being taken from, and where; later batches wait in #more. */
  #batch: T[] = []
  #at = 0
  #more: T[][] = []
  #count = 0
  #waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: Error) => void } | null = null
  #error: Error | null = null
  #ended = false
  readonly #hwm: number
  readonly #low: number
  #signal: AbortSignal | undefined
  #onAbort: (() => void) | undefined

  /** @internal */
  constructor(make: (sink: Sink) => QueueReader, hwm: number, signal: AbortSignal | undefined) {
    this.#hwm = hwm
    this.#low = Math.max(1, hwm >> 1)
    this.#reader = make({
      frames: (items) => this.#push(items as T[]),
      end: () => this.#end(null),
      error: (e) => this.#end(e),
    })
    if (signal) {
      this.#signal = signal
      this.#onAbort = () => this.#end(abortError(signal.reason), true)
      signal.addEventListener('abort', this.#onAbort, { once: true })
    }
  }

  /** Frames read from the queue that the consumer has not taken yet (under twice `highWaterMark`). */
  get buffered(): number {
    return this.#count
  }

  #push(items: T[]): void {
    if (items.length === 0) return
    let from = 0
    if (this.#waiting) {
      const w = this.#waiting
      this.#waiting = null
      w.resolve({ value: items[0], done: false })
      from = 1
      if (items.length === 1) return
    }
    if (this.#at >= this.#batch.length) {
      this.#batch = items
      this.#at = from
    } else this.#more.push(from === 0 ? items : items.slice(from))
    this.#count += items.length - from
    if (this.#count >= this.#hwm) this.#reader.pause()
  }

  #end(error: Error | null, stop = false): void {
    if (this.#ended) return
    this.#ended = true
    this.#error = error
    if (stop) this.#reader.close()
    if (this.#signal && this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort)
    const w = this.#waiting
    this.#waiting = null
    if (w) {
      if (error && this.#count === 0) {
        this.#error = null
        w.reject(error)
      } else w.resolve(DONE)
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#count > 0) {
      if (this.#at >= this.#batch.length) {
        this.#batch = this.#more.shift() as T[]
        this.#at = 0
      }
      const value = this.#batch[this.#at++]
      if (--this.#count <= this.#low && !this.#ended) this.#reader.resume()
      return Promise.resolve({ value, done: false })
    }
    if (this.#ended) {
      const e = this.#error
      this.#error = null
      return e ? Promise.reject(e) : Promise.resolve(DONE)
    }
    if (this.#waiting) return Promise.reject(invalidValue('next', 'was called while the previous call waits', ''))
    this.#reader.resume()
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject }
    })
  }

  /** Stop reading (what `break` in `for await` calls). */
  return(): Promise<IteratorResult<T>> {
    this.#batch = []
    this.#at = 0
    this.#more = []
    this.#count = 0
    this.#end(null, true)
    return Promise.resolve(DONE)
  }

  throw(e?: unknown): Promise<IteratorResult<T>> {
    this.return()
    return Promise.reject(e)
  }

  [Symbol.asyncIterator](): this {
    return this
  }
}

/** @internal frames()'s options, validated. */
export function framesOptions(options: unknown): { header: boolean; hwm: number; signal: AbortSignal | undefined } {
  const o = snapshotOptions(options, 'options', ['header', 'highWaterMark', 'signal'])
  return {
    header: o.header === undefined ? false : validateBoolean(o.header, 'options.header'),
    hwm: o.highWaterMark === undefined ? 256 : validateInteger(o.highWaterMark, 'options.highWaterMark', 1, 2 ** 20),
    signal: validateAbortSignal(o.signal, 'options.signal'),
  }
}

/** @internal A frame argument of writeFrame: the bytes and the serialised header (or null). */
export function frameArgument(value: unknown, tun: boolean, vnetHdr: boolean): [Buffer, Buffer | null] {
  let bytes: unknown = value
  let header: Buffer | null = null
  if (value !== null && typeof value === 'object' && !(value instanceof Uint8Array)) {
    bytes = readProperty(value, 'frame', 'frame.frame')
    const h = readProperty(value, 'header', 'frame.header')
    if (h !== null && h !== undefined) {
      if (!vnetHdr) throw invalidValue('frame.header', 'needs a device with vnetHdr', h)
      header = serializeHeader(h, 'frame.header')
    }
  }
  if (!(bytes instanceof Uint8Array)) throw invalidType('frame', 'a Buffer, a Uint8Array or { header, frame }', value)
  const min = tun ? limits.minTunPacketBytes : limits.minTapFrameBytes
  if (bytes.byteLength < min) {
    throw outOfRange(
      'frame.length',
      `>= ${min} (${tun ? 'an IPv4 header' : 'an Ethernet header'}) and <= ${limits.maxFrameBytes}`,
      bytes.byteLength,
    )
  }
  if (bytes.byteLength > limits.maxFrameBytes) {
    throw outOfRange('frame.length', `>= ${min} and <= ${limits.maxFrameBytes}`, bytes.byteLength)
  }
  const buf = bytes instanceof Buffer ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return [buf, header]
}

/** @internal Build the Duplex of TapDevice.frameStream(). */
export function makeFrameStream(
  make: (sink: Sink) => QueueReader,
  write: (frame: unknown) => Promise<void>,
  hwm: number,
  signal: AbortSignal | undefined,
): Duplex {
  const { Duplex: DuplexClass } = require('node:stream') as typeof import('node:stream')
  let reader: QueueReader | undefined
  const stream = new DuplexClass({
    objectMode: true,
    readableHighWaterMark: hwm,
    writableHighWaterMark: hwm,
    signal,
    read() {
      reader?.resume()
    },
    write(chunk, _encoding, callback) {
      write(chunk).then(() => callback(), callback)
    },
    destroy(err, callback) {
      reader?.close()
      callback(err)
    },
  })
  reader = make({
    frames: (items) => {
      let more = true
      for (const f of items) more = stream.push(f)
      if (!more) reader?.pause()
    },
    end: () => stream.push(null),
    error: (e) => stream.destroy(e),
  })
  return stream
}

/** @internal An AbortError for frames() called with an aborted signal. */
export function abortedAlready(signal: AbortSignal | undefined): Error | null {
  return signal?.aborted ? abortError(signal.reason) : null
}
