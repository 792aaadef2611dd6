// Passing fds over a connected Unix stream socket (SCM_RIGHTS).

import type { Socket } from 'node:net'

import { abortError, invalidType, invalidValue, outOfRange } from './errors'
import { limits } from './limits'
import { native } from './native'
import { copyArray, isArray, snapshotOptions, validateAbortSignal, validateFd, validateInteger } from './validate'

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
  if (typeof socket === 'number') return validateFd(socket, name)
  if (socket !== null && typeof socket === 'object') {
    const fd = (socket as { _handle?: { fd?: unknown } | null })._handle?.fd
    if (typeof fd === 'number' && Number.isInteger(fd) && fd >= 0) return fd
    if (typeof (socket as Socket).write === 'function') {
      throw invalidValue(name, 'is not a connected socket (it has no fd)', '[net.Socket]')
    }
  }
  throw invalidType(name, 'a connected net.Socket or an fd number', socket)
}

const timeoutOf = (v: unknown) => (v === undefined ? null : validateInteger(v, 'options.timeoutMs', 0, 2 ** 31 - 1))

/**
 * Start a native call that may wait for its socket, cancellable by `signal`:
 * once the call waits, an abort cancels it (it rejects with an AbortError
 * whose `cause` is the signal's reason, and its duplicates are closed). An
 * already aborted signal rejects before any syscall.
 */
function abortable<T>(signal: AbortSignal | undefined, start: (onWait: ((id: number) => void) | null) => Promise<T>) {
  if (signal === undefined) return start(null)
  if (signal.aborted) return Promise.reject(abortError(signal.reason))
  let listener: (() => void) | undefined
  const p = start((id) => {
    listener = () => native().cancel(id)
    signal.addEventListener('abort', listener, { once: true })
  })
  const off = () => {
    if (listener) signal.removeEventListener('abort', listener)
  }
  return p.then(
    (v) => {
      off()
      return v
    },
    (e: unknown) => {
      off()
      if ((e as { code?: unknown })?.code === 'ABORT_ERR') {
        Object.defineProperty(e, 'cause', { value: signal.reason, configurable: true, writable: true })
      }
      throw e
    },
  )
}

/** Options of {@link sendFds}. */
export interface SendFdsOptions {
  /** How long to wait for a full socket to drain. Default: no limit. */
  timeoutMs?: number
  /** Abort the wait for a full socket: the call rejects with an AbortError (`code` 'ABORT_ERR'). */
  signal?: AbortSignal
}

/**
 * Send `data` with `fds` attached (sendmsg + SCM_RIGHTS) over a connected
 * Unix stream socket: what QEMU's QMP `getfd` and cloud-hypervisor's
 * `add-net` take. At most 253 fds (SCM_MAX_FD); `data` must not be empty.
 * A partial write sends the rest without fds. A full socket is waited for on
 * the event loop (the socket is watched; no thread is blocked, nothing
 * spins), up to `timeoutMs`, or until `signal` aborts. The socket and every fd
 * in `fds` are duplicated at the call: closing them (and their numbers being
 * reused) while the call waits changes nothing. Resolves with the number of
 * bytes sent. Do not `socket.write()` while it runs: bytes Node still buffers
 * would go out after these.
 */
export async function sendFds(
  socket: FdSocket,
  data: string | Uint8Array,
  fds: readonly number[],
  options?: SendFdsOptions,
): Promise<number> {
  const fd = socketFd(socket, 'socket')
  let buf: Buffer
  if (typeof data === 'string') buf = Buffer.from(data, 'utf8')
  else if (data instanceof Uint8Array) buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  else throw invalidType('data', 'a string, Buffer or Uint8Array', data)
  if (buf.length === 0) throw invalidValue('data', 'must not be empty: fds travel with at least one byte', data)
  if (!isArray(fds, 'fds')) throw invalidType('fds', 'an array of fd numbers', fds)
  const items = copyArray(fds, 'fds')
  if (items.length > limits.scmMaxFd) {
    throw outOfRange('fds.length', `<= ${limits.scmMaxFd} (SCM_MAX_FD)`, items.length)
  }
  const list = items.map((f, i) => validateFd(f, `fds[${i}]`))
  const o = snapshotOptions(options, 'options', ['timeoutMs', 'signal'])
  const timeout = timeoutOf(o.timeoutMs)
  const signal = validateAbortSignal(o.signal, 'options.signal')
  return abortable(signal, (onWait) => native().sendFds(fd, buf, list, timeout, onWait))
}

/** Options of {@link recvFds}. */
export interface RecvFdsOptions {
  /** The most bytes to read. Default 65536. */
  maxBytes?: number
  /** The most fds to accept (extra ones are closed and `truncated` set). Default 253. */
  maxFds?: number
  /** How long to wait for a message. Default: no limit. */
  timeoutMs?: number
  /** Abort the wait: the call rejects with an AbortError (`code` 'ABORT_ERR'). */
  signal?: AbortSignal
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
 * connected Unix stream socket, waiting on the event loop (no thread is
 * blocked) up to `timeoutMs` or until `signal` aborts. The buffer is sized by
 * what arrived, never allocated at `maxBytes` up front. Node must not be
 * reading the same socket (create the server with `pauseOnConnect: true`, or
 * pass a raw fd).
 */
export async function recvFds(socket: FdSocket, options?: RecvFdsOptions): Promise<ReceivedFds> {
  const fd = socketFd(socket, 'socket')
  const o = snapshotOptions(options, 'options', ['maxBytes', 'maxFds', 'timeoutMs', 'signal'])
  const maxBytes =
    o.maxBytes === undefined ? 65536 : validateInteger(o.maxBytes, 'options.maxBytes', 1, limits.maxRecvBytes)
  const maxFds =
    o.maxFds === undefined ? limits.scmMaxFd : validateInteger(o.maxFds, 'options.maxFds', 0, limits.scmMaxFd)
  const timeout = timeoutOf(o.timeoutMs)
  const signal = validateAbortSignal(o.signal, 'options.signal')
  return abortable(signal, (onWait) => native().recvFds(fd, maxBytes, maxFds, timeout, onWait))
}
