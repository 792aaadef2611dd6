// The addon's own boundary (properties.spec.ts): random arguments straight
// to every function of native(), bypassing index.ts' validation. Runs as
// root inside a network namespace the test created, so whatever a call
// manages to create stays there. The addon re-checks every type and range:
// each call must return, or throw / reject with a documented error —
// TypeError/RangeError with an ERR_* code, ERR_VMTAP_CLOSED, or a kernel
// TapError (code = errno name, errno < 0, syscall; never the addon's internal
// ERR_VMTAP_NAPI) — or with the exception JavaScript itself raised while the
// addon read an argument (V8's TypeError, a throwing trap), and the process
// must survive (a crash makes runIn report "exited without a result").
import fc from 'fast-check'

import { TapError } from '../../index'
import { native, type NativeHandle } from '../../lib/native'
import { NO_CONFIG } from '../staging'

type Fn = (...a: unknown[]) => unknown

const CODES = new Set(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE', 'ERR_VMTAP_CLOSED'])

/** The error must be documented; returns its code. */
function judge(fn: string, e: unknown): string {
  if (!(e instanceof Error)) throw new Error(`${fn} threw a non-Error: ${String(e)}`)
  const x = e as Error & { code?: unknown; errno?: unknown; syscall?: unknown }
  if (typeof x.code !== 'string') {
    // N-API passes JavaScript's own exceptions through: V8's TypeError for a
    // non-object where an object is read, or what one of our generated traps threw.
    if (e.message === 'a generated trap threw') return 'trap'
    if (x.constructor === TypeError) return 'TypeError (from V8)'
    throw new Error(`${fn} threw an Error without a code: ${e.stack}`)
  }
  if (CODES.has(x.code)) {
    const Ctor = x.code === 'ERR_OUT_OF_RANGE' ? RangeError : x.code === 'ERR_VMTAP_CLOSED' ? Error : TypeError
    if (x.constructor !== Ctor)
      throw new Error(`${fn}: ${x.code} from a ${x.constructor.name}, expected ${Ctor.name}: ${e.message}`)
    return x.code
  }
  // A kernel error: a TapError built by the one error path.
  if (
    !(e instanceof TapError) ||
    !/^E[A-Z0-9]+$/.test(x.code) ||
    typeof x.errno !== 'number' ||
    x.errno >= 0 ||
    typeof x.syscall !== 'string'
  ) {
    throw new Error(
      `${fn} threw an undocumented error: ${JSON.stringify({ code: x.code, errno: x.errno, syscall: x.syscall, tapError: e instanceof TapError })} ${e.message}`,
    )
  }
  if (!e.message.startsWith(`${x.code}: `))
    throw new Error(`${fn}: the message does not start with the code: ${e.message}`)
  return x.code
}

/** A promise from the addon must settle; a hung one fails the run instead of hanging it. */
function settleWithin<T>(fn: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${fn}: the promise did not settle within ${ms} ms`)), ms)
  })
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer))
}

export async function nativeFuzz(runs: number, seed: number | null) {
  const n = native() as unknown as Record<string, unknown>
  // init (which the loader calls once with the error factory) is set-up, not
  // an operation: fuzzing it would replace the factory every error is built by.
  const fns = Object.keys(n).filter((k) => typeof n[k] === 'function' && k !== 'init')
  const call = (k: string, ...a: unknown[]) => (n[k] as Fn)(...a)
  // open(name, queues, vnetHdr, vhost, tunPath | null, vhostPath | null, config | null) → [handle, ...]
  // (an older addon took one options object and returned { handle, ... }: both are handled).
  const goodConfig = NO_CONFIG
  const goodOptions = {
    name: 'fz%d',
    queues: 2,
    vnetHdr: 1,
    vhost: 0,
    tunPath: '/dev/net/tun',
    vhostPath: '/dev/vhost-net',
    ...goodConfig,
  }
  const handleOf = (r: unknown): NativeHandle | undefined =>
    Array.isArray(r) ? r[0] : (r as { handle?: NativeHandle } | undefined)?.handle
  const opened: NativeHandle[] = []
  const open = () => {
    let r: unknown
    try {
      r = call('open', 'fz%d', 2, 'auto', false, null, null, null)
    } catch {
      r = call('open', goodOptions)
    }
    const h = handleOf(r)!
    opened.push(h)
    return h
  }
  let live = open()
  const dead = open()
  call('close', dead)

  const numbers = fc.constantFrom(
    0,
    1,
    2,
    3,
    10,
    12,
    20,
    68,
    255,
    256,
    257,
    1500,
    65535,
    65536,
    -1,
    -0,
    0.5,
    NaN,
    Infinity,
    -Infinity,
    2 ** 31,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 53,
    Number.MAX_VALUE,
  )
  const strings = fc.oneof(
    fc.constantFrom(
      '',
      'fz%d',
      'fzx',
      'tap%d',
      '%d%d',
      'a/b',
      'a\0b',
      'é',
      'x'.repeat(16),
      '/dev/net/tun',
      '/dev/null',
      '/nonexistent/x',
      'lo',
      'fe:54:00:12:34:56',
      '01:00:5e:00:00:01',
      'zz',
    ),
    fc.string({ maxLength: 20 }).map((s) => `/nonexistent/${s}`),
    fc.string({ unit: 'binary', maxLength: 17 }),
  )
  const scalar = fc.oneof(
    numbers,
    fc.integer(),
    strings,
    fc.boolean(),
    fc.constantFrom(null, undefined, 0n, 2n ** 64n, Symbol('s')),
  )
  const handle = fc.constantFrom('live', 'dead', 'object', 'array')
  const optionObject = fc.record(
    Object.fromEntries(
      Object.entries(goodOptions).map(([k, v]) => [
        k,
        fc.oneof(
          { weight: 6, arbitrary: fc.constant(v as unknown) },
          { weight: 2, arbitrary: scalar },
          { weight: 1, arbitrary: fc.constant({}) },
        ),
      ]),
    ),
    { requiredKeys: [] },
  )
  const configObject = fc.record(
    Object.fromEntries(
      Object.entries(goodConfig).map(([k, v]) => [
        k,
        fc.oneof(
          { weight: 6, arbitrary: fc.constant(v as unknown) },
          { weight: 2, arbitrary: scalar },
          { weight: 1, arbitrary: fc.constant({}) },
        ),
      ]),
    ),
    { requiredKeys: [] },
  )
  const arg = fc.oneof(
    { weight: 6, arbitrary: scalar },
    { weight: 3, arbitrary: handle.map((h) => ({ handle: h })) },
    { weight: 1, arbitrary: optionObject.map((o) => ({ options: o })) },
    { weight: 1, arbitrary: configObject.map((o) => ({ options: o })) },
    { weight: 1, arbitrary: fc.array(handle, { maxLength: 4 }).map((hs) => ({ handles: hs })) },
    { weight: 1, arbitrary: fc.constantFrom({ fn: true }, { buffer: true }, { proxy: true }) },
  )
  const resolve = (a: unknown): unknown => {
    if (a === null || typeof a !== 'object') return a
    const o = a as Record<string, unknown>
    if ('handle' in o)
      return o.handle === 'live' ? live : o.handle === 'dead' ? dead : o.handle === 'array' ? [live] : { fake: 1 }
    if ('handles' in o) return (o.handles as unknown[]).map((h) => resolve({ handle: h }))
    if ('options' in o) return o.options
    if ('fn' in o) return () => 1
    if ('buffer' in o) return Buffer.alloc(8)
    const trap = () => {
      throw new Error('a generated trap threw')
    }
    return new Proxy({}, { get: trap, ownKeys: trap, getOwnPropertyDescriptor: trap, has: trap })
  }
  const callCounts: Record<string, number> = {}
  const codes: Record<string, number> = {}
  let done = 0
  // First a deterministic sweep: every function, each edge value alone and after a live handle.
  const edges: unknown[] = [
    undefined,
    null,
    true,
    0,
    -1,
    -0,
    0.5,
    NaN,
    Infinity,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    0n,
    Symbol('s'),
    {},
    [],
    () => 1,
    '',
    'a\0b',
    'x'.repeat(15),
    'x'.repeat(16),
    'x'.repeat(4096),
    '\u{10000}'.repeat(4),
    'é'.repeat(8),
    '%d%d',
    'a/b',
    '/nonexistent/x',
  ]
  for (const fn of fns) {
    for (const v of edges) {
      for (const args of [[v], [live, v], [live, 1, v]]) {
        if (fn === 'getTunFeatures' || fn === 'sendFds' || fn === 'recvFds') {
          if (
            typeof args[0] === 'number' &&
            Number.isInteger(args[0]) &&
            (args[0] as number) > 2 &&
            (args[0] as number) < 2 ** 31
          )
            args[0] = 1
        }
        let outcome = 'ok'
        try {
          const r = call(fn, ...args)
          if (r instanceof Promise)
            collect(fn, await settleWithin(fn, r, 10_000).catch((e) => void (outcome = judge(fn, e))))
          else collect(fn, r)
        } catch (e) {
          outcome = judge(
            `${fn}(${args.map((a) => (typeof a === 'string' ? JSON.stringify(a.slice(0, 20)) : typeof a)).join(', ')})`,
            e,
          )
        }
        codes[outcome] = (codes[outcome] ?? 0) + 1
        callCounts[fn] = (callCounts[fn] ?? 0) + 1
        try {
          call('getLinkInfo', live)
        } catch {
          live = open()
        }
      }
    }
  }
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...fns),
      fc.array(arg, { maxLength: 4 }),
      fc.boolean(),
      async (fn, rawArgs, handleFirst) => {
        // Device functions take the handle first: give them a real one half the time.
        const args = rawArgs.map(resolve)
        // open/openAsync: half the time a well-formed positional call with one argument changed.
        if ((fn === 'open' || fn === 'openAsync') && handleFirst) {
          const base: unknown[] = ['fz%d', 2, 'auto', false, null, null, null]
          base[rawArgs.length % base.length] = args[0]
          args.splice(0, args.length, ...base)
        }
        if (
          handleFirst &&
          !['open', 'openAsync', 'probeFeatures', 'getTunFeatures', 'probeOffloads', 'deleteTap', 'closeAll'].includes(
            fn,
          )
        )
          args.unshift(live)
        // A valid fd number first (getTunFeatures, sendFds, recvFds...) becomes stdout, a pipe:
        // never one of the runtime's own fds, never a socket a receive could wait on.
        if (typeof args[0] === 'number' && Number.isInteger(args[0]) && args[0] > 2 && args[0] < 2 ** 31) args[0] = 1
        callCounts[fn] = (callCounts[fn] ?? 0) + 1
        let outcome = 'ok'
        try {
          const r = call(fn, ...args)
          if (r instanceof Promise) {
            const v = await settleWithin(fn, r, 10_000).then(
              (x) => x,
              (e) => {
                outcome = judge(fn, e)
                return undefined
              },
            )
            collect(fn, v)
          } else collect(fn, r)
        } catch (e) {
          outcome = judge(fn, e)
        }
        codes[outcome] = (codes[outcome] ?? 0) + 1
        done++
        // Keep one open device around for the device functions.
        try {
          call('getLinkInfo', live)
        } catch {
          live = open()
        }
      },
    ),
    { numRuns: runs, includeErrorInReport: true, ...(seed === null ? {} : { seed }) },
  )
  for (const h of opened) call('close', h)

  /** Close whatever a call opened (a device from open/openAsync). */
  function collect(fn: string, v: unknown) {
    if (fn !== 'open' && fn !== 'openAsync') return
    const h = handleOf(v)
    if (h && typeof h === 'object') {
      opened.push(h)
      call('close', h)
    }
  }
  return { runs: done, calls: callCounts, codes }
}
