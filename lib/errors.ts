// vmtap's errors, from one table of codes: TapError for what the kernel
// refuses, Node-style TypeError/RangeError for bad arguments, and vmtap's own
// codes. The native addon builds every error it throws with makeError().

import type { TapHolder } from './inventory'

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
  /** EBUSY on a device another fd holds: the processes holding it, when they could be found. */
  holders?: readonly TapHolder[]
}

/** A kernel failure. `message` says what happened and what to do. */
export class TapError extends Error implements TapErrorFields {
  readonly code: string
  readonly errno: number
  readonly syscall: string
  declare readonly path?: string
  declare readonly ifname?: string
  declare readonly holders?: readonly TapHolder[]

  constructor(message: string, fields: TapErrorFields) {
    super(message)
    this.code = fields.code
    this.errno = fields.errno
    this.syscall = fields.syscall
    if (fields.path !== undefined) (this as { path?: string }).path = fields.path
    if (fields.ifname !== undefined) (this as { ifname?: string }).ifname = fields.ifname
    if (fields.holders !== undefined) (this as { holders?: readonly TapHolder[] }).holders = fields.holders
  }
}
Object.defineProperty(TapError.prototype, 'name', { value: 'TapError', configurable: true, writable: true })

type CodedError = Error & { code: string }

/** What describes an error of vmtap's own: its class and how its message reads. */
interface CodeEntry {
  Base: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor
  message: (detail: ErrorDetail) => string
  /** An own `name`, as Node gives its AbortError. */
  name?: string
}

/** What an error is made from (the native addon's ctx, or a TypeScript caller's). */
export interface ErrorDetail {
  code: string
  message?: string
  errno?: number
  syscall?: string
  path?: string
  ifname?: string
  holders?: TapHolder[]
}

const given = (d: ErrorDetail) => d.message ?? d.code

/** vmtap's error codes, in one place. Kernel errors (errno names) are TapErrors. */
const CODES: Readonly<Record<string, CodeEntry>> = {
  ERR_INVALID_ARG_TYPE: { Base: TypeError, message: given },
  ERR_INVALID_ARG_VALUE: { Base: TypeError, message: given },
  ERR_OUT_OF_RANGE: { Base: RangeError, message: given },
  ERR_VMTAP_CLOSED: {
    Base: Error,
    message: (d) =>
      `The TAP device ${d.ifname ?? ''}${d.ifname ? ' ' : ''}is closed; its fd numbers may belong to something else now`,
  },
  ERR_VMTAP_PANIC: { Base: Error, message: (d) => `internal error in vmtap: ${d.message ?? 'a panic'}` },
  ERR_VMTAP_NAPI: { Base: Error, message: (d) => `internal error: ${d.message ?? 'a Node-API call failed'}` },
  ERR_VMTAP_CANCELLED: { Base: Error, message: (d) => d.message ?? 'the operation was cancelled' },
  ERR_VMTAP_NO_BINARY: { Base: Error, message: given },
  // Node's AbortError: an AbortSignal ended the call.
  ABORT_ERR: { Base: Error, message: (d) => d.message ?? 'The operation was aborted', name: 'AbortError' },
  // Node's code: a buffer sized by an argument could not be allocated.
  ERR_MEMORY_ALLOCATION_FAILED: { Base: Error, message: given },
}

/**
 * Build the error for `detail`, from the one table: a TapError for a kernel
 * error (its code an errno name and `errno` set), else the class and message
 * of its vmtap code. The native addon calls this for every error it raises.
 */
export function makeError(detail: ErrorDetail): Error {
  const entry = CODES[detail.code]
  if (entry === undefined && typeof detail.errno === 'number') {
    return new TapError(detail.message ?? detail.code, {
      code: detail.code,
      errno: detail.errno,
      syscall: detail.syscall ?? '',
      path: detail.path,
      ifname: detail.ifname,
      holders: detail.holders,
    })
  }
  const e = new (entry?.Base ?? Error)(entry ? entry.message(detail) : given(detail)) as CodedError
  e.code = detail.code
  if (entry?.name !== undefined) e.name = entry.name
  if (detail.ifname !== undefined && detail.code === 'ERR_VMTAP_CLOSED')
    (e as { ifname?: string }).ifname = detail.ifname
  return e
}

/** Node's AbortError (`name` 'AbortError', `code` 'ABORT_ERR'), with the signal's reason as `cause`. */
export function abortError(reason: unknown): Error {
  const e = makeError({ code: 'ABORT_ERR' })
  Object.defineProperty(e, 'cause', { value: reason, configurable: true, writable: true })
  return e
}

/** ERR_VMTAP_CLOSED for the device `ifname`. */
export function closedError(ifname: string): CodedError {
  return makeError({ code: 'ERR_VMTAP_CLOSED', ifname }) as CodedError
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
    shown =
      typeof value === 'string' ? JSON.stringify(value.length > 28 ? `${value.slice(0, 25)}...` : value) : String(value)
  } catch {
    shown = '?'
  }
  if (typeof value === 'number' && Object.is(value, -0)) shown = '-0'
  return `type ${typeof value} (${shown})`
}

/** ERR_INVALID_ARG_TYPE, as Node words it. */
export function invalidType(name: string, expected: string, value: unknown): TypeError {
  return makeError({
    code: 'ERR_INVALID_ARG_TYPE',
    message: `The "${name}" argument must be ${expected}. Received ${describe(value)}`,
  }) as TypeError
}

/** ERR_INVALID_ARG_VALUE, as Node words it. */
export function invalidValue(name: string, reason: string, value: unknown): TypeError {
  return makeError({
    code: 'ERR_INVALID_ARG_VALUE',
    message: `The argument '${name}' ${reason}. Received ${describe(value)}`,
  }) as TypeError
}

/** ERR_OUT_OF_RANGE, as Node words it. */
export function outOfRange(name: string, range: string, value: unknown): RangeError {
  let shown: string
  try {
    shown = Object.is(value, -0) ? '-0' : String(value)
  } catch {
    shown = '?'
  }
  return makeError({
    code: 'ERR_OUT_OF_RANGE',
    message: `The value of "${name}" is out of range. It must be ${range}. Received ${shown}`,
  }) as RangeError
}
