// The broker's wire protocol, shared by the server (./server) and the client
// (./client). One request and one response per connection, each one frame:
// a 4-byte big-endian length, then that many bytes of UTF-8 JSON (at most
// MAX_MESSAGE_BYTES). The response's fds ride on its first byte
// (SCM_RIGHTS); more than SCM_MAX_FD of them continue on one-byte messages
// after the frame. README.md, "The broker's protocol", is the reference.

import { invalidType, invalidValue } from '../errors'
import { limits } from '../limits'
import { bitsToOffloads, checkVnetHdrFor, type Offloads, offloadsToBits } from '../options'
import {
  snapshotOptions,
  type Tristate,
  validateBoolean,
  validateIfName,
  validateInteger,
  validateMac,
  validateMtu,
  validateName,
  validateTristate,
  validateVnetHdrSize,
} from '../validate'

/** The protocol version this vmtap speaks (`v` of every message). */
export const PROTOCOL_VERSION = 1
/** The largest JSON payload of one frame, in bytes. */
export const MAX_MESSAGE_BYTES = 4096
/** The length prefix. */
const HEADER_BYTES = 4

/** A malformed frame or message: `code` is the errno name the other side gets (EPROTO, EMSGSIZE, EPROTONOSUPPORT). */
export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly code: 'EPROTO' | 'EMSGSIZE' | 'EPROTONOSUPPORT' = 'EPROTO',
  ) {
    super(message)
  }
}

/**
 * What a client may ask the broker for: openTap's options that make sense
 * for a device someone else opens. Not `tunPath`/`vhostPath` (the broker's
 * own), not `owner`/`group` (the broker decides), not `exclusive`/`uniqueName`
 * (the broker always creates a new device, never attaches to one).
 */
export interface RemoteTapOptions {
  /** An exact name or a template with `%d`; the policy's `namePrefix` must start it. Default: the broker picks. */
  name?: string
  /** 1-256 (the rule's `maxQueues` caps it). Default 1. */
  queues?: number
  /** Default `'auto'`. */
  vnetHdr?: Tristate
  /** `true` needs a rule with `vhost: true`; `'auto'` gets none under a rule without. Default false. */
  vhost?: Tristate
  /** TUNSETVNETHDRSZ: 10, 12 or 20. */
  vnetHdrSize?: 10 | 12 | 20
  /** TUNSETOFFLOAD. */
  offloads?: Offloads
  /** Needs a rule with `persist: true`. */
  persist?: boolean
  /** Within the rule's `mtu` range (a rule without one allows no MTU). */
  mtu?: number
  /** The host-side MAC: first octet `fe` or `fa` (so a bridge never takes it as its own address). Default: random `fe:...`. */
  mac?: string
  /** One of the rule's `bridges`. */
  bridge?: string
  /** Bring the link up. */
  up?: boolean
  /** A network namespace: a name (`/run/netns/NAME`) or an absolute path, listed in the rule's `netns`. */
  netns?: string
}

const REMOTE_KEYS = [
  'name',
  'queues',
  'vnetHdr',
  'vhost',
  'vnetHdrSize',
  'offloads',
  'persist',
  'mtu',
  'mac',
  'bridge',
  'up',
  'netns',
] as const

/** The longest netns path accepted (PATH_MAX). */
const MAX_PATH = 4096
const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/

/**
 * A namespace as a path: a bare name is `/run/netns/NAME` (what `ip netns`
 * makes), an absolute path is itself. An fd cannot cross the socket as a
 * number, so only these two forms exist in the protocol.
 */
export function netnsPath(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidType(name, 'a namespace name or an absolute path', value)
  if (value.startsWith('/')) {
    if (value.length > MAX_PATH || value.includes('\0') || value.split('/').includes('..')) {
      throw invalidValue(name, "must be an absolute path without NUL bytes or '..'", value)
    }
    return value
  }
  if (!NETNS_NAME.test(value)) {
    throw invalidValue(name, 'must be a namespace name (letters, digits, _ . -) or an absolute path', value)
  }
  return `/run/netns/${value}`
}

/**
 * Validate a client's options (TypeError/RangeError naming `argName.key`):
 * the same checks on both sides, so a vmtap client fails before it connects
 * and the broker refuses what another client sends. Returns a plain object
 * with the given keys only, offloads as names.
 */
export function normalizeRemoteOptions(options: unknown, argName = 'options'): RemoteTapOptions {
  const o = snapshotOptions(options, argName, REMOTE_KEYS)
  const out: RemoteTapOptions = {}
  const at = (k: string) => `${argName}.${k}`
  if (o.name !== undefined) {
    const n = validateName(o.name, at('name'))
    if (n !== '') out.name = n
  }
  if (o.queues !== undefined) out.queues = validateInteger(o.queues, at('queues'), 1, limits.maxQueues)
  if (o.vnetHdr !== undefined) out.vnetHdr = validateTristate(o.vnetHdr, at('vnetHdr'), 'auto')
  if (o.vhost !== undefined) out.vhost = validateTristate(o.vhost, at('vhost'), false)
  if (o.vnetHdrSize !== undefined)
    out.vnetHdrSize = validateVnetHdrSize(o.vnetHdrSize, at('vnetHdrSize')) as RemoteTapOptions['vnetHdrSize']
  let offloadBits = 0
  if (o.offloads !== undefined) {
    offloadBits = offloadsToBits(o.offloads, at('offloads'))
    out.offloads = bitsToOffloads(offloadBits)
  }
  if (o.persist !== undefined) out.persist = validateBoolean(o.persist, at('persist'))
  if (o.mtu !== undefined) out.mtu = validateMtu(o.mtu, at('mtu'))
  if (o.mac !== undefined) {
    const mac = validateMac(o.mac, at('mac'))
    if (!mac.startsWith('fe:') && !mac.startsWith('fa:')) {
      throw invalidValue(
        at('mac'),
        'must start with fe: or fa: (a Linux bridge takes the lowest MAC of its ports as its own; see hostMacFor)',
        o.mac,
      )
    }
    out.mac = mac
  }
  if (o.bridge !== undefined) out.bridge = validateIfName(o.bridge, at('bridge'))
  if (o.up !== undefined) out.up = validateBoolean(o.up, at('up'))
  if (o.netns !== undefined) {
    netnsPath(o.netns, at('netns'))
    out.netns = o.netns as string
  }
  checkVnetHdrFor(out.vnetHdr, offloadBits, out.vnetHdrSize !== undefined, at('vnetHdr'), o.vnetHdr)
  return out
}

/** A request: open a device. */
interface OpenRequest {
  v: typeof PROTOCOL_VERSION
  op: 'open'
  options: RemoteTapOptions
}

/** A granted request: the fds follow (tapFds, then vhostFds). */
export interface GrantResponse {
  v: typeof PROTOCOL_VERSION
  ok: true
  ifname: string
  /** How many tap fds come with the response (one per queue). */
  tapFds: number
  /** How many vhost-net fds come after them (0 or tapFds). */
  vhostFds: number
  /** The policy rule that granted it. */
  rule: string
}

/** A refused or failed request. */
export interface ErrorResponse {
  v: typeof PROTOCOL_VERSION
  ok: false
  /** An errno name: EACCES (the policy refused), EINVAL (a bad option), EPROTO, EMSGSIZE, EPROTONOSUPPORT, EAGAIN (busy), ETIMEDOUT, or the kernel's error when opening failed. */
  code: string
  message: string
  /** The call that failed in the broker, when the kernel refused (`ioctl(SIOCBRADDIF)`...). */
  syscall?: string
  ifname?: string
  /** The rule that refused it, when one matched. */
  rule?: string
}

type Response = GrantResponse | ErrorResponse

/** One frame: the 4-byte big-endian length, then the JSON. */
export function encodeFrame(message: object): Buffer {
  const json = Buffer.from(JSON.stringify(message), 'utf8')
  if (json.length > MAX_MESSAGE_BYTES) {
    throw new ProtocolError(`message of ${json.length} bytes exceeds ${MAX_MESSAGE_BYTES}`, 'EMSGSIZE')
  }
  const head = Buffer.alloc(HEADER_BYTES)
  head.writeUInt32BE(json.length)
  return Buffer.concat([head, json])
}

/**
 * Collects one frame from a stream, refusing a length above `maxBytes` as
 * soon as the header is in (before buffering any of it).
 */
export class FrameReader {
  readonly #max: number
  #chunks: Buffer[] = []
  #have = 0
  #need: number | null = null

  constructor(maxBytes = MAX_MESSAGE_BYTES) {
    this.#max = maxBytes
  }

  /** Bytes still missing: of the header, then of the payload. */
  get missing(): number {
    return this.#need === null ? HEADER_BYTES - this.#have : HEADER_BYTES + this.#need - this.#have
  }

  /**
   * Add bytes; returns the payload once the frame is complete, else null.
   * Bytes beyond the frame are a ProtocolError (one message per connection).
   */
  push(chunk: Buffer): Buffer | null {
    this.#chunks.push(chunk)
    this.#have += chunk.length
    if (this.#need === null && this.#have >= HEADER_BYTES) {
      const all = Buffer.concat(this.#chunks)
      this.#chunks = [all]
      const len = all.readUInt32BE(0)
      if (len === 0) throw new ProtocolError('empty message', 'EPROTO')
      if (len > this.#max) throw new ProtocolError(`message of ${len} bytes exceeds ${this.#max}`, 'EMSGSIZE')
      this.#need = len
    }
    if (this.#need === null || this.#have < HEADER_BYTES + this.#need) return null
    if (this.#have > HEADER_BYTES + this.#need) {
      throw new ProtocolError('bytes after the message (one request per connection)', 'EPROTO')
    }
    return Buffer.concat(this.#chunks).subarray(HEADER_BYTES)
  }
}

function parseJson(payload: Buffer): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload))
  } catch (e) {
    throw new ProtocolError(`not UTF-8 JSON: ${(e as Error).message}`, 'EPROTO')
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProtocolError('the message is not a JSON object', 'EPROTO')
  }
  const v = (value as { v?: unknown }).v
  if (v !== PROTOCOL_VERSION) {
    throw new ProtocolError(
      `protocol version ${JSON.stringify(v)} is not spoken here (this side speaks ${PROTOCOL_VERSION})`,
      'EPROTONOSUPPORT',
    )
  }
  return value as Record<string, unknown>
}

/**
 * A request from its payload: a ProtocolError for the envelope (JSON,
 * version, op, unknown keys), the TypeError/RangeError of
 * normalizeRemoteOptions for the options.
 */
export function parseRequest(payload: Buffer): OpenRequest {
  const m = parseJson(payload)
  for (const k of Object.keys(m)) {
    if (k !== 'v' && k !== 'op' && k !== 'options')
      throw new ProtocolError(`unknown request field ${JSON.stringify(k)}`)
  }
  if (m.op !== 'open') throw new ProtocolError(`unknown op ${JSON.stringify(m.op)} (known: open)`)
  return { v: PROTOCOL_VERSION, op: 'open', options: normalizeRemoteOptions(m.options ?? {}, 'options') }
}

const isCount = (n: unknown, max: number) => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= max
const ERRNO_NAME = /^E[A-Z0-9]{1,31}$/

/** A response from its payload (a ProtocolError when it is not one). */
export function parseResponse(payload: Buffer): Response {
  const m = parseJson(payload)
  const str = (k: string, max = MAX_MESSAGE_BYTES) => typeof m[k] === 'string' && (m[k] as string).length <= max
  if (m.ok === true) {
    if (
      !str('ifname', limits.maxNameBytes) ||
      !str('rule') ||
      !isCount(m.tapFds, limits.maxQueues) ||
      (m.tapFds as number) < 1 ||
      !isCount(m.vhostFds, limits.maxQueues) ||
      (m.vhostFds !== 0 && m.vhostFds !== m.tapFds)
    ) {
      throw new ProtocolError('malformed grant')
    }
    return m as unknown as GrantResponse
  }
  if (m.ok === false && typeof m.code === 'string' && ERRNO_NAME.test(m.code) && str('message')) {
    for (const k of ['syscall', 'ifname', 'rule']) {
      if (m[k] !== undefined && !str(k)) throw new ProtocolError(`malformed error response (${k})`)
    }
    return m as unknown as ErrorResponse
  }
  throw new ProtocolError('malformed response')
}
