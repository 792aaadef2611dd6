// The broker: a privileged process (CAP_NET_ADMIN) that listens on a Unix
// stream socket, identifies each client by the kernel's record of it
// (peerCredentials: SO_PEERCRED, SO_PEERGROUPS), decides its request with
// the policy (./policy), opens the device with openTapAsync and sends the
// fds back (sendFds). It never blocks its event loop on one client: the
// open and the send run on the libuv pool, every connection has a deadline,
// the number of connections (all, and per uid) and the request size are
// capped, and fds a client sends are never received (Node reads the socket
// with read(2), so the kernel drops them).

import { randomBytes } from 'node:crypto'
import { chmodSync, lstatSync, unlinkSync } from 'node:fs'
import { createConnection, createServer, type Server, type Socket } from 'node:net'

import { openTapAsync, type TapDevice } from '../device'
import { invalidType, invalidValue } from '../errors'
import { sendFds } from '../fdpass'
import { limits } from '../limits'
import type { OpenTapOptions } from '../options'
import { type PeerCredentials, peerCredentials } from '../peer'
import { offloadsToBits } from '../options'
import { validateInteger } from '../validate'
import { authorize, type Policy, type PolicyRule } from './policy'
import {
  type ErrorResponse,
  encodeFrame,
  FrameReader,
  type GrantResponse,
  netnsPath,
  PROTOCOL_VERSION,
  ProtocolError,
  parseRequest,
  type RemoteTapOptions,
} from './protocol'

/** One line of the broker's log: one per connection, when it is decided. */
export interface BrokerLogEntry {
  /** ISO 8601. */
  time: string
  /**
   * `grant`: the fds were sent. `refuse`: the policy or the protocol said no
   * (EACCES, EINVAL, EPROTO, EMSGSIZE, EPROTONOSUPPORT, EAGAIN when busy,
   * ETIMEDOUT). `fail`: the request was allowed but opening or sending failed
   * (the kernel's error, or the client went away).
   */
  event: 'grant' | 'refuse' | 'fail'
  uid: number
  gid: number
  /** The client's pid when it connected: informative only (pids are reused). */
  pid: number
  /** The request's options as validated, or null when it never was one. */
  request: RemoteTapOptions | null
  /** The rule that granted or refused it, when one did. */
  rule: string | null
  /** The device for a grant, `CODE: message` otherwise. */
  result: string
}

/** Options of {@link createBroker}. */
export interface BrokerOptions {
  /** Where to listen. A stale socket there (nobody listening) is replaced; anything else is an error. */
  socketPath: string
  /** From {@link loadPolicy} or {@link parsePolicy}; replace it later with `broker.setPolicy()`. */
  policy: Policy
  /** The socket's mode. Default 0o666: the policy is the access control. */
  socketMode?: number
  /** Connections at once; more are refused with EAGAIN. Default 128. */
  maxConnections?: number
  /** Connections at once from one uid (a host starting many VMs as one user at once); more are refused with EAGAIN. Default 32. */
  maxConnectionsPerUid?: number
  /** A connection's deadline: request, open and send. Default 5000 ms. */
  requestTimeoutMs?: number
  /** Receives one entry per connection. Default: a JSON line on stdout. */
  log?: (entry: BrokerLogEntry) => void
}

const DEFAULTS = { socketMode: 0o666, maxConnections: 128, maxConnectionsPerUid: 32, requestTimeoutMs: 5000 }
/** The longest Unix socket path (sun_path less the NUL). */
const MAX_SOCKET_PATH = 107

interface Conn {
  sock: Socket
  who: PeerCredentials
  request: RemoteTapOptions | null
  decided: boolean
  timer?: NodeJS.Timeout
  deadline: number
}

/** A random host-side MAC with first octet fe (what libvirt and QEMU's bridge helper do). */
function randomHostMac(): string {
  const b = randomBytes(5)
  return ['fe', ...[...b].map((x) => x.toString(16).padStart(2, '0'))].join(':')
}

/** openTap's options for a granted request: always a new device, owned by the client unless the rule says none. */
export function openOptionsFor(rule: PolicyRule, uid: number, req: RemoteTapOptions): OpenTapOptions {
  const o: OpenTapOptions = {
    queues: req.queues ?? 1,
    vnetHdr: req.vnetHdr ?? 'auto',
    vhost: req.vhost ?? false,
    mac: req.mac ?? randomHostMac(),
    up: req.up ?? false,
  }
  if (req.name === undefined || req.name.includes('%d')) {
    o.name = req.name ?? `${rule.namePrefix ?? 'tap'}%d`
    o.uniqueName = true
  } else {
    o.name = req.name
    o.exclusive = true // never attach to a device that exists (someone else's)
  }
  if (req.vnetHdrSize !== undefined) o.vnetHdrSize = req.vnetHdrSize
  if (req.offloads !== undefined && offloadsToBits(req.offloads, 'offloads') !== 0) o.offloads = req.offloads
  if (req.mtu !== undefined) o.mtu = req.mtu
  if (req.bridge !== undefined) o.bridge = req.bridge
  if (req.persist) o.persist = true
  // The path the policy matched (a name is /run/netns/NAME).
  if (req.netns !== undefined) o.netns = netnsPath(req.netns, 'netns')
  if (rule.owner === 'client') o.owner = uid
  return o
}

/** Send `frame` with `fds`, SCM_MAX_FD at a time (the rest on one-byte messages). */
async function sendWithFds(sock: Socket, frame: Buffer, fds: readonly number[], timeoutMs: number): Promise<void> {
  const step = limits.scmMaxFd
  await sendFds(sock, frame, fds.slice(0, step), { timeoutMs })
  for (let i = step; i < fds.length; i += step) {
    await sendFds(sock, Buffer.from('+'), fds.slice(i, i + step), { timeoutMs })
  }
}

/** `err`'s code and fields, for an error response. */
function describe(err: unknown): { code: string; message: string; syscall?: string; ifname?: string } {
  const e = err as { code?: unknown; message?: unknown; syscall?: unknown; ifname?: unknown }
  const code = typeof e?.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) ? e.code : 'EINVAL'
  const out: { code: string; message: string; syscall?: string; ifname?: string } = {
    code,
    message: typeof e?.message === 'string' ? e.message : String(err),
  }
  if (typeof e?.syscall === 'string') out.syscall = e.syscall
  if (typeof e?.ifname === 'string') out.ifname = e.ifname
  return out
}

/** A running broker: see {@link createBroker}. */
export class Broker {
  readonly socketPath: string
  readonly #opts: Required<Omit<BrokerOptions, 'policy' | 'socketPath'>>
  #policy: Policy
  #server: Server | null = null
  #closing: Promise<void> | null = null
  readonly #conns = new Set<Conn>()
  readonly #perUid = new Map<number, number>()

  constructor(options: BrokerOptions) {
    if (options === null || typeof options !== 'object') throw invalidType('options', 'of type object', options)
    const path = options.socketPath
    if (typeof path !== 'string' || path === '' || path.includes('\0') || Buffer.byteLength(path) > MAX_SOCKET_PATH) {
      throw invalidValue('options.socketPath', `must be a path of 1-${MAX_SOCKET_PATH} bytes without NUL`, path)
    }
    if (options.policy === null || typeof options.policy !== 'object' || !Array.isArray(options.policy.rules)) {
      throw invalidType('options.policy', 'a policy from loadPolicy() or parsePolicy()', options.policy)
    }
    const int = (k: keyof typeof DEFAULTS, min: number, max: number) =>
      options[k] === undefined ? DEFAULTS[k] : validateInteger(options[k], `options.${k}`, min, max)
    if (options.log !== undefined && typeof options.log !== 'function') {
      throw invalidType('options.log', 'a function', options.log)
    }
    this.socketPath = path
    this.#policy = options.policy
    this.#opts = {
      socketMode: int('socketMode', 0, 0o777),
      maxConnections: int('maxConnections', 1, 65536),
      maxConnectionsPerUid: int('maxConnectionsPerUid', 1, 65536),
      requestTimeoutMs: int('requestTimeoutMs', 1, 2 ** 31 - 1),
      log: options.log ?? ((entry) => process.stdout.write(`${JSON.stringify(entry)}\n`)),
    }
  }

  /** The policy requests are decided with. */
  get policy(): Policy {
    return this.#policy
  }

  /** Decide every request from now on with `policy` (requests already decided are not affected). */
  setPolicy(policy: Policy): void {
    if (policy === null || typeof policy !== 'object' || !Array.isArray(policy.rules)) {
      throw invalidType('policy', 'a policy from loadPolicy() or parsePolicy()', policy)
    }
    this.#policy = policy
  }

  /** Connections open now. */
  get connections(): number {
    return this.#conns.size
  }

  /**
   * Listen on the socket (created with mode `socketMode`, replacing a stale
   * one). After close() it does nothing.
   */
  async listen(): Promise<void> {
    if (this.#server) throw new Error('the broker is already listening')
    await claimSocketPath(this.socketPath)
    if (this.#closing) return // close() came first: stay closed
    // allowHalfOpen: a client that shuts its side down after the request
    // (write + end) still gets the answer; the broker ends every connection itself.
    const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (sock) => this.#accept(sock))
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      // Created 0600, then opened up to socketMode: no moment where it is
      // wider than asked.
      const umask = process.umask(0o177)
      try {
        server.listen(this.socketPath, () => {
          server.off('error', reject)
          resolve()
        })
      } finally {
        process.umask(umask)
      }
    })
    server.on('error', () => {}) // accept errors (EMFILE...) are retried by libuv
    chmodSync(this.socketPath, this.#opts.socketMode)
  }

  /**
   * Stop: no new connections, connections without a complete request are
   * dropped, requests being served finish (within their deadline); the
   * socket file is removed.
   */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      const server = this.#server
      if (!server) return resolve()
      server.close(() => resolve())
      for (const c of this.#conns) if (c.request === null) c.sock.destroy()
    })
    return this.#closing
  }

  #log(c: Conn, event: BrokerLogEntry['event'], rule: string | null, result: string): void {
    try {
      this.#opts.log({
        time: new Date().toISOString(),
        event,
        uid: c.who.uid,
        gid: c.who.gid,
        pid: c.who.pid,
        request: c.request,
        rule,
        result,
      })
    } catch {
      // a failing logger must not take the broker down
    }
  }

  #accept(sock: Socket): void {
    sock.on('error', () => {}) // each outcome is logged where it is decided
    if (this.#closing) return void sock.destroy()
    let who: PeerCredentials
    try {
      who = peerCredentials(sock)
    } catch {
      return void sock.destroy()
    }
    const c: Conn = { sock, who, request: null, decided: false, deadline: Date.now() + this.#opts.requestTimeoutMs }
    this.#conns.add(c)
    const n = (this.#perUid.get(who.uid) ?? 0) + 1
    this.#perUid.set(who.uid, n)
    sock.once('close', () => {
      clearTimeout(c.timer)
      this.#conns.delete(c)
      const left = (this.#perUid.get(who.uid) ?? 1) - 1
      if (left === 0) this.#perUid.delete(who.uid)
      else this.#perUid.set(who.uid, left)
      // A complete request is logged by #serve, whatever happens to the connection.
      if (!c.decided && c.request === null) {
        c.decided = true
        this.#log(c, 'refuse', null, 'ECONNRESET: the client went away before its request was complete')
      }
    })
    if (this.#conns.size > this.#opts.maxConnections) {
      this.#refuse(c, { code: 'EAGAIN', message: `the broker is busy (${this.#opts.maxConnections} connections)` })
      return
    }
    if (n > this.#opts.maxConnectionsPerUid) {
      this.#refuse(c, {
        code: 'EAGAIN',
        message: `too many connections from uid ${who.uid} at once (maxConnectionsPerUid ${this.#opts.maxConnectionsPerUid})`,
      })
      return
    }
    c.timer = setTimeout(() => {
      if (c.decided) return
      this.#refuse(c, { code: 'ETIMEDOUT', message: `no complete request within ${this.#opts.requestTimeoutMs} ms` })
    }, this.#opts.requestTimeoutMs)
    const reader = new FrameReader()
    const onData = (chunk: Buffer) => {
      let payload: Buffer | null
      try {
        payload = reader.push(chunk)
      } catch (e) {
        sock.off('data', onData)
        sock.pause()
        return this.#refuse(c, describe(e))
      }
      if (payload === null) return
      sock.off('data', onData)
      sock.pause()
      this.#serve(c, payload).catch((e) => this.#fail(c, null, null, describe(e)))
    }
    sock.on('data', onData)
    sock.on('end', () => {
      if (c.request === null && !c.decided)
        this.#refuse(c, { code: 'EPROTO', message: 'end of stream before a complete request' })
    })
    sock.resume() // accepted paused (pauseOnConnect): read only once the peer is known and admitted
  }

  /** Send an error response (best effort) and log a refusal. */
  #refuse(c: Conn, err: Omit<ErrorResponse, 'v' | 'ok'>, rule: PolicyRule | null = null): void {
    if (c.decided) return
    c.decided = true
    clearTimeout(c.timer)
    this.#log(c, 'refuse', rule?.label ?? null, `${err.code}: ${err.message}`)
    this.#respondError(c, err, rule)
  }

  /** The request was allowed but could not be served. */
  #fail(c: Conn, rule: PolicyRule | null, ifname: string | null, err: Omit<ErrorResponse, 'v' | 'ok'>): void {
    if (c.decided) return
    c.decided = true
    clearTimeout(c.timer)
    this.#log(c, 'fail', rule?.label ?? null, `${err.code}: ${err.message}${ifname ? ` (${ifname})` : ''}`)
    this.#respondError(c, err, rule)
  }

  #respondError(c: Conn, err: Omit<ErrorResponse, 'v' | 'ok'>, rule: PolicyRule | null): void {
    if (c.sock.destroyed) return
    const body: ErrorResponse = { v: PROTOCOL_VERSION, ok: false, ...err }
    if (rule) body.rule = rule.label
    let frame: Buffer
    try {
      frame = encodeFrame(body)
    } catch {
      frame = encodeFrame({ v: PROTOCOL_VERSION, ok: false, code: err.code, message: err.message.slice(0, 1024) })
    }
    // Written, then closed: the answer waits in the client's receive queue, and
    // a client that never reads or closes holds no fd of the broker's.
    c.sock.end(frame)
    c.sock.destroySoon()
  }

  async #serve(c: Conn, payload: Buffer): Promise<void> {
    let options: RemoteTapOptions
    try {
      options = parseRequest(payload).options
    } catch (e) {
      if (e instanceof ProtocolError) return this.#refuse(c, { code: e.code, message: e.message })
      return this.#refuse(c, { code: 'EINVAL', message: (e as Error).message })
    }
    c.request = options
    const d = authorize(this.#policy, c.who, options)
    if (!d.granted) return this.#refuse(c, { code: 'EACCES', message: d.message }, d.rule)
    const open = openOptionsFor(d.rule, c.who.uid, d.options)
    let tap: TapDevice
    try {
      tap = await openTapAsync(open)
    } catch (e) {
      return this.#fail(c, d.rule, null, describe(e))
    }
    const drop = async (why: Omit<ErrorResponse, 'v' | 'ok'>) => {
      if (open.persist) {
        try {
          tap.setPersist(false) // a persistent device nobody got must not stay
        } catch {
          // closing below still releases our fds
        }
      }
      await tap.closeAsync().catch(() => undefined)
      this.#fail(c, d.rule, tap.ifname, why)
    }
    if (c.decided || c.sock.destroyed) {
      // timed out or gone while the device was opened
      return drop({ code: 'ECONNRESET', message: 'the client went away while its device was opened' })
    }
    const grant: GrantResponse = {
      v: PROTOCOL_VERSION,
      ok: true,
      ifname: tap.ifname,
      tapFds: tap.tapFds.length,
      vhostFds: tap.vhostFds.length,
      rule: d.rule.label,
    }
    // From here on only sendFds writes to the socket (its own timeout bounds it).
    clearTimeout(c.timer)
    try {
      const left = Math.max(1, c.deadline - Date.now())
      await sendWithFds(c.sock, encodeFrame(grant), [...tap.tapFds, ...tap.vhostFds], left)
    } catch (e) {
      return drop(describe(e))
    }
    // The client holds its own copies now (received, or in flight until it
    // reads or disconnects): ours go.
    c.decided = true
    clearTimeout(c.timer)
    await tap.closeAsync().catch(() => undefined)
    this.#log(c, 'grant', d.rule.label, tap.ifname)
    c.sock.destroySoon() // the fds wait in the client's receive queue; see #respondError
  }
}

/**
 * Make room for the socket: nothing there, or a stale socket (connecting is
 * refused) which is removed. Another listener, or a file that is not a
 * socket, is an error (EADDRINUSE, EEXIST).
 */
async function claimSocketPath(path: string): Promise<void> {
  let isSocket: boolean
  try {
    isSocket = lstatSync(path).isSocket()
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return
    throw e
  }
  if (!isSocket) {
    throw Object.assign(new Error(`${path} exists and is not a socket; vmtap will not replace it`), { code: 'EEXIST' })
  }
  const listening = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path)
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code !== 'ECONNREFUSED'))
  })
  if (listening) {
    throw Object.assign(new Error(`another process is listening on ${path}`), { code: 'EADDRINUSE' })
  }
  unlinkSync(path)
}

/**
 * A broker for unprivileged VMMs (see README.md, "The broker"): `listen()`,
 * then it serves until `close()`. Run it with CAP_NET_ADMIN.
 */
export function createBroker(options: BrokerOptions): Broker {
  return new Broker(options)
}
