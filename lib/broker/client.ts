// The broker's client: ask a running broker (./server) for a device and get
// a TapDevice owning the fds it sends back.

import { closeSync } from 'node:fs'
import { Socket } from 'node:net'
import { constants as os } from 'node:os'

import { adoptTap, type TapDevice } from '../device'
import { recvFds, sendFds } from '../fdpass'
import { limits } from '../limits'
import { invalidType, invalidValue, TapError } from '../errors'
import { snapshotOptions, validateInteger } from '../validate'
import {
  encodeFrame,
  type ErrorResponse,
  FrameReader,
  type GrantResponse,
  MAX_MESSAGE_BYTES,
  normalizeRemoteOptions,
  PROTOCOL_VERSION,
  ProtocolError,
  parseResponse,
  type RemoteTapOptions,
} from './protocol'

/** Options of {@link requestTap}: the device's (see {@link RemoteTapOptions}) and `timeoutMs`. */
export interface RequestTapOptions extends RemoteTapOptions {
  /** How long the whole exchange may take. Default 30000 ms. */
  timeoutMs?: number
}

const errnoOf = (code: string) => -((os.errno as Record<string, number>)[code] ?? os.errno.EPROTO)

/** A TapError for something the broker said or did. */
function brokerError(code: string, message: string, extra: { syscall?: string; ifname?: string } = {}): TapError {
  return new TapError(message, {
    code,
    errno: errnoOf(code),
    syscall: extra.syscall ?? 'requestTap',
    ...(extra.ifname !== undefined ? { ifname: extra.ifname } : {}),
  })
}

function refusal(r: ErrorResponse): TapError {
  return brokerError(r.code, `broker: ${r.message}`, { syscall: r.syscall, ifname: r.ifname })
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = new Socket()
    // Paused before it connects: Node must never read this socket (its
    // read(2) would drop the fds the broker sends); recvFds reads it.
    sock.pause()
    const onError = (e: Error) => {
      sock.destroy()
      reject(e)
    }
    sock.once('error', onError)
    sock.connect(path, () => {
      sock.off('error', onError)
      sock.on('error', () => {}) // later errors surface through recvFds / write
      resolve(sock)
    })
  })
}

/**
 * Send the request. A broker that refuses at once (too many connections)
 * answers and closes before reading it: the write then fails with EPIPE or
 * ECONNRESET while the answer waits in the receive queue, so those are not
 * the outcome. sendFds (no fds) rather than socket.write(): Node destroys a
 * socket whose write fails, and the answer would be lost with it.
 */
async function sendRequest(sock: Socket, data: Buffer, timeoutMs: number): Promise<void> {
  try {
    await sendFds(sock, data, [], { timeoutMs })
  } catch (e) {
    const code = (e as { code?: unknown }).code
    if (code !== 'EPIPE' && code !== 'ECONNRESET') throw e
  }
}

/**
 * Ask the broker listening on `socketPath` for a device. Resolves with a
 * TapDevice owning the fds the broker sent (closing it removes a
 * non-persistent device). Rejects with:
 * - a TypeError/RangeError for bad options, before connecting;
 * - the socket's error (ENOENT, ECONNREFUSED, EACCES) when no broker listens there;
 * - a TapError with code `EACCES` when the policy refuses (the message names
 *   the rule and why), or the broker's error otherwise (EINVAL, EAGAIN when
 *   busy, the kernel's error when opening failed, ETIMEDOUT, EPROTO...).
 */
export async function requestTap(socketPath: string, options?: RequestTapOptions): Promise<TapDevice> {
  if (typeof socketPath !== 'string') throw invalidType('socketPath', 'of type string', socketPath)
  if (socketPath === '' || socketPath.includes('\0')) {
    throw invalidValue('socketPath', 'must be a socket path without NUL bytes', socketPath)
  }
  const path = socketPath
  const o = snapshotOptions(options, 'options', null)
  const timeoutMs =
    o.timeoutMs === undefined ? 30_000 : validateInteger(o.timeoutMs, 'options.timeoutMs', 1, 2 ** 31 - 1)
  delete o.timeoutMs
  const request = { v: PROTOCOL_VERSION, op: 'open', options: normalizeRemoteOptions(o, 'options') }
  const deadline = Date.now() + timeoutMs
  const left = () => {
    const ms = deadline - Date.now()
    if (ms <= 0) throw brokerError('ETIMEDOUT', `broker: no answer within ${timeoutMs} ms`)
    return ms
  }

  const sock = await connect(path)
  const fds: number[] = []
  let adopted = false
  try {
    await sendRequest(sock, encodeFrame(request), left())
    // The response frame: read exactly its bytes (header, then payload), so
    // nothing after it is consumed; the fds come with its first byte.
    const reader = new FrameReader(MAX_MESSAGE_BYTES)
    let payload: Buffer | null = null
    while (payload === null) {
      const got = await recvFds(sock, { maxBytes: reader.missing, maxFds: limits.scmMaxFd, timeoutMs: left() })
      fds.push(...got.fds)
      if (got.truncated) throw brokerError('EPROTO', 'broker: the response carried more fds than one message holds')
      if (got.data.length === 0) {
        throw brokerError('ECONNRESET', 'broker: the broker closed the connection without an answer')
      }
      payload = reader.push(got.data)
    }
    const response = parseResponse(payload)
    if (!response.ok) throw refusal(response)
    const grant = response as GrantResponse
    const want = grant.tapFds + grant.vhostFds
    // More than SCM_MAX_FD fds: the rest come on one-byte messages.
    while (fds.length < want) {
      const got = await recvFds(sock, {
        maxBytes: 1,
        maxFds: Math.min(limits.scmMaxFd, want - fds.length),
        timeoutMs: left(),
      })
      fds.push(...got.fds)
      if (got.data.length === 0 || got.truncated || got.fds.length === 0) {
        throw brokerError('EPROTO', `broker: ${fds.length} of the ${want} fds announced arrived`)
      }
    }
    if (fds.length !== want) throw brokerError('EPROTO', `broker: ${fds.length} fds arrived, ${want} announced`)
    const tap = adoptTap(fds.slice(0, grant.tapFds), fds.slice(grant.tapFds))
    adopted = true
    if (tap.ifname !== grant.ifname) {
      tap.close()
      throw brokerError('EPROTO', `broker: announced ${grant.ifname} but sent the fds of ${tap.ifname}`)
    }
    return tap
  } catch (e) {
    if (e instanceof ProtocolError) throw brokerError(e.code, `broker: ${e.message}`)
    throw e
  } finally {
    if (!adopted) {
      for (const fd of fds) {
        try {
          closeSync(fd)
        } catch {
          // already closed
        }
      }
    }
    sock.destroy()
  }
}
