// A small QMP client for one job: hot-plugging a NIC whose fds vmtap opened
// into a running QEMU, the way Ganeti does it — `getfd` per fd over the QMP
// Unix socket with SCM_RIGHTS, then `netdev_add` and `device_add`; and the
// reverse `device_del` + `netdev_del` + `closefd`. It is not a general QMP
// client: commands run one at a time, events are only waited for.

import { EventEmitter } from 'node:events'
import { closeSync } from 'node:fs'
import type { Socket } from 'node:net'

import { invalidType, invalidValue } from './errors'
import { sendFds } from './fdpass'
import { checkFdCounts, type HandOffSource, readDevice, validateQemuDriver, validateQemuId } from './handoff'
import { native } from './native'
import { snapshotOptions, validateFd, validateInteger, validateMac } from './validate'

/** A QMP command's error reply, typed. */
export class QmpError extends Error {
  readonly code = 'ERR_VMTAP_QMP'
  /** QMP's error class: `GenericError`, `DeviceNotFound`, ... */
  readonly errorClass: string
  /** QMP's description. */
  readonly desc: string
  /** The command that failed. */
  readonly command: string

  constructor(command: string, errorClass: string, desc: string) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`)
    this.command = command
    this.errorClass = errorClass
    this.desc = desc
  }
}
Object.defineProperty(QmpError.prototype, 'name', { value: 'QmpError', configurable: true, writable: true })

/** A QMP event. */
export interface QmpEvent {
  event: string
  data?: Record<string, unknown>
  timestamp?: { seconds: number; microseconds: number }
}

export interface QmpConnectOptions {
  /**
   * How long to wait for each reply, and for the socket: while QEMU has not
   * created it yet (ENOENT) or is not listening (ECONNREFUSED), connecting is
   * retried until this much time has passed. Default 30000 ms.
   */
  timeoutMs?: number
  /**
   * The longest line (one QMP message) accepted, in bytes. A longer one is
   * an error (`ERR_VMTAP_QMP_PROTOCOL`) and closes the connection. Default
   * 16 MiB (QEMU's largest replies, such as query-qmp-schema, are well below).
   */
  maxLineBytes?: number
}

/**
 * Splits a byte stream into lines. Each byte is examined once (a line that
 * arrives in many chunks is not rescanned), and a line longer than
 * `maxBytes` is an error rather than an unbounded buffer.
 * @internal
 */
export class LineReader {
  #parts: Buffer[] = []
  #size = 0
  /** How many bytes were examined so far (each byte once). */
  scanned = 0

  constructor(readonly maxBytes: number) {}

  /** Feed `chunk`; returns the lines it completed (without the newline and a trailing CR). */
  push(chunk: Buffer): string[] {
    const lines: string[] = []
    let start = 0
    for (;;) {
      const nl = chunk.indexOf(0x0a, start)
      this.scanned += (nl < 0 ? chunk.length : nl + 1) - start
      if (nl < 0) break
      const piece = chunk.subarray(start, nl)
      this.#grow(piece.length)
      const line = this.#parts.length === 0 ? piece : Buffer.concat([...this.#parts, piece])
      this.#parts = []
      this.#size = 0
      lines.push(line.toString('utf8').replace(/\r$/, ''))
      start = nl + 1
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start)
      this.#grow(rest.length)
      this.#parts.push(rest)
    }
    return lines
  }

  #grow(n: number): void {
    this.#size += n
    if (this.#size > this.maxBytes) {
      throw qmpError(`QMP sent a line longer than ${this.maxBytes} bytes (maxLineBytes); closing the connection`)
    }
  }
}

/** Connect to a Unix socket, retrying while it does not exist or refuses, until the deadline. */
async function connectWithRetry(path: string, deadline: number): Promise<Socket> {
  for (;;) {
    try {
      return await new Promise<Socket>((resolve, reject) => {
        // node:net (and node:stream) load on first use: `require('vmtap')` stays cheap.
        const { connect } = require('node:net') as typeof import('node:net')
        const s = connect({ path })
        s.once('connect', () => {
          s.off('error', reject)
          resolve(s)
        })
        s.once('error', reject)
      })
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() >= deadline) throw e
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))))
    }
  }
}

function qmpError(message: string, code = 'ERR_VMTAP_QMP_PROTOCOL'): Error & { code: string } {
  return Object.assign(new Error(message), { code })
}

/**
 * A connected, capability-negotiated QMP session. Create it with
 * {@link connectQmp}.
 */
export class QmpClient extends EventEmitter {
  readonly greeting: { QMP: { version: unknown; capabilities: unknown[] } }
  #socket: Socket
  #timeoutMs: number
  #pending: { resolve: (v: unknown) => void; reject: (e: Error) => void; command: string; id: number } | null = null
  #queue: Promise<unknown> = Promise.resolve()
  #closed = false
  #nextId = 1

  private constructor(
    socket: Socket,
    reader: LineReader,
    timeoutMs: number,
    greeting: QmpClient['greeting'],
    rest: string[],
  ) {
    super()
    this.#socket = socket
    this.#timeoutMs = timeoutMs
    this.greeting = greeting
    socket.on('data', (chunk: Buffer) => {
      let lines: string[]
      try {
        lines = reader.push(chunk)
      } catch (e) {
        this.#onClose(e as Error)
        socket.destroy()
        return
      }
      for (const line of lines) this.#onLine(line)
    })
    socket.on('close', () => this.#onClose(qmpError('the QMP connection closed', 'ERR_VMTAP_QMP_CLOSED')))
    socket.on('error', (e) => this.#onClose(e))
    for (const line of rest) this.#onLine(line)
  }

  /** @internal Use {@link connectQmp}. */
  static async connect(path: string | Socket, options?: QmpConnectOptions): Promise<QmpClient> {
    const o = snapshotOptions(options, 'options', ['timeoutMs', 'maxLineBytes'])
    const timeoutMs =
      o.timeoutMs === undefined ? 30000 : validateInteger(o.timeoutMs, 'options.timeoutMs', 1, 2 ** 31 - 1)
    const maxLineBytes =
      o.maxLineBytes === undefined ? 16 << 20 : validateInteger(o.maxLineBytes, 'options.maxLineBytes', 1024, 2 ** 30)
    let socket: Socket
    if (typeof path === 'string') {
      if (path === '' || path.includes('\0')) throw invalidValue('path', 'must be a Unix socket path', path)
      socket = await connectWithRetry(path, Date.now() + timeoutMs)
    } else if (path !== null && typeof path === 'object' && typeof (path as Socket).write === 'function') {
      socket = path
    } else {
      throw invalidType('path', 'a socket path or a connected net.Socket', path)
    }
    const reader = new LineReader(maxLineBytes)
    const { greeting, rest } = await new Promise<{ greeting: QmpClient['greeting']; rest: string[] }>(
      (resolve, reject) => {
        const timer = setTimeout(() => done(qmpError(`no QMP greeting within ${timeoutMs} ms`, 'ETIMEDOUT')), timeoutMs)
        const onData = (c: Buffer) => {
          try {
            const lines = reader.push(c).filter((l) => l.trim() !== '')
            if (lines.length === 0) return
            const g = JSON.parse(lines[0])
            if (!g || typeof g !== 'object' || !('QMP' in g)) throw new Error('not a QMP greeting')
            done(null, { greeting: g, rest: lines.slice(1) })
          } catch (e) {
            const err = e as Error & { code?: string }
            done(err.code ? err : qmpError(`bad QMP greeting: ${err.message}`))
          }
        }
        const onErr = (e: Error) => done(e)
        const onClose = () => done(qmpError('the QMP connection closed before the greeting', 'ERR_VMTAP_QMP_CLOSED'))
        const done = (e: Error | null, v?: { greeting: QmpClient['greeting']; rest: string[] }) => {
          clearTimeout(timer)
          socket.off('data', onData)
          socket.off('error', onErr)
          socket.off('close', onClose)
          if (e) {
            socket.destroy()
            reject(e)
          } else resolve(v!)
        }
        socket.on('data', onData)
        socket.once('error', onErr)
        socket.once('close', onClose)
      },
    )
    const client = new QmpClient(socket, reader, timeoutMs, greeting, rest)
    try {
      await client.execute('qmp_capabilities')
    } catch (e) {
      // The caller gets no client: nothing of this connection may stay open.
      client.close()
      throw e
    }
    return client
  }

  #onLine(text: string): void {
    const line = text.trim()
    if (!line) return
    let msg: Record<string, unknown>
    try {
      msg = JSON.parse(line)
    } catch {
      this.#fail(qmpError(`QMP sent a line that is not JSON: ${line.slice(0, 80)}`))
      return
    }
    if (typeof msg.event === 'string') {
      this.emit('event', msg)
      return
    }
    const p = this.#pending
    // A reply to a command that timed out (or to nobody) is dropped: it
    // must never be taken for the answer to the command now waiting.
    if (!p || msg.id !== p.id) return
    this.#pending = null
    if (msg.error && typeof msg.error === 'object') {
      const err = msg.error as { class?: string; desc?: string }
      p.reject(new QmpError(p.command, String(err.class ?? 'GenericError'), String(err.desc ?? '')))
    } else p.resolve(msg.return)
  }

  #fail(e: Error): void {
    const p = this.#pending
    this.#pending = null
    p?.reject(e)
  }

  #onClose(e: Error): void {
    if (this.#closed) return
    this.#closed = true
    this.#fail(e)
    this.emit('close')
  }

  /**
   * Run one QMP command and resolve with its `return` value; a QMP error
   * rejects with a QmpError. `fds` are attached to the command's bytes with
   * SCM_RIGHTS (for `getfd` / `add-fd`). Commands run one at a time.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, fds: readonly number[] = []): Promise<T> {
    if (typeof command !== 'string' || !/^[a-z][a-z0-9_-]*$/i.test(command))
      throw invalidValue('command', 'must be a QMP command name', command)
    const run = async (): Promise<T> => {
      if (this.#closed) throw qmpError('the QMP connection is closed', 'ERR_VMTAP_QMP_CLOSED')
      const id = this.#nextId++
      const line = Buffer.from(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\r\n`)
      let timer: NodeJS.Timeout | undefined
      const reply = new Promise<T>((resolve, reject) => {
        timer = setTimeout(() => {
          if (this.#pending?.id === id) this.#pending = null
          reject(qmpError(`QMP ${command}: no reply within ${this.#timeoutMs} ms`, 'ETIMEDOUT'))
        }, this.#timeoutMs)
        this.#pending = {
          command,
          id,
          resolve: (v) => {
            clearTimeout(timer)
            resolve(v as T)
          },
          reject: (e) => {
            clearTimeout(timer)
            reject(e)
          },
        }
      })
      // The reply may reject before the command is written (the timeout
      // while a write waits for a monitor that does not read, the monitor
      // closing): the caller gets that rejection through the race below, and
      // it never counts as unhandled.
      reply.catch(() => undefined)
      const written = fds.length
        ? sendFds(this.#socket, line, fds)
        : new Promise<void>((resolve, reject) => this.#socket.write(line, (e) => (e ? reject(e) : resolve())))
      try {
        await Promise.race([written, reply])
      } catch (e) {
        clearTimeout(timer)
        if (this.#pending?.id === id) this.#pending = null
        written.catch(() => undefined)
        throw e
      }
      return reply
    }
    const result = this.#queue.then(run, run)
    this.#queue = result.catch(() => undefined)
    return result
  }

  /**
   * Resolve with the next event named `name` (matching `filter`) that
   * arrives from now on, waiting up to `timeoutMs`. Call it before the
   * command that causes the event. Events nobody waits for are not kept.
   */
  waitForEvent(
    name: string,
    filter: (e: QmpEvent) => boolean = () => true,
    timeoutMs = this.#timeoutMs,
  ): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const onEvent = (e: QmpEvent) => {
        if (e.event !== name || !filter(e)) return
        cleanup()
        resolve(e)
      }
      const onClose = () => {
        cleanup()
        reject(qmpError(`the QMP connection closed while waiting for ${name}`, 'ERR_VMTAP_QMP_CLOSED'))
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(qmpError(`no ${name} event within ${timeoutMs} ms`, 'ETIMEDOUT'))
      }, timeoutMs)
      const cleanup = () => {
        clearTimeout(timer)
        this.off('event', onEvent)
        this.off('close', onClose)
      }
      this.on('event', onEvent)
      this.once('close', onClose)
    })
  }

  /** Close the connection. */
  close(): void {
    this.#socket.end()
    this.#socket.destroy()
  }
}

/** Options of {@link hotplugNic}. */
export interface HotplugNicOptions {
  /** The netdev id; fds are registered as `<id>-<i>` and `<id>-vhost-<i>`. */
  id: string
  /** The device id. Default `<id>-dev`. */
  deviceId?: string
  /** The guest MAC. Default: the device's own when it dictates one (a macvtap's), else QEMU's. */
  mac?: string
  /** The NIC model. Default `virtio-net-pci`. */
  driver?: string
  /** Extra `device_add` properties (`bus`, `addr`, ...). */
  deviceProps?: Record<string, string | number | boolean>
}

/** What {@link hotplugNic} added, for {@link unplugNic}. */
export interface HotpluggedNic {
  readonly id: string
  readonly deviceId: string
  readonly fdNames: readonly string[]
  readonly vhostFdNames: readonly string[]
}

/**
 * Hot-add a NIC backed by `tap` to a running QEMU: `getfd` for every tap and
 * vhost fd (sent with SCM_RIGHTS), `netdev_add` naming them, then
 * `device_add` (with `mq=on,vectors=2N+2` for N > 1 queues). QEMU keeps its
 * own copies, so the caller may close `tap` afterwards. The device's fds are
 * duplicated once, at the call, and the duplicates are what is sent (and
 * closed at the end): closing `tap` while the commands run, and its numbers
 * being reused, cannot hand QEMU anything else. On failure the commands that
 * succeeded are undone (`netdev_del`, `closefd`) and the error is thrown.
 */
export async function hotplugNic(
  qmp: QmpClient,
  tap: HandOffSource,
  options: HotplugNicOptions,
): Promise<HotpluggedNic> {
  if (!(qmp instanceof QmpClient)) throw invalidType('qmp', 'a QmpClient', qmp)
  // The device is read once: what is validated is what is sent.
  const d = readDevice(tap, 'tap', 'a TapDevice', ['closed', 'ifname', 'mac'])
  if (d.closed) throw invalidValue('tap', `is closed (${String(d.ifname)})`, d.ifname)
  checkFdCounts(d, 'tap')
  const tapFdNumbers = d.tapFds.map((fd, i) => validateFd(fd, `tap.tapFds[${i}]`))
  const vhostFdNumbers = d.vhostFds.map((fd, i) => validateFd(fd, `tap.vhostFds[${i}]`))
  const o = snapshotOptions(options, 'options', ['id', 'deviceId', 'mac', 'driver', 'deviceProps'])
  const id = validateQemuId(o.id, 'options.id')
  const deviceId = o.deviceId === undefined ? `${id}-dev` : validateQemuId(o.deviceId, 'options.deviceId')
  // A macvtap dictates the guest's MAC (it passes on only frames for its own).
  const mac = o.mac === undefined ? d.mac : validateMac(o.mac, 'options.mac')
  const driver = o.driver === undefined ? 'virtio-net-pci' : validateQemuDriver(o.driver, 'options.driver')
  const props = o.deviceProps === undefined ? {} : snapshotOptions(o.deviceProps ?? null, 'options.deviceProps', null)
  const n = tapFdNumbers.length
  const fdNames = tapFdNumbers.map((_, i) => `${id}-${i}`)
  const vhostFdNames = vhostFdNumbers.map((_, i) => `${id}-vhost-${i}`)

  // Resolve the numbers now, before the first await (synchronously after the
  // closed check): from here on only these duplicates are sent.
  const dups = native().dupFds([...tapFdNumbers, ...vhostFdNumbers])
  const tapFds = dups.slice(0, n)
  const vhostFds = dups.slice(n)
  const registered: string[] = []
  let netdevAdded = false
  try {
    for (const [i, fd] of tapFds.entries()) {
      await qmp.execute('getfd', { fdname: fdNames[i] }, [fd])
      registered.push(fdNames[i])
    }
    for (const [i, fd] of vhostFds.entries()) {
      await qmp.execute('getfd', { fdname: vhostFdNames[i] }, [fd])
      registered.push(vhostFdNames[i])
    }
    const netdev: Record<string, unknown> = { type: 'tap', id }
    if (n > 1) netdev.fds = fdNames.join(':')
    else netdev.fd = fdNames[0]
    if (vhostFdNames.length) {
      netdev.vhost = true
      if (n > 1) netdev.vhostfds = vhostFdNames.join(':')
      else netdev.vhostfd = vhostFdNames[0]
    }
    await qmp.execute('netdev_add', netdev)
    netdevAdded = true
    const device: Record<string, unknown> = { driver, id: deviceId, netdev: id, ...props }
    if (mac) device.mac = mac
    if (n > 1) {
      device.mq = true
      device.vectors = 2 * n + 2
    }
    await qmp.execute('device_add', device)
    return Object.freeze({ id, deviceId, fdNames: Object.freeze(fdNames), vhostFdNames: Object.freeze(vhostFdNames) })
  } catch (e) {
    if (netdevAdded) await qmp.execute('netdev_del', { id }).catch(() => undefined)
    // Named fds QEMU did not consume (netdev_add takes them) are released.
    for (const name of registered) await qmp.execute('closefd', { fdname: name }).catch(() => undefined)
    throw e
  } finally {
    for (const fd of dups) closeSync(fd)
  }
}

/**
 * Hot-remove a NIC added by {@link hotplugNic}: `device_del`, wait for the
 * guest to release it (DEVICE_DELETED), `netdev_del` (QEMU closes its copies
 * of the fds; the host device goes away when no one else holds it), then
 * `closefd` for any named fd QEMU still holds (errors for names already
 * consumed are ignored).
 */
export async function unplugNic(
  qmp: QmpClient,
  nic: Pick<HotpluggedNic, 'id' | 'deviceId'> & Partial<HotpluggedNic>,
  options?: { timeoutMs?: number },
): Promise<void> {
  if (!(qmp instanceof QmpClient)) throw invalidType('qmp', 'a QmpClient', qmp)
  if (nic === null || typeof nic !== 'object' || typeof nic.id !== 'string' || typeof nic.deviceId !== 'string') {
    throw invalidType('nic', 'what hotplugNic returned', nic)
  }
  const o = snapshotOptions(options, 'options', ['timeoutMs'])
  const timeoutMs =
    o.timeoutMs === undefined ? 60000 : validateInteger(o.timeoutMs, 'options.timeoutMs', 1, 2 ** 31 - 1)
  const deleted = qmp.waitForEvent('DEVICE_DELETED', (e) => e.data?.device === nic.deviceId, timeoutMs)
  deleted.catch(() => undefined)
  await qmp.execute('device_del', { id: nic.deviceId })
  await deleted
  await qmp.execute('netdev_del', { id: nic.id })
  for (const name of [...(nic.fdNames ?? []), ...(nic.vhostFdNames ?? [])]) {
    await qmp.execute('closefd', { fdname: name }).catch(() => undefined)
  }
}

/**
 * Connect to QEMU's QMP socket (`-qmp unix:PATH,server=on,wait=off`),
 * negotiate capabilities, and return a client whose commands can carry fds
 * (see {@link hotplugNic}).
 */
export function connectQmp(path: string | Socket, options?: QmpConnectOptions): Promise<QmpClient> {
  return QmpClient.connect(path, options)
}
