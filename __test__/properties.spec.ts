// Property-based tests of the TypeScript boundary: random
// arguments — wrong types, NaN, Infinity, -0, huge integers, strings with
// NUL, non-ASCII and `%` patterns, prototype-polluted objects, getters that
// throw, Proxies whose traps throw — given to every entry point.
//
// Every argument is generated as a *description* (`Val`) and only then
// materialized, so the oracle below never touches the objects it judges. The
// oracle is an independent model of the documented rules (README, "Errors"):
// for a refused input it gives the set of errors that may come out (the
// checks of one stage may run in any order; stages run in order) and the
// input must be refused with one of them, with no call into the addon; for an
// accepted input it gives the exact addon calls (normalized arguments) and
// the result. The addon is replaced by a recording fake for these properties,
// so no device is created; two root tests at the end run the real addon in a
// network namespace of their own (random calls into the binding itself, and
// valid options on real devices).
import test from 'ava'
import fc from 'fast-check'
import { strict as assert } from 'node:assert'

import {
  cloudHypervisorArgs,
  cloudHypervisorNet,
  closeAll,
  constants,
  deleteTap,
  getTunFeatures,
  handOff,
  hostMacFor,
  openTap,
  openTapAsync,
  qemuArgs,
  qemuDevice,
  qemuNetdev,
  probeFeatures,
  checkOpenTapOptions,
  TapDevice,
  TapError,
} from '../index'
import { type NativeOpenConfig, native } from '../lib/native'
import { rootTest } from './helpers'
import { runIn, withNetns } from './netns'
import { NO_CONFIG } from './staging'

const RUNS = Number(process.env.VMTAP_PROPERTY_RUNS ?? 300)
const SEED = process.env.VMTAP_PROPERTY_SEED === undefined ? undefined : Number(process.env.VMTAP_PROPERTY_SEED)
const fcParams = (numRuns = RUNS) => ({
  numRuns,
  includeErrorInReport: true,
  ...(SEED === undefined ? {} : { seed: SEED }),
})

// ---------------------------------------------------------------------------
// The fake addon: every function of native() recorded; nothing reaches a syscall.
// ---------------------------------------------------------------------------

interface Call {
  fn: string
  args: unknown[]
}

const { IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE } = constants
const FEATURES = 0x7133
let nextFd = 1000
let nextDev = 0
/** The handle the fake open returned last (a TapDevice keeps its own private). */
let lastHandle: unknown

/** The normalized openTap options, however the addon's open() takes them. */
interface OpenArgs extends NativeOpenConfig {
  name: string
  queues: number
  vnetHdr: number
  vhost: number
  tunPath: string
  vhostPath: string
  netns: string | number | null
}

/**
 * The addon's open() arguments as one canonical object: the positional
 * `open(name, queues, vnetHdr, vhost, tunPath|null, vhostPath|null, config|null)`,
 * or the older single options object. The oracle speaks this form (its
 * tristates as 0 = false, 1 = 'auto', 2 = true), so the properties do not
 * depend on how the TypeScript layer packs the call.
 */
function canonicalOpen(args: unknown[]): OpenArgs {
  if (args.length === 1 && typeof args[0] === 'object' && args[0] !== null)
    return { ...NO_CONFIG, ...(args[0] as OpenArgs) }
  const [name, queues, vnetHdr, vhost, tunPath, vhostPath, config, netns] = args as [
    string,
    number,
    unknown,
    unknown,
    string | null,
    string | null,
    Partial<OpenArgs> | null,
    string | number | null | undefined,
  ]
  const tri = (v: unknown) => (v === false ? 0 : v === 'auto' ? 1 : v === true ? 2 : (v as number))
  return {
    name,
    queues,
    vnetHdr: tri(vnetHdr),
    vhost: tri(vhost),
    tunPath: tunPath ?? '/dev/net/tun',
    vhostPath: vhostPath ?? '/dev/vhost-net',
    ...NO_CONFIG,
    ...(config ?? {}),
    netns: netns ?? null,
  }
}

const fakeImpl: Record<string, (...a: any[]) => unknown> = {
  open(...args: unknown[]) {
    const o = canonicalOpen(args)
    const id = nextDev++
    const ifname = o.name === '' ? `tap${id}` : o.name.includes('%d') ? o.name.replace('%d', String(id)) : o.name
    const fds = (n: number) => Array.from({ length: n }, () => nextFd++)
    lastHandle = { fakeHandle: id }
    const handle = lastHandle
    const tapFds = fds(o.queues)
    const vhostFds = o.vhost === 2 ? fds(o.queues) : []
    const flags = IFF_TAP | IFF_NO_PI | (o.vnetHdr !== 0 ? IFF_VNET_HDR : 0) | (o.queues > 1 ? IFF_MULTI_QUEUE : 0)
    // The result in the form the call came in: positional calls get the array form.
    if (args.length === 1) return { handle, ifname, tapFds, vhostFds, flags, features: FEATURES }
    return [handle, ifname, flags, FEATURES, tapFds, vhostFds]
  },
  openAsync(...args: unknown[]) {
    return Promise.resolve(fakeImpl.open(...args))
  },
  openBatch(list: unknown[][]) {
    return Promise.resolve(list.map((args) => fakeImpl.open(...args)))
  },
  close: () => true,
  closeAsync: () => Promise.resolve(true),
  closeAll: (handles: unknown[]) => Promise.resolve(handles.map(() => null)),
  probeFeatures: () => ({ raw: FEATURES, vhostNet: false }),
  getTunFeatures: () => FEATURES,
  setPersist: () => undefined,
  setOwner: () => undefined,
  setGroup: () => undefined,
  getVnetHdrSize: () => 10,
  setVnetHdrSize: () => undefined,
  setOffloads: (_h: unknown, bits: number) => bits,
  setQueueEnabled: () => undefined,
  setLinkUp: () => undefined,
  getLinkInfo: () => ({ up: false, mtu: 1500, mac: 'fe:00:00:00:00:01', ifindex: 7 }),
  setMtu: () => undefined,
  setMac: () => undefined,
  attachToBridge: () => undefined,
  detachFromBridge: () => undefined,
  probeOffloads: () => 0x7f,
  deleteTap: () => undefined,
  setProxyArp: () => undefined,
  setProxyNdp: () => undefined,
  setForwarding: () => undefined,
  setCarrier: () => undefined,
  setTxQueueLen: () => undefined,
  setBridgePort: () => undefined,
}

const calls: Call[] = []

/** Replace every function of native() with a recording fake while `fn` runs. */
async function withFakeNative<R>(fn: () => R | Promise<R>): Promise<R> {
  const n = native() as unknown as Record<string, unknown>
  const saved: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(n)) {
    if (typeof v !== 'function') continue
    saved[k] = v
    const impl = fakeImpl[k]
    n[k] = (...args: unknown[]) => {
      calls.push({ fn: k, args })
      if (!impl) throw new Error(`the fake addon has no ${k}(): add it to properties.spec.ts`)
      return impl(...args)
    }
  }
  try {
    return await fn()
  } finally {
    Object.assign(n, saved)
  }
}

// ---------------------------------------------------------------------------
// Described values and their materialization
// ---------------------------------------------------------------------------

type Wrap =
  | 'plain'
  | 'nullProto'
  | 'frozen'
  | 'proxy' // a transparent Proxy
  | 'proxyGetThrows' // only [[Get]] throws (options must not be read with it)
  | 'proxyOwnKeysThrows'
  | 'proxyGopdThrows'
  | 'proxyAllThrow' // every trap throws
  | 'revoked'
type How = 'value' | 'getter' | 'throws' | 'hidden' | 'setter'
interface Entry {
  key: string
  how: How
  v: Val
}
type Val =
  | { k: 'undef' }
  | { k: 'prim'; v: null | boolean | number | bigint | string | symbol }
  | { k: 'fn' }
  | { k: 'date' }
  | { k: 'arr'; items: Val[]; holes: number[]; throwAt: number | null }
  | { k: 'obj'; entries: Entry[]; wrap: Wrap; proto: Entry[] | null }
  | { k: 'iter'; items: Val[]; via: 'set' | 'generator' | 'throwing' }
  | { k: 'dev'; id: number }

interface DevSpec {
  queues: number
  vnetHdr: boolean
  vhost: boolean
  closed: boolean
}

interface Ctx {
  devs: TapDevice[]
  specs: DevSpec[]
  mat: Map<Val, unknown>
  /** Calls of each generated getter (an element getter of an array counts too). */
  getterCalls: Map<object, number>
}

const U: Val = { k: 'undef' }
const P = (v: null | boolean | number | bigint | string | symbol): Val => ({ k: 'prim', v })
const O = (o: Record<string, Val>): Val => ({
  k: 'obj',
  entries: Object.entries(o).map(([key, v]) => ({ key, how: 'value', v })),
  wrap: 'plain',
  proto: null,
})

function thrower(what: string): never {
  throw new Error(`${what} threw (a generated trap)`)
}

function materialize(v: Val, ctx: Ctx): unknown {
  const out = build(v, ctx)
  ctx.mat.set(v, out)
  return out
}

function build(v: Val, ctx: Ctx): unknown {
  switch (v.k) {
    case 'undef':
      return undefined
    case 'prim':
      return v.v
    case 'fn':
      return function probe() {}
    case 'date':
      return new Date(0)
    case 'dev':
      return ctx.devs[v.id]
    case 'arr': {
      const a: unknown[] = []
      a.length = v.items.length
      v.items.forEach((it, i) => {
        const m = materialize(it, ctx)
        if (!v.holes.includes(i)) a[i] = m
      })
      if (v.throwAt !== null && v.throwAt < a.length) {
        const counter = {}
        Object.defineProperty(a, v.throwAt, {
          get() {
            ctx.getterCalls.set(counter, (ctx.getterCalls.get(counter) ?? 0) + 1)
            thrower('an element getter')
          },
          enumerable: true,
        })
      }
      return a
    }
    case 'iter': {
      const items = v.items.map((it) => materialize(it, ctx))
      if (v.via === 'set') return new Set(items)
      if (v.via === 'generator')
        return (function* () {
          yield* items
        })()
      return { [Symbol.iterator]: () => thrower('an iterator') }
    }
    case 'obj': {
      const proto =
        v.wrap === 'nullProto'
          ? null
          : v.proto
            ? buildEntries(Object.create(Object.prototype), v.proto, ctx)
            : Object.prototype
      const target = buildEntries(Object.create(proto), v.entries, ctx)
      switch (v.wrap) {
        case 'plain':
        case 'nullProto':
          return target
        case 'frozen':
          return Object.freeze(target)
        case 'proxy':
          return new Proxy(target, {})
        case 'proxyGetThrows':
          return new Proxy(target, { get: () => thrower('the get trap') })
        case 'proxyOwnKeysThrows':
          return new Proxy(target, { ownKeys: () => thrower('the ownKeys trap') })
        case 'proxyGopdThrows':
          return new Proxy(target, { getOwnPropertyDescriptor: () => thrower('the getOwnPropertyDescriptor trap') })
        case 'proxyAllThrow': {
          const trap = (name: string) => () => thrower(`the ${name} trap`)
          const traps = [
            'get',
            'set',
            'has',
            'ownKeys',
            'getOwnPropertyDescriptor',
            'getPrototypeOf',
            'defineProperty',
            'deleteProperty',
            'isExtensible',
            'preventExtensions',
            'setPrototypeOf',
            'apply',
            'construct',
          ]
          return new Proxy(target, Object.fromEntries(traps.map((n) => [n, trap(n)])))
        }
        case 'revoked': {
          const r = Proxy.revocable(target, {})
          r.revoke()
          return r.proxy
        }
      }
    }
  }
}

function buildEntries(target: object, entries: Entry[], ctx: Ctx): object {
  for (const e of entries) {
    const value = materialize(e.v, ctx)
    const base = { enumerable: e.how !== 'hidden', configurable: true }
    switch (e.how) {
      case 'value':
      case 'hidden':
        Object.defineProperty(target, e.key, { ...base, value, writable: true })
        break
      case 'getter':
        Object.defineProperty(target, e.key, {
          ...base,
          get() {
            ctx.getterCalls.set(e, (ctx.getterCalls.get(e) ?? 0) + 1)
            return value
          },
        })
        break
      case 'throws':
        Object.defineProperty(target, e.key, {
          ...base,
          get() {
            ctx.getterCalls.set(e, (ctx.getterCalls.get(e) ?? 0) + 1)
            thrower('a getter')
          },
        })
        break
      case 'setter':
        Object.defineProperty(target, e.key, { ...base, set() {} })
        break
    }
  }
  return target
}

/** Open the run's devices through the fake addon (before counting calls). */
function makeCtx(specs: DevSpec[]): Ctx {
  const devs = specs.map((s) => fakeDevice(s))
  for (const [i, s] of specs.entries()) if (s.closed) devs[i].close()
  return { devs, specs, mat: new Map(), getterCalls: new Map() }
}

function closeCtx(ctx: Ctx): void {
  for (const d of ctx.devs) d.close()
}

// ---------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------

const TYPE = 'ERR_INVALID_ARG_TYPE'
const VALUE = 'ERR_INVALID_ARG_VALUE'
const RANGE = 'ERR_OUT_OF_RANGE'
type Code = typeof TYPE | typeof VALUE | typeof RANGE
interface Viol {
  codes: Code[]
  /** Must appear in the message (the argument's name, or its prefix). */
  arg: string
}

/** The oracle's verdict for a refused input: one of `allowed` must come out. */
class Refused {
  constructor(readonly allowed: Viol[]) {}
}
const refuse = (code: Code, arg: string) => new Refused([{ codes: [code], arg }])
/** Reading the argument threw (a getter, a trap, an iterator): either TypeError code. */
const unreadable = (arg: string) => new Refused([{ codes: [TYPE, VALUE], arg }])

/** Run checks that may run in any order: all their refusals are allowed. */
function stage<T extends unknown[]>(...checks: { [K in keyof T]: () => T[K] }): T {
  const allowed: Viol[] = []
  const out: unknown[] = []
  for (const c of checks) {
    try {
      out.push(c())
    } catch (e) {
      if (!(e instanceof Refused)) throw e
      allowed.push(...e.allowed)
    }
  }
  if (allowed.length) throw new Refused(allowed)
  return out as T
}

const isObj = (v: Val) => v.k === 'obj' || v.k === 'arr' || v.k === 'date' || v.k === 'iter' || v.k === 'dev'
const primOf = (v: Val) => (v.k === 'prim' ? v.v : undefined)

function mInt(v: Val, arg: string, min: number, max: number): number {
  const x = primOf(v)
  if (v.k !== 'prim' || typeof x !== 'number') throw refuse(TYPE, arg)
  if (!Number.isInteger(x) || x < min || x > max || Object.is(x, -0)) throw refuse(RANGE, arg)
  return x
}

function mBool(v: Val, arg: string): boolean {
  const x = primOf(v)
  if (v.k !== 'prim' || typeof x !== 'boolean') throw refuse(TYPE, arg)
  return x
}

function mTristate(v: Val, arg: string, dflt: 0 | 1 | 2): 0 | 1 | 2 {
  if (v.k === 'undef') return dflt
  const x = primOf(v)
  if (x === true) return 2
  if (x === false) return 0
  if (x === 'auto') return 1
  throw refuse(v.k === 'prim' && typeof x === 'string' ? VALUE : TYPE, arg)
}

function mString(v: Val, arg: string): string {
  const x = primOf(v)
  if (v.k !== 'prim' || typeof x !== 'string') throw refuse(TYPE, arg)
  return x
}

/** The interface-name rules as the README states them. */
function mName(v: Val, arg: string): string {
  if (v.k === 'undef') return ''
  const s = mString(v, arg)
  if (s === '') return ''
  if (Buffer.byteLength(s) > 15 || s === '.' || s === '..') throw refuse(VALUE, arg)
  let templates = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x25 && s[i + 1] === 'd') {
      templates++
      i++
    } else if (c < 0x21 || c > 0x7e || c === 0x25 || c === 0x2f || c === 0x3a) {
      throw refuse(VALUE, arg)
    }
  }
  if (templates > 1) throw refuse(VALUE, arg)
  return s
}

function mBridge(v: Val, arg: string): string {
  const s = mName(v, arg)
  if (s === '' || s.includes('%d')) throw refuse(v.k === 'undef' ? TYPE : VALUE, arg)
  return s
}

const isNull = (v: Val) => v.k === 'prim' && v.v === null

/** A namespace: an fd, an absolute path, or a name (1-255 bytes, no '/', not '.'/'..') meaning /run/netns/NAME. */
function mNetns(v: Val, arg: string): string | number {
  const x = primOf(v)
  if (v.k === 'prim' && typeof x === 'number') return mInt(v, arg, 0, 2 ** 31 - 1)
  const s = mString(v, arg)
  if (s.includes('\0')) throw refuse(VALUE, arg)
  if (s.startsWith('/')) return s
  if (s === '' || Buffer.byteLength(s) > 255 || s.includes('/') || s === '.' || s === '..') throw refuse(VALUE, arg)
  return `/run/netns/${s}`
}

/** The `netns` of a host-level call's options: null when absent. */
const mNetnsOption = (v: Val) => (v.k === 'undef' ? null : mNetns(v, 'options.netns'))

function mPath(v: Val, arg: string, dflt: string): string {
  if (v.k === 'undef') return dflt
  const s = mString(v, arg)
  if (!s.startsWith('/') || s.includes('\0')) throw refuse(VALUE, arg)
  return s
}

function mMac(v: Val, arg: string): string {
  const s = mString(v, arg)
  const parts = s.split(':')
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) throw refuse(VALUE, arg)
  const bytes = parts.map((p) => parseInt(p, 16))
  if (bytes[0] % 2 === 1 || bytes.every((b) => b === 0)) throw refuse(VALUE, arg)
  return s.toLowerCase()
}

function mVnetHdrSize(v: Val, arg: string): number {
  const x = primOf(v)
  if (v.k !== 'prim' || typeof x !== 'number') throw refuse(TYPE, arg)
  if (x !== 10 && x !== 12 && x !== 20) throw refuse(RANGE, arg)
  return x
}

/** An entry as an own-property read sees it (value, getter result or throw). */
function ownRead(e: Entry, arg: string): Val {
  if (e.how === 'throws') throw unreadable(arg)
  if (e.how === 'setter') return U
  return e.v
}

/**
 * "Options are read once, own properties only; unknown keys are refused; a
 * throwing getter is ERR_INVALID_ARG_VALUE" (snapshotOptions).
 */
function mSnapshot(v: Val, arg: string, known: readonly string[]): Record<string, Val> {
  if (v.k === 'undef') return {}
  if (v.k === 'dev') throw refuse(VALUE, `${arg}.`) // its own enumerable keys (ifname, ...) are not options
  if (v.k === 'prim' || v.k === 'fn' || v.k === 'arr') throw refuse(TYPE, arg)
  if (v.k === 'date' || v.k === 'iter') return {} // objects without own string keys
  if (v.wrap === 'revoked') throw unreadable(arg)
  if (v.wrap === 'proxyOwnKeysThrows' || v.wrap === 'proxyAllThrow') throw refuse(VALUE, arg)
  const out: Record<string, Val> = {}
  stage(
    ...v.entries.map((e) => () => {
      const name = `${arg}.${e.key}`
      if (v.wrap === 'proxyGopdThrows') throw refuse(VALUE, name) // before its enumerability is known
      if (e.how === 'hidden') return
      if (!known.includes(e.key)) throw refuse(VALUE, name)
      out[e.key] = ownRead(e, name)
    }),
  )
  return out
}

/** A [[Get]] of `key` on a described object (inherited properties count). */
function mGet(v: Val, key: string, arg: string, ctx: Ctx): Val {
  if (v.k === 'dev') {
    const d = ctx.devs[v.id] as unknown as Record<string, unknown>
    const x = d[key]
    return Array.isArray(x)
      ? { k: 'arr', items: x.map((n) => P(n as number)), holes: [], throwAt: null }
      : P(x as never)
  }
  if (v.k !== 'obj') return U
  if (v.wrap === 'proxyGetThrows' || v.wrap === 'proxyAllThrow' || v.wrap === 'revoked') throw unreadable(arg)
  const own = v.entries.find((e) => e.key === key)
  if (own) return ownRead(own, arg)
  const inherited = v.wrap === 'nullProto' ? undefined : v.proto?.find((e) => e.key === key)
  return inherited ? ownRead(inherited, arg) : U
}

/** The elements of a described array as a reader sees them (holes are undefined). */
function mElements(v: Val, arg: string): Val[] {
  if (v.k !== 'arr') throw new Error('not an array')
  return v.items.map((it, i) => {
    if (v.throwAt === i) throw unreadable(arg)
    return v.holes.includes(i) ? U : it
  })
}

function truthy(v: Val): boolean {
  if (v.k === 'undef') return false
  if (v.k === 'prim') return Boolean(v.v)
  return true
}

const OFFLOAD_KEYS = ['csum', 'tso4', 'tso6', 'ecn', 'ufo', 'uso4', 'uso6'] as const
function mOffloads(v: Val, arg: string): number {
  const o = mSnapshot(v, arg, OFFLOAD_KEYS)
  const [bits] = stage(() =>
    OFFLOAD_KEYS.reduce(
      (b, k, i) => (o[k] === undefined || o[k].k === 'undef' || !mBool(o[k], `${arg}.${k}`) ? b : b | (1 << i)),
      0,
    ),
  )
  if (bits !== 0 && (bits & 1) === 0) throw refuse(VALUE, arg)
  // The kernel's pairings: ecn needs tso4 or tso6; uso4 and uso6 come together.
  if (bits & 8 && !(bits & 6)) throw refuse(VALUE, arg)
  if (!(bits & 32) !== !(bits & 64)) throw refuse(VALUE, arg)
  return bits
}

const get = (o: Record<string, Val>, k: string): Val => o[k] ?? U

const OPEN_KEYS = [
  'name',
  'queues',
  'vnetHdr',
  'vhost',
  'tunPath',
  'vhostPath',
  'netns',
  'exclusive',
  'uniqueName',
  'persist',
  'owner',
  'group',
  'vnetHdrSize',
  'offloads',
  'mtu',
  'mac',
  'bridge',
  'up',
] as const
const MAX_ID = 2 ** 32 - 2

/** What openTap must pass to the addon, or how it must refuse. */
function mOpen(options: Val): Record<string, unknown> {
  const o = mSnapshot(options, 'options', OPEN_KEYS)
  const opt = <T>(k: string, f: (v: Val, arg: string) => T): T | null =>
    get(o, k).k === 'undef' ? null : f(get(o, k), `options.${k}`)
  const bool = (k: string) => (get(o, k).k === 'undef' ? false : mBool(get(o, k), `options.${k}`))
  // Each field is its own stage (validated in this order); only the refusal of the first bad one can come out.
  const n = {
    name: mName(get(o, 'name'), 'options.name'),
    queues: get(o, 'queues').k === 'undef' ? 1 : mInt(get(o, 'queues'), 'options.queues', 1, 256),
    vnetHdr: mTristate(get(o, 'vnetHdr'), 'options.vnetHdr', 1),
    vhost: mTristate(get(o, 'vhost'), 'options.vhost', 0),
    tunPath: mPath(get(o, 'tunPath'), 'options.tunPath', '/dev/net/tun'),
    vhostPath: mPath(get(o, 'vhostPath'), 'options.vhostPath', '/dev/vhost-net'),
    netns: get(o, 'netns').k === 'undef' ? null : mNetns(get(o, 'netns'), 'options.netns'),
    exclusive: bool('exclusive'),
    uniqueName: bool('uniqueName'),
    persist: bool('persist'),
    // null opts out of the default owner.
    owner: isNull(get(o, 'owner')) ? null : opt('owner', (v, a) => mInt(v, a, 0, MAX_ID)),
    group: opt('group', (v, a) => mInt(v, a, 0, MAX_ID)),
    ownerless: isNull(get(o, 'owner')),
    vnetHdrSize: opt('vnetHdrSize', mVnetHdrSize),
    offloads: opt('offloads', mOffloads),
    mtu: opt('mtu', (v, a) => mInt(v, a, 68, 65535)),
    mac: opt('mac', mMac),
    bridge: opt('bridge', mBridge),
    up: bool('up'),
  }
  // Rules between options, after every field is valid.
  stage(
    () => {
      if (n.uniqueName && n.name !== '' && !n.name.includes('%d')) throw refuse(VALUE, 'options.uniqueName')
    },
    () => {
      if (n.vnetHdr === 0 && ((n.offloads ?? 0) !== 0 || n.vnetHdrSize !== null)) throw refuse(VALUE, 'options.vnetHdr')
    },
  )
  return n
}

interface Expect {
  calls: { fn: string; args: unknown[] }[]
  /** The expected return value (deepEqual), if checked. */
  result?: unknown
  /** A custom comparison of the return value (instead of deepEqual). */
  compare?: (actual: unknown) => void
}

// ---------------------------------------------------------------------------
// Running one case against the oracle
// ---------------------------------------------------------------------------

const stats = new Map<string, { ok: number; refused: number }>()
function count(name: string, ok: boolean): void {
  const s = stats.get(name) ?? { ok: 0, refused: 0 }
  if (ok) s.ok++
  else s.refused++
  stats.set(name, s)
}

function oracle(model: () => Expect): Expect | Refused {
  try {
    return model()
  } catch (e) {
    if (e instanceof Refused) return e
    throw e
  }
}

function describeAllowed(r: Refused): string {
  return r.allowed.map((v) => `${v.codes.join('|')} naming ${v.arg}`).join('; ')
}

/** The thrown error must be a plain TypeError/RangeError with a code and argument name the oracle allows. */
function assertRefusal(e: unknown, expected: Refused): void {
  assert.ok(e instanceof Error, `a non-Error was thrown: ${String(e)}`)
  assert.ok(!(e instanceof TapError), `a TapError for a bad argument: ${e.message}`)
  const code = (e as NodeJS.ErrnoException).code
  const ok = expected.allowed.some((v) => v.codes.includes(code as Code) && e.message.includes(v.arg))
  assert.ok(
    ok,
    `threw ${e.constructor.name} ${code ?? '(no code)'}: ${e.message}\n  expected one of: ${describeAllowed(expected)}`,
  )
  const Ctor = code === RANGE ? RangeError : TypeError
  assert.equal(e.constructor, Ctor, `${code} must be a ${Ctor.name}, got ${e.constructor.name}`)
}

function assertGettersReadOnce(ctx: Ctx): void {
  for (const [e, n] of ctx.getterCalls) {
    const key = (e as Entry).key ?? '(an array element)'
    assert.ok(n <= 1, `the getter of ${key} was called ${n} times; arguments must be read once`)
  }
}

/** Compare what the addon got with the oracle (the handle argument by identity). */
function assertCalls(expected: Expect['calls']): void {
  assert.deepEqual(
    // openTapAsync batches: each entry of an openBatch is one open on the pool.
    calls.flatMap((c) =>
      c.fn === 'openBatch'
        ? (c.args[0] as unknown[][]).map((a) => ({ fn: 'openAsync', args: [canonicalOpen(a)] }))
        : [{ fn: c.fn, args: c.fn === 'open' || c.fn === 'openAsync' ? [canonicalOpen(c.args)] : c.args }],
    ),
    expected,
    'the addon calls must be exactly the normalized ones',
  )
}

function checkSync(name: string, ctx: Ctx, model: () => Expect, act: () => unknown): void {
  const expected = oracle(model)
  calls.length = 0
  let result: unknown
  let error: unknown
  let threw = false
  try {
    result = act()
  } catch (e) {
    threw = true
    error = e
  }
  const made = calls.slice()
  if (expected instanceof Refused) {
    assert.ok(threw, `accepted a bad input (expected ${describeAllowed(expected)}); returned ${safeString(result)}`)
    assertRefusal(error, expected)
    assert.deepEqual(made, [], 'a refused input must not reach the addon')
  } else {
    if (threw) throw new Error(`refused a valid input: ${(error as Error)?.stack ?? String(error)}`)
    assertCalls(expected.calls)
    if (expected.compare) expected.compare(result)
    else if ('result' in expected) assert.deepEqual(result, expected.result)
  }
  assertGettersReadOnce(ctx)
  count(name, !(expected instanceof Refused))
}

async function checkAsync(name: string, ctx: Ctx, model: () => Expect, act: () => Promise<unknown>): Promise<void> {
  const expected = oracle(model)
  calls.length = 0
  let promise: Promise<unknown>
  try {
    promise = act()
  } catch (e) {
    throw new Error(`${name} threw synchronously instead of rejecting: ${(e as Error)?.stack ?? String(e)}`)
  }
  assert.ok(promise instanceof Promise, `${name} must return a Promise`)
  const refusedSync = calls.slice()
  let result: unknown
  let error: unknown
  let threw = false
  try {
    result = await promise
  } catch (e) {
    threw = true
    error = e
  }
  if (expected instanceof Refused) {
    assert.ok(threw, `accepted a bad input (expected ${describeAllowed(expected)}); resolved ${safeString(result)}`)
    assertRefusal(error, expected)
    assert.deepEqual(refusedSync, [], 'a refused input must not reach the addon')
    assert.deepEqual(calls, [], 'a refused input must not reach the addon')
  } else {
    if (threw) throw new Error(`refused a valid input: ${(error as Error)?.stack ?? String(error)}`)
    assertCalls(expected.calls)
    if ('result' in expected) assert.deepEqual(result, expected.result)
  }
  assertGettersReadOnce(ctx)
  count(name, !(expected instanceof Refused))
}

function safeString(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v)
  } catch {
    return '[unprintable]'
  }
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

const SPECIAL_NUMBERS = [
  NaN,
  Infinity,
  -Infinity,
  -0,
  0,
  0.5,
  -1,
  1,
  9,
  10,
  11,
  12,
  20,
  67,
  68,
  255,
  256,
  257,
  65521,
  65535,
  65536,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 2,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  Number.EPSILON,
  1e21,
  -1e21,
]
const WEIRD_STRINGS = [
  '',
  ' ',
  '\0',
  'a\0b',
  '/dev/net/tun\0',
  '%d',
  '%s',
  '%n',
  '%%d',
  '%d%d',
  '%',
  '%x%d',
  'vm%d',
  'vm%s',
  'é',
  '€',
  '\u{1F600}',
  '\ud800',
  '\u200b',
  '\u007f',
  'auto',
  'AUTO',
  'true',
  '1',
  '4',
  '__proto__',
  'constructor',
  'toString',
  'a'.repeat(16),
  'é'.repeat(8),
  'ab\ncd',
  'x y',
  'a/b',
  'a:b',
  '.',
  '..',
  '-',
  'fe:54:00:12:34:56',
]
const SYMBOLS = [Symbol('generated'), Symbol.iterator, Symbol.for('nodejs.dispose')]

const primArb: fc.Arbitrary<Val> = fc
  .oneof(
    fc.constant(null),
    fc.boolean(),
    fc.constantFrom(...SPECIAL_NUMBERS),
    fc.integer(),
    fc.double(),
    fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
    fc.constantFrom(...WEIRD_STRINGS),
    fc.string({ unit: 'binary', maxLength: 18 }),
    fc.string({ maxLength: 18 }),
    fc.constantFrom(...SYMBOLS),
  )
  .map(P)

const WRAPS_ODD: Wrap[] = [
  'nullProto',
  'frozen',
  'proxy',
  'proxyGetThrows',
  'proxyOwnKeysThrows',
  'proxyGopdThrows',
  'proxyAllThrow',
  'revoked',
]
const wrapArb: fc.Arbitrary<Wrap> = fc.oneof(
  { weight: 12, arbitrary: fc.constant<Wrap>('plain') },
  { weight: 1, arbitrary: fc.constantFrom(...WRAPS_ODD) },
)
const howArb: fc.Arbitrary<How> = fc.oneof(
  { weight: 20, arbitrary: fc.constant<How>('value') },
  { weight: 2, arbitrary: fc.constant<How>('getter') },
  { weight: 1, arbitrary: fc.constantFrom<How>('throws', 'hidden', 'setter') },
)
const ODD_KEYS = [
  'queue',
  'Name',
  'QUEUES',
  '__proto__',
  'constructor',
  'toString',
  '0',
  '7',
  'hasOwnProperty',
  'vhostfd',
  'mtu ',
  '',
  'then',
]

/** Any value, nested up to `depth` levels. */
function anyVal(depth = 1): fc.Arbitrary<Val> {
  const leaf = fc.oneof(
    { weight: 12, arbitrary: primArb },
    { weight: 2, arbitrary: fc.constant<Val>(U) },
    { weight: 1, arbitrary: fc.constantFrom<Val>({ k: 'fn' }, { k: 'date' }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }).map((id): Val => ({ k: 'dev', id })) },
  )
  if (depth <= 0) return leaf
  const inner = anyVal(depth - 1)
  return fc.oneof(
    { weight: 8, arbitrary: leaf },
    { weight: 1, arbitrary: arrOf(inner) },
    {
      weight: 1,
      arbitrary: objOf(
        fc.record({ key: fc.oneof(fc.constantFrom(...ODD_KEYS), fc.string({ maxLength: 6 })), how: howArb, v: inner }),
      ),
    },
  )
}

function arrOf(
  item: fc.Arbitrary<Val>,
  opts: { minLength?: number; maxLength?: number; odd?: boolean } = {},
): fc.Arbitrary<Val> {
  const odd = opts.odd ?? true
  return fc
    .record({
      items: fc.array(item, { minLength: opts.minLength ?? 0, maxLength: opts.maxLength ?? 4 }),
      holes: odd
        ? fc.oneof(
            { weight: 10, arbitrary: fc.constant<number[]>([]) },
            { weight: 1, arbitrary: fc.array(fc.nat(4), { maxLength: 2 }) },
          )
        : fc.constant<number[]>([]),
      throwAt: odd
        ? fc.oneof({ weight: 15, arbitrary: fc.constant<number | null>(null) }, { weight: 1, arbitrary: fc.nat(4) })
        : fc.constant<number | null>(null),
    })
    .map(
      ({ items, holes, throwAt }): Val => ({
        k: 'arr',
        items,
        holes: holes.filter((h) => h < items.length),
        throwAt: throwAt !== null && throwAt < items.length ? throwAt : null,
      }),
    )
}

function objOf(
  entry: fc.Arbitrary<Entry>,
  opts: { maxLength?: number; wrap?: fc.Arbitrary<Wrap> } = {},
): fc.Arbitrary<Val> {
  return fc
    .record({
      entries: fc.uniqueArray(entry, { selector: (e) => e.key, maxLength: opts.maxLength ?? 5 }),
      wrap: opts.wrap ?? wrapArb,
      proto: fc.oneof(
        { weight: 5, arbitrary: fc.constant<Entry[] | null>(null) },
        {
          weight: 1,
          arbitrary: fc.uniqueArray(
            fc.record({
              key: fc.constantFrom(
                ...OPEN_KEYS,
                'tapFds',
                'vhostFds',
                'id',
                'stdio',
                'extra',
                'deviceProps',
                'maxThreads',
                'csum',
              ),
              how: fc.constant<How>('value'),
              v: primArb,
            }),
            { selector: (e) => e.key, maxLength: 3 },
          ),
        },
      ),
    })
    .map((r): Val => ({ k: 'obj', ...r }))
}

/** Mostly valid, often near the edges, sometimes anything. */
function field<T extends null | boolean | number | bigint | string | symbol>(
  valid: fc.Arbitrary<T>,
  near: fc.Arbitrary<T | unknown>,
): fc.Arbitrary<Val> {
  return fc.oneof(
    { weight: 8, arbitrary: valid.map(P) },
    { weight: 3, arbitrary: near.map((v) => P(v as never)) },
    { weight: 1, arbitrary: anyVal(1) },
  )
}

const nameChars = fc.constantFrom(...'abvmtz09-_.@!~%d/: \t\0é€\u007f'.split(''))
const validName = fc.oneof(
  fc.constantFrom('', 'vm%d', '%d', 'tap0', 'abcdefghijklmno', 'vm-0.a_b@c', 'v%dx', '!~'),
  fc.stringMatching(/^[a-z][a-z0-9_.-]{0,10}(%d)?$/),
)
const nearName = fc.oneof(
  fc.constantFrom(
    'abcdefghijklmnop',
    '.',
    '..',
    'a/b',
    'a:b',
    'a b',
    'a\tb',
    'a\0b',
    'é',
    'vm%s',
    'vm%',
    '%%d',
    '%d%d',
    'x%n',
    'vm\u007f',
    'éééééééé',
    'abcdefghijklmn%d',
  ),
  fc.string({ unit: nameChars, maxLength: 17 }),
  fc.string({ unit: 'binary', maxLength: 17 }),
)
const nameField = field(validName, nearName)
const bridgeField = field(
  fc.stringMatching(/^[a-z][a-z0-9_.-]{0,10}$/),
  fc.oneof(nearName, fc.constantFrom('', 'br%d', '%d')),
)

const hex2 = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, '0'))
const macParts = fc.tuple(hex2, hex2, hex2, hex2, hex2, hex2)
const validMac = fc
  .tuple(macParts, fc.boolean())
  .map(([p, upper]) => {
    const first = (parseInt(p[0], 16) & 0xfe).toString(16).padStart(2, '0')
    const s = [first, ...p.slice(1)].join(':')
    return upper ? s.toUpperCase() : s
  })
  .filter((s) => s.toLowerCase() !== '00:00:00:00:00:00')
const nearMac = fc.oneof(
  macParts.map((p) => p.join(':')), // multicast half the time
  macParts.map((p) => p.join('-')),
  macParts.map((p) => p.slice(0, 5).join(':')),
  macParts.map((p) => `${p.join(':')}:00`),
  fc.constantFrom(
    '00:00:00:00:00:00',
    '01:00:5e:00:00:01',
    'ff:ff:ff:ff:ff:ff',
    'fe:54:00:12:34:5g',
    'fe:54:00:12:34:56\0',
    ' fe:54:00:12:34:56',
    'fe:54:0:12:34:56',
    'FE:54:00:12:34:56',
  ),
)
const macField = field(validMac, nearMac)
const boolField = field(fc.boolean(), fc.constantFrom(0, 1, 'true', 'false', null, 'yes', NaN))
const int = (min: number, max: number) =>
  field(
    fc.integer({ min, max }),
    fc.oneof(
      fc.integer({ min: min - 3, max: min + 3 }),
      fc.integer({ min: max - 3, max: max + 3 }),
      fc.constantFrom(...SPECIAL_NUMBERS),
      fc.double(),
    ),
  )
const pathField = field(
  fc.oneof(
    fc.constantFrom('/dev/net/tun', '/dev/vhost-net', '/x', '/dev/%d', '/é'),
    fc.string({ maxLength: 12 }).map((s) => `/${s.replace(/\0/g, '')}`),
  ),
  fc.oneof(fc.constantFrom('', 'dev/net/tun', './tun', '/a\0b', '\0', 'tun', '~/tun'), fc.string({ maxLength: 12 })),
)
const tristateField = field(
  fc.constantFrom<boolean | string>(true, false, 'auto'),
  fc.constantFrom('Auto', 'on', 'off', '', 'yes', 1, 0, null, 2),
)
const hdrSizeField = field(
  fc.constantFrom(10, 12, 20),
  fc.oneof(fc.integer({ min: 0, max: 24 }), fc.constantFrom(10.5, -10, -0, NaN, '12')),
)
const offloadsField: fc.Arbitrary<Val> = fc.oneof(
  {
    weight: 6,
    arbitrary: objOf(fc.record({ key: fc.constantFrom(...OFFLOAD_KEYS), how: howArb, v: boolField }), { maxLength: 7 }),
  },
  {
    weight: 1,
    arbitrary: objOf(
      fc.record({ key: fc.constantFrom(...OFFLOAD_KEYS, 'gso', 'CSUM', 'tso', 'lro'), how: howArb, v: boolField }),
    ),
  },
  { weight: 1, arbitrary: anyVal(1) },
)

const OPEN_FIELDS: Record<(typeof OPEN_KEYS)[number], fc.Arbitrary<Val>> = {
  name: nameField,
  queues: int(1, 256),
  vnetHdr: tristateField,
  vhost: tristateField,
  tunPath: pathField,
  vhostPath: pathField,
  netns: field(
    fc.oneof(fc.constantFrom('blue', '/run/netns/blue', '/proc/1/ns/net', 3), fc.stringMatching(/^[a-z0-9_-]{1,20}$/)),
    fc.constantFrom('', '.', '..', 'a/b', 'a\0b', 'x'.repeat(256), -1, 0.5, null, true, {}),
  ),
  exclusive: boolField,
  uniqueName: boolField,
  persist: boolField,
  owner: fc.oneof(
    { weight: 9, arbitrary: int(0, MAX_ID) },
    { weight: 1, arbitrary: field(fc.constant(null), fc.constant(null)) },
  ),
  group: int(0, MAX_ID),
  vnetHdrSize: hdrSizeField,
  offloads: offloadsField,
  mtu: int(68, 65535),
  mac: macField,
  bridge: bridgeField,
  up: boolField,
}

function entriesFor(fields: Record<string, fc.Arbitrary<Val>>): fc.Arbitrary<Entry> {
  const known = fc
    .constantFrom(...Object.keys(fields))
    .chain((key) => fc.record({ key: fc.constant(key), how: howArb, v: fields[key] }))
  const odd = fc.record({ key: fc.constantFrom(...ODD_KEYS), how: howArb, v: anyVal(0) })
  return fc.oneof({ weight: 15, arbitrary: known }, { weight: 1, arbitrary: odd })
}

/** An options argument: mostly an object of known keys, sometimes anything. */
function optionsArb(fields: Record<string, fc.Arbitrary<Val>>, maxKeys = 6): fc.Arbitrary<Val> {
  return fc.oneof(
    { weight: 14, arbitrary: objOf(entriesFor(fields), { maxLength: maxKeys }) },
    { weight: 1, arbitrary: fc.constant<Val>(U) },
    { weight: 2, arbitrary: anyVal(1) },
  )
}

const devSpecArb: fc.Arbitrary<DevSpec> = fc.record({
  queues: fc.integer({ min: 1, max: 4 }),
  vnetHdr: fc.boolean(),
  vhost: fc.boolean(),
  closed: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
})
const devSpecsArb = fc.array(devSpecArb, { minLength: 4, maxLength: 4 })

// ---------------------------------------------------------------------------
// openTap / openTapAsync
// ---------------------------------------------------------------------------

function openExpect(options: Val): Expect {
  return { calls: [{ fn: 'open', args: [mOpen(options)] }] }
}

test.serial(
  'openTap: any options are refused with the documented error before the addon, or passed on normalized',
  async (t) => {
    await withFakeNative(() =>
      fc.assert(
        fc.property(devSpecsArb, optionsArb(OPEN_FIELDS), (specs, options) => {
          const ctx = makeCtx(specs)
          try {
            let opened: TapDevice | undefined
            checkSync(
              'openTap',
              ctx,
              () => openExpect(options),
              () => {
                opened = openTap(materialize(options, ctx) as never)
                return undefined
              },
            )
            if (opened) {
              assert.ok(opened instanceof TapDevice)
              opened.close()
            }
          } finally {
            closeCtx(ctx)
          }
        }),
        fcParams(),
      ),
    )
    const s = stats.get('openTap')!
    t.log(`openTap: ${s.ok} accepted, ${s.refused} refused`)
    t.true(s.ok > RUNS / 20 && s.refused > RUNS / 4, 'both outcomes are exercised')
  },
)

test.serial('openTapAsync: the same verdicts, always as a rejection (never a synchronous throw)', async (t) => {
  await withFakeNative(() =>
    fc.assert(
      fc.asyncProperty(devSpecsArb, optionsArb(OPEN_FIELDS), async (specs, options) => {
        const ctx = makeCtx(specs)
        try {
          let opened: TapDevice | undefined
          await checkAsync(
            'openTapAsync',
            ctx,
            () => ({ calls: [{ fn: 'openAsync', args: [mOpen(options)] }] }),
            async () => {
              opened = await openTapAsync(materialize(options, ctx) as never)
            },
          )
          await opened?.closeAsync()
        } finally {
          closeCtx(ctx)
        }
      }),
      fcParams(),
    ),
  )
  const s = stats.get('openTapAsync')!
  t.log(`openTapAsync: ${s.ok} accepted, ${s.refused} refused`)
  t.true(s.ok > 0 && s.refused > 0)
})

/** Valid options by construction (the cross-option rules respected). */
const validOpenArb = fc
  .record(
    {
      name: validName,
      queues: fc.integer({ min: 1, max: 256 }),
      vnetHdr: fc.constantFrom<boolean | 'auto'>(true, false, 'auto'),
      vhost: fc.constantFrom<boolean | 'auto'>(true, false, 'auto'),
      tunPath: fc.constantFrom('/dev/net/tun', '/x/tun'),
      vhostPath: fc.constantFrom('/dev/vhost-net', '/x/vhost'),
      exclusive: fc.boolean(),
      uniqueName: fc.boolean(),
      persist: fc.boolean(),
      owner: fc.integer({ min: 0, max: MAX_ID }),
      group: fc.integer({ min: 0, max: MAX_ID }),
      vnetHdrSize: fc.constantFrom(10, 12, 20),
      offloads: fc.record(Object.fromEntries(OFFLOAD_KEYS.map((k) => [k, fc.boolean()])), { requiredKeys: [] }),
      mtu: fc.integer({ min: 68, max: 65535 }),
      mac: validMac,
      bridge: fc.stringMatching(/^[a-z][a-z0-9]{0,14}$/),
      up: fc.boolean(),
    },
    { requiredKeys: [] },
  )
  .map((o) => {
    const r: Record<string, unknown> = { ...o }
    const off = r.offloads ? { ...(r.offloads as Record<string, boolean>) } : undefined // never mutate a generated value
    r.offloads = off
    if (off && Object.values(off).some(Boolean)) off.csum = true
    if (off?.ecn && !off.tso4 && !off.tso6) off.tso4 = true
    if (off && !off.uso4 !== !off.uso6) off.uso4 = off.uso6 = true
    if (r.uniqueName && typeof r.name === 'string' && r.name !== '' && !r.name.includes('%d')) delete r.uniqueName
    if (r.vnetHdr === false && (r.vnetHdrSize !== undefined || off?.csum)) r.vnetHdr = 'auto'
    return r
  })

function toVal(x: unknown): Val {
  if (x === undefined) return U
  if (x !== null && typeof x === 'object')
    return O(Object.fromEntries(Object.entries(x).map(([k, v]) => [k, toVal(v)])))
  return P(x as never)
}

test.serial(
  'openTap: every valid option combination is accepted and reaches the addon exactly once, normalized',
  async (t) => {
    await withFakeNative(() =>
      fc.assert(
        fc.property(validOpenArb, (o) => {
          const ctx = makeCtx([])
          const v = toVal(o)
          const expected = oracle(() => openExpect(v))
          assert.ok(
            !(expected instanceof Refused),
            `the generator made an invalid input: ${expected instanceof Refused ? describeAllowed(expected) : ''}`,
          )
          let opened: TapDevice | undefined
          checkSync(
            'openTap valid',
            ctx,
            () => openExpect(v),
            () => {
              opened = openTap(o as never)
            },
          )
          opened!.close()
        }),
        fcParams(),
      ),
    )
    t.is(stats.get('openTap valid')!.refused, 0)
  },
)

// ---------------------------------------------------------------------------
// TapDevice methods
// ---------------------------------------------------------------------------

interface DevInfo {
  handle: unknown
  ifname: string
  vnetHdr: boolean
  multiQueue: boolean
  queues: number
}

const handles = new WeakMap<TapDevice, unknown>()

function devInfo(d: TapDevice): DevInfo {
  return {
    handle: handles.get(d),
    ifname: d.ifname,
    vnetHdr: d.vnetHdr,
    multiQueue: d.multiQueue,
    queues: d.tapFds.length,
  }
}

/** A required string argument: undefined may be called a wrong type or a bad value. */
function mBridgeArg(v: Val, arg: string): string {
  if (v.k === 'undef') throw new Refused([{ codes: [TYPE, VALUE], arg }])
  return mBridge(v, arg)
}

function bitsToOffloads(bits: number): Record<string, boolean> {
  return Object.fromEntries(OFFLOAD_KEYS.map((k, i) => [k, (bits & (1 << i)) !== 0]))
}

const one = (fn: string, h: unknown, ...args: unknown[]) => [{ fn, args: [h, ...args] }]

const CONFIGURE_FIELDS = { mtu: int(68, 65535), mac: macField, bridge: bridgeField, up: boolField }

const BRIDGE_PORT_KEYS = ['isolated', 'learning', 'unicastFlood', 'hairpin'] as const
const BRIDGE_PORT_FIELDS = { isolated: boolField, learning: boolField, unicastFlood: boolField, hairpin: boolField }
const MAX_TX_QUEUE_LEN = 2 ** 31 - 1

/** A method taking one boolean `on`. */
const onMethod = (fn: string) => ({
  args: fc.tuple(boolField),
  model: ([v]: Val[], d: DevInfo) => ({ calls: one(fn, d.handle, mBool(v, 'on')) }),
})

/** Each method: how its arguments are generated and what the oracle expects of them. */
const METHODS: Record<string, { args: fc.Arbitrary<Val[]>; model: (a: Val[], d: DevInfo) => Expect }> = {
  setLinkUp: {
    args: fc.tuple(fc.oneof(fc.constant(U), boolField)),
    model: ([v], d) => ({ calls: one('setLinkUp', d.handle, v.k === 'undef' ? true : mBool(v, 'up')) }),
  },
  getLinkInfo: {
    args: fc.constant([]),
    model: (_, d) => ({ calls: one('getLinkInfo', d.handle), result: fakeImpl.getLinkInfo() }),
  },
  getMtu: { args: fc.constant([]), model: (_, d) => ({ calls: one('getLinkInfo', d.handle), result: 1500 }) },
  getMac: {
    args: fc.constant([]),
    model: (_, d) => ({ calls: one('getLinkInfo', d.handle), result: 'fe:00:00:00:00:01' }),
  },
  setMtu: {
    args: fc.tuple(int(68, 65535)),
    model: ([v], d) => ({ calls: one('setMtu', d.handle, mInt(v, 'mtu', 68, 65535)) }),
  },
  setMac: { args: fc.tuple(macField), model: ([v], d) => ({ calls: one('setMac', d.handle, mMac(v, 'mac')) }) },
  attachToBridge: {
    args: fc.tuple(bridgeField),
    model: ([v], d) => ({ calls: one('attachToBridge', d.handle, mBridgeArg(v, 'bridge')) }),
  },
  detachFromBridge: {
    args: fc.tuple(bridgeField),
    model: ([v], d) => ({ calls: one('detachFromBridge', d.handle, mBridgeArg(v, 'bridge')) }),
  },
  configure: {
    args: fc.tuple(optionsArb(CONFIGURE_FIELDS, 4)),
    model: ([v], d) => {
      const o = mSnapshot(v, 'options', ['mtu', 'mac', 'bridge', 'up'])
      const has = (k: string) => get(o, k).k !== 'undef'
      const mtu = has('mtu') ? mInt(get(o, 'mtu'), 'options.mtu', 68, 65535) : undefined
      const mac = has('mac') ? mMac(get(o, 'mac'), 'options.mac') : undefined
      const bridge = has('bridge') ? mBridge(get(o, 'bridge'), 'options.bridge') : undefined
      const up = has('up') ? mBool(get(o, 'up'), 'options.up') : undefined
      // libvirt's order, whatever the order of the keys
      return {
        calls: [
          ...(mtu === undefined ? [] : one('setMtu', d.handle, mtu)),
          ...(mac === undefined ? [] : one('setMac', d.handle, mac)),
          ...(bridge === undefined ? [] : one('attachToBridge', d.handle, bridge)),
          ...(up === undefined ? [] : one('setLinkUp', d.handle, up)),
        ],
      }
    },
  },
  getVnetHdrSize: { args: fc.constant([]), model: (_, d) => ({ calls: one('getVnetHdrSize', d.handle), result: 10 }) },
  setVnetHdrSize: {
    args: fc.tuple(hdrSizeField),
    model: ([v], d) => {
      const n = mVnetHdrSize(v, 'size')
      if (!d.vnetHdr) throw refuse(VALUE, 'size')
      return { calls: one('setVnetHdrSize', d.handle, n) }
    },
  },
  setOffloads: {
    args: fc.tuple(offloadsField),
    model: ([v], d) => {
      const bits = mOffloads(v, 'offloads')
      if (bits !== 0 && !d.vnetHdr) throw refuse(VALUE, 'offloads')
      return { calls: one('setOffloads', d.handle, bits), result: bitsToOffloads(bits) }
    },
  },
  setQueueEnabled: {
    args: fc.tuple(int(0, 3), boolField),
    model: ([i, on], d) => {
      if (!d.multiQueue) throw refuse(VALUE, 'index')
      const index = mInt(i, 'index', 0, d.queues - 1)
      return { calls: one('setQueueEnabled', d.handle, index, mBool(on, 'enabled')) }
    },
  },
  setPersist: {
    args: fc.tuple(boolField),
    model: ([v], d) => ({ calls: one('setPersist', d.handle, mBool(v, 'persist')) }),
  },
  setOwner: {
    args: fc.tuple(int(0, MAX_ID)),
    model: ([v], d) => ({ calls: one('setOwner', d.handle, mInt(v, 'uid', 0, MAX_ID)) }),
  },
  setGroup: {
    args: fc.tuple(int(0, MAX_ID)),
    model: ([v], d) => ({ calls: one('setGroup', d.handle, mInt(v, 'gid', 0, MAX_ID)) }),
  },
  setProxyArp: onMethod('setProxyArp'),
  setProxyNdp: onMethod('setProxyNdp'),
  setForwarding: onMethod('setForwarding'),
  setCarrier: onMethod('setCarrier'),
  setTxQueueLen: {
    args: fc.tuple(int(0, MAX_TX_QUEUE_LEN)),
    model: ([v], d) => ({ calls: one('setTxQueueLen', d.handle, mInt(v, 'len', 0, MAX_TX_QUEUE_LEN)) }),
  },
  setBridgePort: {
    args: fc.tuple(optionsArb(BRIDGE_PORT_FIELDS, 4)),
    model: ([v], d) => {
      const o = mSnapshot(v, 'flags', BRIDGE_PORT_KEYS)
      const flags = stage(
        ...BRIDGE_PORT_KEYS.map((k) => () => (get(o, k).k === 'undef' ? null : mBool(get(o, k), `flags.${k}`))),
      )
      const [isolated, learning, unicastFlood, hairpin] = flags
      return { calls: one('setBridgePort', d.handle, { isolated, learning, unicastFlood, hairpin }) }
    },
  },
}

const methodCallArb = fc
  .constantFrom(...Object.keys(METHODS))
  .chain((name) => fc.record({ name: fc.constant(name), args: METHODS[name].args }))

/** Open a fake device and remember its handle. */
function fakeDevice(s: Omit<DevSpec, 'closed'>): TapDevice {
  const d = openTap({ queues: s.queues, vnetHdr: s.vnetHdr, vhost: s.vhost })
  handles.set(d, lastHandle)
  return d
}

test.serial(
  'every TapDevice method refuses bad arguments before the addon and passes good ones on exactly',
  async (t) => {
    await withFakeNative(() =>
      fc.assert(
        fc.property(devSpecArb, devSpecsArb, methodCallArb, (spec, pool, { name, args }) => {
          const dev = fakeDevice(spec)
          const ctx = makeCtx(pool)
          try {
            const info = devInfo(dev)
            checkSync(
              `method ${name}`,
              ctx,
              () => METHODS[name].model(args, info),
              () =>
                (dev as unknown as Record<string, (...a: unknown[]) => unknown>)[name](
                  ...args.map((a) => materialize(a, ctx)),
                ),
            )
          } finally {
            dev.close()
            closeCtx(ctx)
          }
        }),
        fcParams(RUNS * 4),
      ),
    )
    const summary = [...stats]
      .filter(([k]) => k.startsWith('method '))
      .map(([k, s]) => `${k.slice(7)} ${s.ok}/${s.refused}`)
    t.log(`accepted/refused: ${summary.join(', ')}`)
    for (const name of Object.keys(METHODS)) t.true(stats.has(`method ${name}`), `${name} was exercised`)
  },
)

test.serial(
  'use after close: every method of a closed device throws ERR_VMTAP_CLOSED (or the argument error) and never reaches the addon',
  async (t) => {
    await withFakeNative(() =>
      fc.assert(
        fc.property(
          devSpecArb,
          devSpecsArb,
          methodCallArb,
          fc.constantFrom('close', 'closeAsync', 'closeAll'),
          (spec, pool, { name, args }, how) => {
            const dev = fakeDevice(spec)
            const info = devInfo(dev)
            if (how === 'close') dev.close()
            else if (how === 'closeAsync') void dev.closeAsync()
            else void closeAll([dev])
            assert.ok(dev.closed)
            const ctx = makeCtx(pool)
            const expected = oracle(() => METHODS[name].model(args, info))
            calls.length = 0
            let error: unknown
            try {
              ;(dev as unknown as Record<string, (...a: unknown[]) => unknown>)[name](
                ...args.map((a) => materialize(a, ctx)),
              )
            } catch (e) {
              error = e
            }
            assert.deepEqual(calls, [], 'a closed device must not reach the addon')
            if (expected instanceof Refused) {
              assertRefusal(error, expected)
            } else {
              assert.ok(error instanceof Error, `${name} on a closed device did not throw`)
              assert.equal((error as NodeJS.ErrnoException).code, 'ERR_VMTAP_CLOSED')
              assert.ok(!(error instanceof TapError))
              assert.ok(error.message.includes(info.ifname) && /closed/.test(error.message), error.message)
            }
            count('closed', !(expected instanceof Refused))
            // closing again is a no-op, async closing resolves, closeAll skips it
            calls.length = 0
            dev.close()
            dev[Symbol.dispose]()
            void dev.closeAsync()
            void closeAll([dev])
            assert.deepEqual(calls, [], 'closing a closed device again must not reach the addon')
            closeCtx(ctx)
          },
        ),
        fcParams(RUNS * 2),
      ),
    )
    const s = stats.get('closed')!
    t.log(`closed device: ${s.ok} ERR_VMTAP_CLOSED, ${s.refused} argument errors first`)
    t.true(s.ok > 0)
  },
)

test.serial(
  'closing a closed device: close() is a no-op, closeAsync() and Symbol.asyncDispose resolve, closeAll skips it, handOff refuses it',
  async (t) => {
    await withFakeNative(async () => {
      const dev = fakeDevice({ queues: 2, vnetHdr: true, vhost: false })
      const other = fakeDevice({ queues: 1, vnetHdr: true, vhost: false })
      const otherHandle = handles.get(other)
      dev.close()
      calls.length = 0
      t.notThrows(() => dev.close())
      await t.notThrowsAsync(dev.closeAsync())
      await t.notThrowsAsync(dev[Symbol.asyncDispose]())
      await t.notThrowsAsync(closeAll([dev, dev]))
      t.deepEqual(calls, [], 'nothing reached the addon')
      await closeAll([dev, other, other])
      t.deepEqual(calls, [{ fn: 'closeAll', args: [[otherHandle], 128] }], 'closeAll passed only the open device, once')
      t.true(other.closed)
      const e = t.throws(() => handOff(dev), { instanceOf: TypeError }) as NodeJS.ErrnoException
      t.is(e.code, 'ERR_INVALID_ARG_VALUE')
      t.regex(e.message, /closed/)
      t.throws(() => handOff([other]), { code: 'ERR_INVALID_ARG_VALUE' })
    })
  },
)

// ---------------------------------------------------------------------------
// Module functions: deleteTap, hostMacFor, getTunFeatures, closeAll
// ---------------------------------------------------------------------------

test.serial(
  'deleteTap, hostMacFor, getTunFeatures, probeFeatures, checkOpenTapOptions: the documented refusals, or exactly the addon call',
  async (t) => {
    const fns = {
      deleteTap: fc.tuple(bridgeField, optionsArb({ tunPath: pathField, netns: OPEN_FIELDS.netns }, 2)),
      hostMacFor: fc.tuple(macField),
      getTunFeatures: fc.tuple(int(0, 2 ** 31 - 1)),
      probeFeatures: fc.tuple(optionsArb({ tunPath: pathField, vhostPath: pathField, netns: OPEN_FIELDS.netns }, 3)),
      checkOpenTapOptions: fc.tuple(optionsArb(OPEN_FIELDS)),
    }
    const models: Record<keyof typeof fns, (a: Val[]) => Expect> = {
      deleteTap: ([name, options]) => {
        const n = mBridgeArg(name, 'name')
        const o = mSnapshot(options, 'options', ['tunPath', 'netns'])
        const tun = mPath(get(o, 'tunPath'), 'options.tunPath', '/dev/net/tun')
        return { calls: [{ fn: 'deleteTap', args: [n, tun, mNetnsOption(get(o, 'netns'))] }] }
      },
      hostMacFor: ([mac]) => {
        const m = mMac(mac, 'guestMac')
        return { calls: [], result: `${m.startsWith('fe') ? 'fa' : 'fe'}${m.slice(2)}` }
      },
      getTunFeatures: ([fd]) => ({
        calls: [{ fn: 'getTunFeatures', args: [mInt(fd, 'fd', 0, 2 ** 31 - 1)] }],
        result: FEATURES,
      }),
      probeFeatures: ([options]) => {
        const o = mSnapshot(options, 'options', ['tunPath', 'vhostPath', 'netns'])
        const tun = mPath(get(o, 'tunPath'), 'options.tunPath', '/dev/net/tun')
        const vhost = mPath(get(o, 'vhostPath'), 'options.vhostPath', '/dev/vhost-net')
        const netns = mNetnsOption(get(o, 'netns'))
        const has = (f: number) => (FEATURES & f) !== 0
        return {
          calls: [{ fn: 'probeFeatures', args: [tun, vhost, netns] }],
          result: {
            raw: FEATURES,
            tap: has(IFF_TAP),
            noPi: has(IFF_NO_PI),
            oneQueue: has(constants.IFF_ONE_QUEUE),
            vnetHdr: has(IFF_VNET_HDR),
            multiQueue: has(IFF_MULTI_QUEUE),
            vhostNet: false,
          },
        }
      },
      checkOpenTapOptions: ([options]) => {
        mOpen(options)
        return { calls: [], result: undefined }
      },
    }
    const impl: Record<keyof typeof fns, (...a: unknown[]) => unknown> = {
      deleteTap: deleteTap as never,
      hostMacFor: hostMacFor as never,
      getTunFeatures: getTunFeatures as never,
      probeFeatures: probeFeatures as never,
      checkOpenTapOptions: checkOpenTapOptions as never,
    }
    await withFakeNative(() =>
      fc.assert(
        fc.property(
          fc
            .constantFrom(...(Object.keys(fns) as (keyof typeof fns)[]))
            .chain((fn) => fc.record({ fn: fc.constant(fn), args: fns[fn] as fc.Arbitrary<Val[]> })),
          devSpecsArb,
          ({ fn, args }, pool) => {
            const ctx = makeCtx(pool)
            try {
              checkSync(
                fn,
                ctx,
                () => models[fn](args),
                () => impl[fn](...args.map((a) => materialize(a, ctx))),
              )
            } finally {
              closeCtx(ctx)
            }
          },
        ),
        fcParams(RUNS * 2),
      ),
    )
    for (const fn of Object.keys(fns)) {
      const s = stats.get(fn)
      t.truthy(s && s.ok > 0 && s.refused > 0, `${fn}: both outcomes exercised`)
      t.log(`${fn}: ${s?.ok} accepted, ${s?.refused} refused`)
    }
  },
)

/** Elements of an iterable argument as the spread operator sees them. */
function mIterate(v: Val, arg: string): Val[] {
  if (v.k === 'arr') return mElements(v, arg)
  if (v.k === 'iter') {
    if (v.via === 'throwing') throw unreadable(arg)
    return v.items
  }
  if (v.k === 'obj' && (v.wrap === 'proxyGetThrows' || v.wrap === 'proxyAllThrow' || v.wrap === 'revoked'))
    throw unreadable(arg)
  throw refuse(TYPE, arg)
}

function mCloseAll(devices: Val, options: Val, ctx: Ctx): Expect {
  const items = mIterate(devices, 'devices')
  stage(
    ...items.map((it, i) => () => {
      if (it.k !== 'dev') throw refuse(TYPE, `devices[${i}]`)
    }),
  )
  const o = mSnapshot(options, 'options', ['maxThreads'])
  const maxThreads =
    get(o, 'maxThreads').k === 'undef' ? 128 : mInt(get(o, 'maxThreads'), 'options.maxThreads', 1, 1024)
  const ids = [...new Set(items.map((it) => (it as { id: number }).id))].filter((id) => !ctx.specs[id].closed)
  const hs = ids.map((id) => handles.get(ctx.devs[id]))
  return { calls: hs.length ? [{ fn: 'closeAll', args: [hs, maxThreads] }] : [] }
}

const devRef = fc.integer({ min: 0, max: 3 }).map((id): Val => ({ k: 'dev', id }))
const devicesArb: fc.Arbitrary<Val> = fc.oneof(
  {
    weight: 8,
    arbitrary: arrOf(fc.oneof({ weight: 10, arbitrary: devRef }, { weight: 1, arbitrary: anyVal(1) }), {
      maxLength: 5,
    }),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        items: fc.array(devRef, { maxLength: 4 }),
        via: fc.constantFrom<'set' | 'generator' | 'throwing'>('set', 'generator', 'throwing'),
      })
      .map((r): Val => ({ k: 'iter', ...r })),
  },
  { weight: 2, arbitrary: anyVal(1) },
)

test.serial(
  'closeAll: any iterable and options, refused before the addon, or one addon call with each open device once',
  async (t) => {
    await withFakeNative(() =>
      fc.assert(
        fc.asyncProperty(
          devSpecsArb,
          devicesArb,
          optionsArb({ maxThreads: int(1, 1024) }, 2),
          async (specs, devices, options) => {
            const ctx = makeCtx(specs)
            try {
              const expected = oracle(() => mCloseAll(devices, options, ctx))
              await checkAsync(
                'closeAll',
                ctx,
                () => mCloseAll(devices, options, ctx),
                () => closeAll(materialize(devices, ctx) as never, materialize(options, ctx) as never),
              )
              const listed = new Set(
                devices.k === 'arr' || devices.k === 'iter'
                  ? devices.items.flatMap((it) => (it.k === 'dev' ? [it.id] : []))
                  : [],
              )
              ctx.devs.forEach((d, i) => {
                const shouldBeClosed = specs[i].closed || (!(expected instanceof Refused) && listed.has(i))
                assert.equal(d.closed, shouldBeClosed, `device ${i} closed: ${d.closed}`)
              })
            } finally {
              closeCtx(ctx)
            }
          },
        ),
        fcParams(),
      ),
    )
    const s = stats.get('closeAll')!
    t.log(`closeAll: ${s.ok} accepted, ${s.refused} refused`)
    t.true(s.ok > 0 && s.refused > 0)
  },
)

// ---------------------------------------------------------------------------
// The hand-off helpers
// ---------------------------------------------------------------------------

/** The materialized value a Val stands for (for comparing outputs by identity). */
function materialOf(v: Val, ctx: Ctx): unknown {
  if (v.k === 'prim') return v.v
  if (v.k === 'undef') return undefined
  return ctx.mat.get(v)
}

const STDIO_WORDS = ['inherit', 'pipe', 'ignore', 'overlapped', 'ipc']
function mStdio(v: Val, arg: string, ctx: Ctx): unknown {
  if (v.k === 'undef') return undefined
  if (v.k === 'prim') {
    const x = v.v
    if (x === null) return null
    if (typeof x === 'string') {
      if (STDIO_WORDS.includes(x)) return x
      throw refuse(VALUE, arg)
    }
    if (typeof x === 'number') return mInt(v, arg, 0, 2 ** 31 - 1)
    throw refuse(TYPE, arg)
  }
  if (v.k === 'fn') throw refuse(TYPE, arg)
  return materialOf(v, ctx)
}

/** A device argument's fd arrays, read once. */
function mDeviceArrays(d: Val, name: string, ctx: Ctx): { tap: Val[]; vhost: Val[] } {
  if (!isObj(d)) throw refuse(TYPE, name)
  const [tap, vhost] = stage(
    () => mGet(d, 'tapFds', name, ctx),
    () => mGet(d, 'vhostFds', name, ctx),
  )
  const revoked = (x: Val) => x.k === 'obj' && x.wrap === 'revoked' // Array.isArray throws for it
  if (revoked(tap) || revoked(vhost)) throw unreadable(name)
  if (tap.k !== 'arr' || vhost.k !== 'arr') throw refuse(TYPE, name)
  const [t, v] = stage(
    () => mElements(tap, name),
    () => mElements(vhost, name),
  )
  return { tap: t, vhost: v }
}

function mHandOff(devices: Val, options: Val, ctx: Ctx): Expect {
  if (devices.k === 'obj' && devices.wrap === 'revoked') throw unreadable('devices')
  const list = devices.k === 'arr' ? mElements(devices, 'devices') : [devices]
  if (list.length === 0) throw refuse(VALUE, 'devices')
  const o = mSnapshot(options, 'options', ['stdio'])
  const sv = get(o, 'stdio')
  let head: unknown[]
  if (sv.k === 'undef') head = ['inherit', 'inherit', 'inherit']
  else if (sv.k === 'arr') {
    const items = mElements(sv, 'options.stdio')
    if (items.length !== 3) throw refuse(VALUE, 'options.stdio')
    head = stage(...items.map((it, i) => () => mStdio(it, `options.stdio[${i}]`, ctx)))
  } else {
    const x = mStdio(sv, 'options.stdio', ctx)
    head = [x, x, x]
  }
  const stdio = [...head]
  const seen = new Set<number>()
  const handed = list.map((d, i) => {
    const name = `devices[${i}]`
    const { tap, vhost } = mDeviceArrays(d, name, ctx)
    const [closed, ifname] = stage(
      () => mGet(d, 'closed', name, ctx),
      () => mGet(d, 'ifname', name, ctx),
    )
    if (truthy(closed)) throw refuse(VALUE, name)
    if (tap.length === 0) throw refuse(VALUE, `${name}.tapFds`)
    if (vhost.length !== 0 && vhost.length !== tap.length) throw refuse(VALUE, `${name}.vhostFds`)
    const place = (v: Val, what: string) => {
      const fd = mInt(v, what, 0, 2 ** 31 - 1)
      if (seen.has(fd)) throw refuse(VALUE, what)
      seen.add(fd)
      stdio.push(fd)
      return stdio.length - 1
    }
    const tapFds = tap.map((v, q) => place(v, `${name}.tapFds[${q}]`))
    const vhostFds = vhost.map((v, q) => place(v, `${name}.vhostFds[${q}]`))
    return { ifname: materialOf(ifname, ctx), tapFds, vhostFds }
  })
  return { calls: [], result: { stdio, devices: handed, fds: handed.flatMap((h) => [...h.tapFds, ...h.vhostFds]) } }
}

function assertHandOffResult(
  actual: unknown,
  expected: { stdio: unknown[]; devices: { ifname: unknown; tapFds: number[]; vhostFds: number[] }[]; fds: number[] },
): void {
  const a = actual as typeof expected
  assert.ok(
    Object.isFrozen(a) && Object.isFrozen(a.devices) && Object.isFrozen(a.fds),
    'the result is frozen (stdio is a fresh plain array)',
  )
  assert.equal(a.stdio.length, expected.stdio.length, 'stdio length')
  for (const [i, s] of a.stdio.entries()) assert.ok(Object.is(s, expected.stdio[i]), `stdio[${i}]`)
  assert.deepEqual([...a.fds], expected.fds)
  assert.equal(a.devices.length, expected.devices.length)
  a.devices.forEach((d, i) => {
    assert.ok(Object.is(d.ifname, expected.devices[i].ifname), `devices[${i}].ifname`)
    assert.deepEqual([...d.tapFds], expected.devices[i].tapFds)
    assert.deepEqual([...d.vhostFds], expected.devices[i].vhostFds)
  })
}

const fdField = field(fc.integer({ min: 0, max: 60 }), fc.constantFrom(-1, 1.5, NaN, 2 ** 31, -0, '3', null, Infinity))
/** A device-like object: a {ifname, tapFds, vhostFds, closed} with 1-4 queues, often consistent. */
const handedArb: fc.Arbitrary<Val> = fc.integer({ min: 1, max: 4 }).chain((n) => {
  const fds = (len: number) => arrOf(fdField, { minLength: len, maxLength: len })
  const entry = (key: string, v: fc.Arbitrary<Val>) => fc.record({ key: fc.constant(key), how: howArb, v })
  return fc
    .tuple(
      entry('ifname', field(fc.stringMatching(/^[a-z]{1,4}[0-9]$/), fc.constantFrom(null, 5))),
      entry(
        'tapFds',
        fc.oneof(
          { weight: 8, arbitrary: fds(n) },
          { weight: 1, arbitrary: fds(0) },
          { weight: 1, arbitrary: anyVal(1) },
        ),
      ),
      entry(
        'vhostFds',
        fc.oneof(
          { weight: 5, arbitrary: fds(0) },
          { weight: 4, arbitrary: fds(n) },
          { weight: 1, arbitrary: arrOf(fdField) },
          { weight: 1, arbitrary: anyVal(0) },
        ),
      ),
      fc.option(entry('closed', field(fc.constant(false), fc.constantFrom(true, 1, 'yes', 0, null))), {
        nil: undefined,
      }),
      wrapArb,
      fc.array(fc.record({ key: fc.constantFrom(...ODD_KEYS), how: howArb, v: anyVal(0) }), { maxLength: 1 }),
    )
    .map(
      ([ifname, tapFds, vhostFds, closed, wrap, extra]): Val => ({
        k: 'obj',
        entries: [
          ifname,
          tapFds,
          vhostFds,
          ...(closed ? [closed] : []),
          ...extra.filter((e) => !['ifname', 'tapFds', 'vhostFds', 'closed'].includes(e.key)),
        ],
        wrap,
        proto: null,
      }),
    )
})
const handOffDevicesArb: fc.Arbitrary<Val> = fc.oneof(
  { weight: 4, arbitrary: handedArb },
  { weight: 2, arbitrary: devRef },
  {
    weight: 4,
    arbitrary: arrOf(
      fc.oneof(
        { weight: 5, arbitrary: handedArb },
        { weight: 3, arbitrary: devRef },
        { weight: 1, arbitrary: anyVal(1) },
      ),
      { maxLength: 3 },
    ),
  },
  { weight: 1, arbitrary: anyVal(1) },
)
const stdioEntryArb = field(
  fc.constantFrom<string | number | null>('inherit', 'pipe', 'ignore', 'overlapped', 'ipc', null, 0, 1, 2),
  fc.constantFrom<unknown>('bogus', 'INHERIT', '', -1, 1.5, true, 0n, 2 ** 31),
)
const handOffOptionsArb = optionsArb(
  {
    stdio: fc.oneof(
      stdioEntryArb,
      arrOf(stdioEntryArb, { minLength: 3, maxLength: 3 }),
      arrOf(stdioEntryArb, { maxLength: 5 }),
    ),
  },
  2,
)

test.serial(
  'handOff: any devices and options are refused with the documented error, or give the stdio array and the child-side numbers',
  async (t) => {
    await withFakeNative(() =>
      fc.assert(
        fc.property(devSpecsArb, handOffDevicesArb, handOffOptionsArb, (specs, devices, options) => {
          const ctx = makeCtx(specs)
          try {
            // Materialized first: the expected stdio holds the very objects given.
            const d = materialize(devices, ctx)
            const o = materialize(options, ctx)
            checkSync(
              'handOff',
              ctx,
              () => {
                const e = mHandOff(devices, options, ctx)
                return { calls: [], compare: (r) => assertHandOffResult(r, e.result as never) }
              },
              () => handOff(d as never, o as never),
            )
          } finally {
            closeCtx(ctx)
          }
        }),
        fcParams(RUNS * 2),
      ),
    )
    const s = stats.get('handOff')!
    t.log(`handOff: ${s.ok} accepted, ${s.refused} refused`)
    t.true(s.ok > 0 && s.refused > 0)
  },
)

/** Own enumerable string keys in [[OwnPropertyKeys]] order: array indices ascending, then insertion order. */
function ownKeyOrder(entries: Entry[]): Entry[] {
  const isIndex = (k: string) => /^(0|[1-9][0-9]*)$/.test(k) && Number(k) < 2 ** 32 - 1
  const idx = entries.filter((e) => isIndex(e.key)).sort((a, b) => Number(a.key) - Number(b.key))
  return [...idx, ...entries.filter((e) => !isIndex(e.key))]
}

/** The documented rule for a value put on a command line: a string or finite number without `,`, `=`, whitespace or control characters. */
function mPropValue(v: Val, arg: string): string {
  const x = primOf(v)
  const ok =
    v.k === 'prim' &&
    (typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x))) &&
    !/[,=\s\x00-\x1f\x7f]/.test(String(x))
  if (!ok) throw refuse(VALUE, arg)
  return String(x)
}

/** A record of extra parameters (deviceProps, extra): own enumerable string keys, each checked. */
function mRecord(v: Val, arg: string, keyOk: (k: string) => boolean): string {
  if (v.k === 'dev') throw new Refused([{ codes: [VALUE], arg }]) // its own keys (ifname, tapFds...) are not parameters
  if (v.k === 'prim' || v.k === 'fn' || v.k === 'arr' || v.k === 'undef') throw refuse(TYPE, arg)
  if (v.k !== 'obj') return ''
  if (v.wrap === 'revoked') throw unreadable(arg)
  if (v.wrap === 'proxyOwnKeysThrows' || v.wrap === 'proxyAllThrow') throw refuse(VALUE, arg)
  if (v.wrap === 'proxyGopdThrows' && v.entries.length)
    throw new Refused(v.entries.map((e) => ({ codes: [VALUE], arg: `${arg}.${e.key}` })))
  const visible = ownKeyOrder(v.entries.filter((e) => e.how !== 'hidden'))
  const values = stage(...visible.map((e) => () => ownRead(e, `${arg}.${e.key}`)))
  const parts = stage(
    ...visible.map((e, i) => () => {
      if (!keyOk(e.key)) throw refuse(VALUE, `${arg}.${e.key}`)
      return `,${e.key}=${mPropValue(values[i], `${arg}.${e.key}`)}`
    }),
  )
  return parts.join('')
}

function mHanded(d: Val, ctx: Ctx): { tap: number[]; vhost: number[] } {
  const { tap, vhost } = mDeviceArrays(d, 'device', ctx)
  if (tap.length === 0) throw refuse(VALUE, 'device.tapFds')
  if (vhost.length !== 0 && vhost.length !== tap.length) throw refuse(VALUE, 'device.vhostFds')
  const fds = stage(...[...tap, ...vhost].map((v) => () => mInt(v, 'device', 0, 2 ** 31 - 1)))
  return { tap: fds.slice(0, tap.length), vhost: fds.slice(tap.length) }
}

function mQemuId(v: Val): string {
  const id = mString(v, 'id')
  if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(id)) throw refuse(VALUE, 'id')
  return id
}

function mQemuNetdev(d: { tap: number[]; vhost: number[] }, id: string): string {
  const multi = d.tap.length > 1
  let s = `tap,id=${id},${multi ? 'fds' : 'fd'}=${d.tap.join(':')}`
  if (d.vhost.length) s += `,vhost=on,${multi ? 'vhostfds' : 'vhostfd'}=${d.vhost.join(':')}`
  return s
}

const QEMU_KEYS = ['id', 'mac', 'model', 'deviceProps']
function mQemuDevice(d: { tap: number[]; vhost: number[] }, options: Val, _ctx: Ctx): string {
  const o = mSnapshot(options, 'options', QEMU_KEYS)
  const id = mQemuId(get(o, 'id'))
  const mv = get(o, 'model')
  const model = mv.k === 'undef' ? 'virtio-net-pci' : mString(mv, 'options.model')
  if (!/^[A-Za-z0-9_.-]+$/.test(model)) throw refuse(VALUE, 'options.model')
  let s = `${model},netdev=${id}`
  if (get(o, 'mac').k !== 'undef') s += `,mac=${mMac(get(o, 'mac'), 'options.mac')}`
  if (d.tap.length > 1) s += `,mq=on,vectors=${2 * d.tap.length + 2}`
  if (get(o, 'deviceProps').k !== 'undef')
    s += mRecord(get(o, 'deviceProps'), 'options.deviceProps', (k) => /^[A-Za-z0-9_.-]+$/.test(k))
  return s
}

function mCloudHypervisor(d: { tap: number[]; vhost: number[] }, options: Val, _ctx: Ctx): string {
  const o = mSnapshot(options, 'options', ['mac', 'extra'])
  let s = `fd=[${d.tap.join(',')}],num_queues=${2 * d.tap.length}`
  if (get(o, 'mac').k !== 'undef') s += `,mac=${mMac(get(o, 'mac'), 'options.mac')}`
  if (get(o, 'extra').k !== 'undef')
    s += mRecord(get(o, 'extra'), 'options.extra', (k) => /^[a-z_]+$/.test(k) && k !== 'fd' && k !== 'num_queues')
  return s
}

const propsEntry = (keys: fc.Arbitrary<string>) =>
  fc.record({
    key: keys,
    how: howArb,
    v: field(
      fc.oneof(fc.stringMatching(/^[a-z0-9.]{0,6}$/), fc.integer({ min: 0, max: 99 })),
      fc.constantFrom<unknown>(
        'a,b',
        'a=b',
        'a b',
        'a\0b',
        'a\nb',
        'a\u007f',
        'a\u00a0b',
        NaN,
        Infinity,
        -Infinity,
        -0,
        1.5,
        true,
        null,
      ),
    ),
  })
const QEMU_FIELDS = {
  id: field(
    fc.stringMatching(/^[A-Za-z][A-Za-z0-9_.-]{0,6}$/),
    fc.constantFrom<unknown>('', '0net', 'net 0', 'net,0', 'net=0', 'né', '-x', '_x'),
  ),
  mac: macField,
  model: field(
    fc.constantFrom('virtio-net-pci', 'e1000', 'virtio-net-device'),
    fc.constantFrom<unknown>('', 'virtio net', 'a,b', 'x=y'),
  ),
  deviceProps: fc.oneof(
    {
      weight: 4,
      arbitrary: objOf(
        propsEntry(
          fc.oneof(
            fc.constantFrom('bus', 'addr', 'rombar', 'host_mtu', '0', '10'),
            fc.constantFrom('bad key', 'a,b', 'a=b', ''),
          ),
        ),
      ),
    },
    { weight: 1, arbitrary: anyVal(1) },
  ),
}
/** QEMU options: usually with an id (it is required), sometimes anything. */
const qemuOptionsArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(
        fc.record({ key: fc.constant('id'), how: fc.constant<How>('value'), v: QEMU_FIELDS.id }),
        objOf(entriesFor(QEMU_FIELDS), { maxLength: 3 }),
      )
      .map(
        ([id, rest]): Val =>
          rest.k === 'obj' ? { ...rest, entries: [id, ...rest.entries.filter((e) => e.key !== 'id')] } : rest,
      ),
  },
  { weight: 1, arbitrary: optionsArb(QEMU_FIELDS, 4) },
)
const chOptionsArb = optionsArb(
  {
    mac: macField,
    extra: fc.oneof(
      {
        weight: 4,
        arbitrary: objOf(
          propsEntry(
            fc.oneof(
              fc.constantFrom('id', 'mtu', 'iommu', 'host_mac'),
              fc.constantFrom('fd', 'num_queues', 'Id', 'a-b', ''),
            ),
          ),
        ),
      },
      { weight: 1, arbitrary: anyVal(1) },
    ),
  },
  3,
)
const handedDeviceArb = fc.oneof(
  { weight: 8, arbitrary: handedArb },
  { weight: 1, arbitrary: devRef },
  { weight: 1, arbitrary: anyVal(1) },
)

test.serial(
  'qemuNetdev, qemuDevice, qemuArgs, cloudHypervisorNet, cloudHypervisorArgs: refused with the documented error, or exactly the documented string',
  async (t) => {
    const helpers = {
      qemuNetdev: {
        args: fc.tuple(
          handedDeviceArb,
          field(
            fc.stringMatching(/^[A-Za-z][A-Za-z0-9_.-]{0,6}$/),
            fc.constantFrom<unknown>('', '0net', 'net,0', 'a b', 'né'),
          ),
        ),
        model: ([d, id]: Val[], ctx: Ctx) => {
          const h = mHanded(d, ctx)
          return mQemuNetdev(h, mQemuId(id))
        },
        impl: qemuNetdev as (...a: unknown[]) => unknown,
      },
      qemuDevice: {
        args: fc.tuple(handedDeviceArb, qemuOptionsArb),
        model: ([d, o]: Val[], ctx: Ctx) => mQemuDevice(mHanded(d, ctx), o, ctx),
        impl: qemuDevice as (...a: unknown[]) => unknown,
      },
      qemuArgs: {
        args: fc.tuple(handedDeviceArb, qemuOptionsArb),
        model: ([d, o]: Val[], ctx: Ctx) => {
          const h = mHanded(d, ctx)
          // Options are read once, own properties only (a Proxy's get trap is never used). When
          // they are refused, the id's refusal may come first (the netdev is formatted first).
          try {
            mSnapshot(o, 'options', QEMU_KEYS)
          } catch (e) {
            if (e instanceof Refused) throw new Refused([...e.allowed, { codes: [TYPE, VALUE], arg: 'id' }])
            throw e
          }
          const id = mQemuId(get(mSnapshot(o, 'options', QEMU_KEYS), 'id'))
          return ['-netdev', mQemuNetdev(h, id), '-device', mQemuDevice(h, o, ctx)]
        },
        impl: qemuArgs as (...a: unknown[]) => unknown,
      },
      cloudHypervisorNet: {
        args: fc.tuple(handedDeviceArb, chOptionsArb),
        model: ([d, o]: Val[], ctx: Ctx) => mCloudHypervisor(mHanded(d, ctx), o, ctx),
        impl: cloudHypervisorNet as (...a: unknown[]) => unknown,
      },
      cloudHypervisorArgs: {
        args: fc.tuple(handedDeviceArb, chOptionsArb),
        model: ([d, o]: Val[], ctx: Ctx) => ['--net', mCloudHypervisor(mHanded(d, ctx), o, ctx)],
        impl: cloudHypervisorArgs as (...a: unknown[]) => unknown,
      },
    }
    type Name = keyof typeof helpers
    await withFakeNative(() =>
      fc.assert(
        fc.property(
          devSpecsArb,
          fc
            .constantFrom(...(Object.keys(helpers) as Name[]))
            .chain((fn) => fc.record({ fn: fc.constant(fn), args: helpers[fn].args as fc.Arbitrary<Val[]> })),
          (specs, { fn, args }) => {
            const ctx = makeCtx(specs)
            try {
              checkSync(
                fn,
                ctx,
                () => ({ calls: [], result: helpers[fn].model(args, ctx) }),
                () => helpers[fn].impl(...args.map((a) => materialize(a, ctx))),
              )
            } finally {
              closeCtx(ctx)
            }
          },
        ),
        fcParams(RUNS * 4),
      ),
    )
    for (const fn of Object.keys(helpers)) {
      const s = stats.get(fn)
      t.log(`${fn}: ${s?.ok} accepted, ${s?.refused} refused`)
      t.truthy(s && s.ok > 0 && s.refused > 0, `${fn}: both outcomes exercised`)
    }
  },
)

// ---------------------------------------------------------------------------
// Read once; prototype pollution
// ---------------------------------------------------------------------------

test.serial(
  'device arguments are read once: a getter that changes its answer cannot smuggle an unvalidated value',
  async (t) => {
    /** A device whose tapFds/vhostFds getters answer `first` once, then `later`. */
    const flipping = (
      key: 'tapFds' | 'vhostFds',
      first: unknown[],
      later: unknown[],
      base: Record<string, unknown>,
    ) => {
      let reads = 0
      return Object.defineProperty({ ...base }, key, {
        enumerable: true,
        get: () => (reads++ === 0 ? first : later),
      })
    }
    const base = { ifname: 'vm0', tapFds: [3], vhostFds: [], closed: false }
    const evil = ['3,script=/tmp/x']
    const outputs: unknown[] = []
    const tryIt = (f: () => unknown) => {
      try {
        outputs.push(f())
      } catch (e) {
        t.true(
          ['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE'].includes(
            (e as NodeJS.ErrnoException).code!,
          ),
          String(e),
        )
      }
    }
    tryIt(() => qemuNetdev(flipping('tapFds', [3], evil, base) as never, 'n0'))
    tryIt(() => qemuDevice(flipping('tapFds', [3], evil, base) as never, { id: 'n0' }))
    tryIt(() => qemuArgs(flipping('tapFds', [3], evil, base) as never, { id: 'n0' }))
    tryIt(() => cloudHypervisorNet(flipping('tapFds', [3], evil, base) as never))
    tryIt(() => handOff(flipping('tapFds', [3], evil, base) as never).stdio)
    tryIt(() => handOff(flipping('vhostFds', [], [7, 8, 9], base) as never).stdio)
    tryIt(() => qemuNetdev(flipping('vhostFds', [], [7, 8, 9], base) as never, 'n0'))
    const text = JSON.stringify(outputs)
    t.false(text.includes('script'), `an unvalidated fd list went through: ${text}`)
    t.false(text.includes('7'), `a vhost fd list of another length went through: ${text}`)
  },
)

const POISON: Record<string, unknown> = {
  name: 'a/b',
  queues: 'x',
  vnetHdr: 'yes',
  vhost: 7,
  tunPath: 'rel',
  vhostPath: 5,
  exclusive: 'no',
  uniqueName: 1,
  persist: 'x',
  owner: -1,
  group: 1.5,
  vnetHdrSize: 11,
  offloads: { gso: true },
  mtu: 1,
  mac: '01:00:00:00:00:00',
  bridge: '%d',
  up: 'up',
  csum: 'x',
  tso4: 1,
  maxThreads: 0,
  stdio: 'bogus',
  extra: { fd: 3 },
  deviceProps: 5,
  model: 'a b',
}

test.serial(
  'a polluted Object.prototype changes nothing: valid calls give the same addon calls and results',
  async (t) => {
    const proto = Object.prototype as Record<string, unknown>
    const pollute = (keys: string[]) => {
      for (const k of keys)
        Object.defineProperty(proto, k, { value: POISON[k], configurable: true, writable: true, enumerable: true })
    }
    const clean = (keys: string[]) => {
      for (const k of keys) delete proto[k]
    }
    const withDevice = (f: (d: TapDevice) => unknown) => {
      const d = fakeDevice({ queues: 1, vnetHdr: true, vhost: false })
      try {
        return f(d)
      } finally {
        d.close()
      }
    }
    const cases: [string, () => unknown][] = [
      ['openTap', () => openTap({ name: 'vm%d', queues: 2 }).close()],
      ['configure', () => withDevice((d) => d.configure({ mtu: 9000 }))],
      ['setOffloads', () => withDevice((d) => d.setOffloads({ csum: true, tso4: true }))],
      ['deleteTap', () => deleteTap('vm0', {})],
      ['closeAll', () => closeAll([fakeDevice({ queues: 1, vnetHdr: true, vhost: false })], {})],
      ['handOff', () => handOff({ ifname: 'vm0', tapFds: [5, 6], vhostFds: [], closed: false }, {}).stdio],
      ['qemuDevice', () => qemuDevice({ ifname: 'vm0', tapFds: [3, 4], vhostFds: [] }, { id: 'n0' })],
      ['cloudHypervisorNet', () => cloudHypervisorNet({ ifname: 'vm0', tapFds: [3, 4], vhostFds: [] }, {})],
    ]
    await withFakeNative(() =>
      fc.assert(
        fc.property(fc.constantFrom(...cases), fc.subarray(Object.keys(POISON), { minLength: 1 }), ([, f], keys) => {
          const run = () => {
            calls.length = 0
            const r = f()
            const shown =
              r instanceof TapDevice
                ? { ifnameKind: r.ifname.replace(/[0-9]+/g, 'N'), fds: r.tapFds.length }
                : r instanceof Promise
                  ? 'promise'
                  : r
            // handles and fake fd numbers differ between the two runs; the rest must not
            const mask = (k: string, v: unknown) => (k === 'fakeHandle' ? 0 : v)
            return JSON.parse(JSON.stringify({ r: shown, calls }, mask)) as unknown
          }
          const clean1 = run()
          pollute(keys)
          let polluted: ReturnType<typeof run>
          try {
            polluted = run()
          } finally {
            clean(keys)
          }
          assert.deepEqual(polluted, clean1)
        }),
        fcParams(RUNS / 2),
      ),
    )
    t.false(
      Object.keys(POISON).some((k) => k in {}),
      'Object.prototype is clean again',
    )
  },
)

// ---------------------------------------------------------------------------
// The real addon, inside a network namespace of the test's own
// ---------------------------------------------------------------------------

rootTest(
  'the addon itself: random arguments to every native function never crash the process and give only documented errors',
  async (t) => {
    const r = await withNetns((ns) =>
      runIn<{ runs: number; calls: Record<string, number>; codes: Record<string, number> }>(
        ns,
        'scenarios/reliability-native.ts',
        'nativeFuzz',
        [RUNS * 4, SEED ?? null],
      ),
    )
    t.log(`${r.runs} runs; calls: ${JSON.stringify(r.calls)}; outcomes: ${JSON.stringify(r.codes)}`)
    t.true(r.runs >= RUNS * 4)
  },
)

rootTest(
  'valid options on real devices: accepted by the kernel side too, and the device is what was asked for',
  async (t) => {
    type R = {
      runs: number
      opened: number
      names: string[]
      refused: Record<string, { name: string; code: string; syscall: string; ifname: string }>
    }
    const r = await withNetns((ns) =>
      runIn<R>(ns, 'scenarios/reliability-valid.ts', 'validOptionsOnRealDevices', [Math.min(RUNS, 150), SEED ?? null]),
    )
    t.log(`${r.runs} runs, ${r.opened} devices opened and checked, e.g. ${r.names.slice(0, 5).join(', ')}`)
    t.true(r.opened >= Math.min(RUNS, 150))
    // ECN without TSO, which the kernel's set_offload() would refuse, is refused before any syscall; nothing is left (the scenario checks).
    for (const k of ['ecnWithoutTso', 'persistEcn'])
      t.like(r.refused[k], { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }, k)
  },
)
