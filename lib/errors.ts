// Error types and Node-style argument errors (no native code here).


/** Fields of a kernel failure, like Node's fs errors. */
export interface TapErrorFields {
  /** The errno name: `EPERM`, `EBUSY`, `EINVAL`, `ENOENT`, `E2BIG`, ... */
  code: string
  /** The negative errno, as in Node's fs errors (`-1` for EPERM). */
  errno: number
  /** The failed call: `open`, `ioctl(TUNSETIFF)`, ... */
  syscall: string
  /** The file involved, e.g. `/dev/vhost-net`. */
  path?: string
  /** The interface involved. */
  ifname?: string
}

/** A kernel failure. `message` says what happened and what to do. */
export class TapError extends Error implements TapErrorFields {
  readonly code: string
  readonly errno: number
  readonly syscall: string
  declare readonly path?: string
  declare readonly ifname?: string

  constructor(message: string, fields: TapErrorFields) {
    super(message)
    this.code = fields.code
    this.errno = fields.errno
    this.syscall = fields.syscall
    if (fields.path !== undefined) (this as { path?: string }).path = fields.path
    if (fields.ifname !== undefined) (this as { ifname?: string }).ifname = fields.ifname
  }
}
Object.defineProperty(TapError.prototype, 'name', { value: 'TapError', configurable: true, writable: true })

type CodedError = Error & { code: string }

function codedError<E extends Error>(Ctor: new (m: string) => E, code: string, message: string): E & CodedError {
  const e = new Ctor(message) as E & CodedError
  e.code = code
  return e
}

/** Describe a received value for a message; never throws (a Proxy's traps or a getter may). */
function describe(value: unknown): string {
  try {
    return describeValue(value)
  } catch {
    return typeof value === 'function' ? 'function' : typeof value === 'object' ? '[object]' : `type ${typeof value}`
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'function') return `function ${(value as { name?: string }).name || '(anonymous)'}`
  if (typeof value === 'object') {
    if (Array.isArray(value)) return 'an instance of Array'
    const ctor = (value as { constructor?: { name?: string } }).constructor?.name
    return ctor ? `an instance of ${ctor}` : '[object]'
  }
  let shown: string
  try {
    shown = typeof value === 'string' ? JSON.stringify(value.length > 28 ? `${value.slice(0, 25)}...` : value) : String(value)
  } catch {
    shown = '?'
  }
  if (typeof value === 'number' && Object.is(value, -0)) shown = '-0'
  return `type ${typeof value} (${shown})`
}

/** @internal */
export function invalidType(name: string, expected: string, value: unknown): TypeError {
  return codedError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. Received ${describe(value)}`)
}

/** @internal */
export function invalidValue(name: string, reason: string, value: unknown): TypeError {
  return codedError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument '${name}' ${reason}. Received ${describe(value)}`)
}

/** @internal */
export function outOfRange(name: string, range: string, value: unknown): RangeError {
  let shown: string
  try {
    shown = Object.is(value, -0) ? '-0' : String(value)
  } catch {
    shown = '?'
  }
  return codedError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${shown}`)
}
