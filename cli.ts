#!/usr/bin/env node
// The vmtap command (issue 5): TAP devices for VMs from the shell.
//
//   vmtap probe [--json]                 what this host supports
//   vmtap exec [options] -- CMD ARGS...  open TAP device(s), run CMD with the fds
//   vmtap create --persist --name N ...  a persistent device (like ip tuntap add)
//   vmtap delete N                       remove a persistent device
//
// Built only on the library's public API (./index); commander parses.
// Errors are one line on stderr, `vmtap: <message> (<code>)`, and the exit
// status says what kind: 2 usage (bad flags or values, including the
// library's TypeError/RangeError), 1 system (TapError, spawn failure), 127 a
// command that does not exist; `exec` otherwise exits with its command's
// status (128+N when it died of signal N).

import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { closeSync, constants as fsConstants, existsSync, openSync, readFileSync } from 'node:fs'
import { constants as osConstants, release } from 'node:os'
import { join } from 'node:path'

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'

import {
  checkOpenTapOptions,
  cloudHypervisorNet,
  constants,
  deleteTap,
  handOff,
  MAX_QUEUES,
  openTap,
  probeFeatures,
  probeOffloads,
  qemuDevice,
  qemuNetdev,
  TapError,
  type HandedDevice,
  type Offloads,
  type OpenTapOptions,
  type TapDevice,
} from './index'

// ---------------------------------------------------------------------------
// Exit statuses and errors
// ---------------------------------------------------------------------------

export const EXIT_SYSTEM = 1
export const EXIT_USAGE = 2
export const EXIT_NOT_FOUND = 127

/** A mistake in how vmtap was called: exit 2. */
class UsageError extends Error {
  readonly code: string
  constructor(message: string, code = 'ERR_USAGE') {
    super(message)
    this.code = code
  }
}

/** The command of `exec` could not be started. */
class SpawnError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly exitCode: number,
  ) {
    super(message)
  }
}

const ARG_ERROR_CODES = new Set(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE'])

/** The library's argument errors (TypeError/RangeError with a Node-style code). */
function isArgError(e: unknown): e is Error & { code: string } {
  return (e instanceof TypeError || e instanceof RangeError) && ARG_ERROR_CODES.has((e as { code?: string }).code ?? '')
}

/** One line: newlines (and the blanks around them) become '; '. */
function oneLine(s: string): string {
  return s.trim().replace(/\s*\n\s*/g, '; ')
}

/** The one line vmtap prints for `e`, and the exit status. */
export function describeError(e: unknown): { line: string; status: number } {
  const line = (message: string, code: string) => `vmtap: ${oneLine(message)} (${code})`
  if (e instanceof CommanderError) {
    // commander's "error: unknown option '--queue'\n(Did you mean --queues?)"
    const msg = e.message.replace(/^error: /, '').replace(/\n\((Did you mean [^)]*)\)/, '; $1')
    return { line: line(msg, 'ERR_USAGE'), status: EXIT_USAGE }
  }
  if (e instanceof UsageError) return { line: line(e.message, e.code), status: EXIT_USAGE }
  if (isArgError(e)) return { line: line(e.message, e.code), status: EXIT_USAGE }
  if (e instanceof SpawnError) return { line: line(e.message, e.code), status: e.exitCode }
  if (e instanceof TapError) return { line: line(e.message, e.code), status: EXIT_SYSTEM }
  const err = e as { message?: unknown; code?: unknown }
  const message = typeof err?.message === 'string' ? err.message : String(e)
  const code = typeof err?.code === 'string' ? err.code : 'ERR_VMTAP_CLI'
  return { line: line(message, code), status: EXIT_SYSTEM }
}

// The library names options as the API spells them ("options.vnetHdr");
// say which flag it was instead.
const FLAG_OF: Readonly<Record<string, string>> = {
  name: 'name',
  queues: 'queues',
  vnetHdr: 'vnet-hdr',
  vhost: 'vhost',
  bridge: 'bridge',
  mtu: 'mtu',
  mac: 'mac',
  up: 'up',
  persist: 'persist',
  owner: 'owner',
  group: 'group',
}

/** Rewrite `options.<key>` in a library argument error as the flag (or --net key) it came from. */
function renameOptions(e: unknown, netIndex: number | null): unknown {
  if (!isArgError(e)) return e
  const msg = e.message.replace(/\boptions\.([A-Za-z]+)/g, (whole, key: string) => {
    const flag = FLAG_OF[key]
    if (!flag) return whole
    return netIndex === null ? `--${flag}` : `--net[${netIndex}] ${flag}`
  })
  return new UsageError(msg, e.code)
}

// ---------------------------------------------------------------------------
// Value parsers (commander argParsers: InvalidArgumentError is a usage error)
// ---------------------------------------------------------------------------

/** A decimal integer; ranges are the library's to check. */
function parseInteger(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('It must be a non-negative decimal integer.')
  return Number(value)
}

type Tri = 'on' | 'off' | 'auto'
const TRI: readonly Tri[] = ['on', 'off', 'auto']

function parseTri(value: string, what: string): Tri {
  if (!(TRI as readonly string[]).includes(value)) throw new InvalidArgumentError(`${what} must be on, off or auto.`)
  return value as Tri
}

function triToOption(v: Tri): boolean | 'auto' {
  return v === 'auto' ? 'auto' : v === 'on'
}

function parseOnOff(value: string, what: string): boolean {
  if (['on', 'yes', 'true', '1'].includes(value)) return true
  if (['off', 'no', 'false', '0'].includes(value)) return false
  throw new InvalidArgumentError(`${what} must be on or off.`)
}

/** One NIC of `exec`, as the flags or one --net group describe it. */
export interface NicSpec {
  name?: string
  queues?: number
  vhost?: Tri
  vnetHdr?: Tri
  bridge?: string
  mtu?: number
  mac?: string
  up?: boolean
}

const NET_KEYS = ['name', 'queues', 'vhost', 'vnet-hdr', 'bridge', 'mtu', 'mac', 'up'] as const

/**
 * A --net group: `key=value,...` with the keys of NET_KEYS; `up` alone
 * means up=on. An empty group is a NIC with the defaults.
 */
export function parseNetSpec(spec: string): NicSpec {
  const nic: NicSpec = {}
  const seen = new Set<string>()
  for (const item of spec === '' ? [] : spec.split(',')) {
    const eq = item.indexOf('=')
    const key = eq < 0 ? item : item.slice(0, eq)
    const value = eq < 0 ? undefined : item.slice(eq + 1)
    if (!(NET_KEYS as readonly string[]).includes(key)) {
      throw new InvalidArgumentError(`Unknown key '${key}'; the keys are ${NET_KEYS.join(', ')} (key=value, separated by commas).`)
    }
    if (seen.has(key)) throw new InvalidArgumentError(`Key '${key}' is given twice.`)
    seen.add(key)
    if (value === undefined && key !== 'up') throw new InvalidArgumentError(`Key '${key}' needs a value (${key}=...).`)
    const v = value as string
    switch (key as (typeof NET_KEYS)[number]) {
      case 'name':
        nic.name = v
        break
      case 'queues':
        nic.queues = parseInteger(v)
        break
      case 'vhost':
        nic.vhost = parseTri(v, 'vhost')
        break
      case 'vnet-hdr':
        nic.vnetHdr = parseTri(v, 'vnet-hdr')
        break
      case 'bridge':
        nic.bridge = v
        break
      case 'mtu':
        nic.mtu = parseInteger(v)
        break
      case 'mac':
        nic.mac = v
        break
      case 'up':
        nic.up = value === undefined ? true : parseOnOff(v, 'up')
        break
    }
  }
  return nic
}

// ---------------------------------------------------------------------------
// Placeholders
// ---------------------------------------------------------------------------

export type Format = 'qemu' | 'cloud-hypervisor'

// {ifname} {fds} {fd} {vhostfds} {vhostfd} {netdev} {device}, optionally
// followed by a NIC index: {fds1}. Other braces are left alone.
const PLACEHOLDER_RE = /\{(ifname|fds|fd|vhostfds|vhostfd|netdev|device)(0|[1-9][0-9]*)?\}/g

/** The QEMU netdev id of NIC i. */
export function netdevId(i: number): string {
  return `net${i}`
}

/**
 * Check every placeholder against what the NICs will be, before any device
 * exists: the index names a NIC, {fd}/{vhostfd} need one queue,
 * {vhostfd(s)} need vhost=on, {device} needs the QEMU format.
 */
export function checkPlaceholders(args: readonly string[], nics: readonly NicSpec[], format: Format): void {
  for (const arg of args) {
    for (const m of arg.matchAll(PLACEHOLDER_RE)) {
      const [whole, what, index] = m
      const i = index === undefined ? 0 : Number(index)
      if (i >= nics.length) {
        const have = nics.length === 1 ? 'there is one NIC (index 0)' : `there are ${nics.length} NICs (indexes 0-${nics.length - 1})`
        throw new UsageError(`${whole} names NIC ${i}, but ${have}`)
      }
      const nic = nics[i]
      const queues = nic.queues ?? 1
      if ((what === 'fd' || what === 'vhostfd') && queues !== 1) {
        throw new UsageError(`${whole} is for a one-queue device, but NIC ${i} has ${queues} queues; use {${what}s${index ?? ''}}`)
      }
      if ((what === 'vhostfd' || what === 'vhostfds') && nic.vhost !== 'on') {
        throw new UsageError(`${whole} needs vhost=on for NIC ${i} (--vhost on); {netdev${index ?? ''}} adds the vhost fds whenever there are some`)
      }
      if (what === 'device' && format !== 'qemu') throw new UsageError(`${whole} is a QEMU -device value; it has no meaning with --format ${format}`)
    }
  }
}

/** The value of one placeholder for a handed device. */
function placeholderValue(what: string, d: HandedDevice, i: number, format: Format): string {
  switch (what) {
    case 'ifname':
      return d.ifname
    case 'fds':
      return d.tapFds.join(':')
    case 'fd':
      return String(d.tapFds[0])
    case 'vhostfds':
      return d.vhostFds.join(':')
    case 'vhostfd':
      return String(d.vhostFds[0])
    case 'netdev':
      return format === 'qemu' ? qemuNetdev(d, netdevId(i)) : cloudHypervisorNet(d)
    case 'device':
      return qemuDevice(d, { id: netdevId(i) })
  }
  throw new Error(`unknown placeholder ${what}`)
}

/** Replace the placeholders of `args` with what `devices` (from handOff) are in the child. */
export function substitute(args: readonly string[], devices: readonly HandedDevice[], format: Format): string[] {
  return args.map((arg) =>
    arg.replace(PLACEHOLDER_RE, (_whole, what: string, index: string | undefined) => {
      const i = index === undefined ? 0 : Number(index)
      return placeholderValue(what, devices[i], i, format)
    }),
  )
}

// ---------------------------------------------------------------------------
// probe
// ---------------------------------------------------------------------------

/** `vmtap probe --json`, schema 1. Every key is always present. */
export interface ProbeReport {
  schema: 1
  /** os.release() */
  kernel: string
  /** CAP_NET_ADMIN in the effective set (CapEff bit 12), or null when /proc/self/status is unreadable. */
  capNetAdmin: boolean | null
  tun: DeviceNode
  vhostNet: DeviceNode
  features: {
    /** TUNGETFEATURES, or null when /dev/net/tun cannot be opened. */
    raw: number | null
    /** The names of its set bits (IFF_*); a bit without a name as 0x.... */
    names: string[]
    tap: boolean
    noPi: boolean
    oneQueue: boolean
    vnetHdr: boolean
    multiQueue: boolean
  }
  /** Queues one device may have: 256 with IFF_MULTI_QUEUE, 1 without, null when unknown. */
  maxQueues: number | null
  /** Whether IFF_VNET_HDR is available (same as features.vnetHdr). */
  vnetHdr: boolean
  /** The offloads TUNSETOFFLOAD accepts, or null when they could not be probed. */
  offloads: Required<Offloads> | null
  /** Why offloads is null ("needs CAP_NET_ADMIN", or the error); null when it is not. */
  offloadsUnknownReason: string | null
}

export interface DeviceNode {
  path: string
  exists: boolean
  /** Whether this process can open it read-write. */
  openable: boolean
  /** The errno name of the failed open (ENOENT, EACCES...), or null. */
  error: string | null
}

/** The names of the bits of a TUNGETFEATURES value, lowest bit first. */
export function featureNames(raw: number): string[] {
  const byBit = new Map<number, string>()
  for (const [name, value] of Object.entries(constants)) {
    if (name.startsWith('IFF_') && value > 0 && (value & (value - 1)) === 0) byBit.set(value, name)
  }
  const names: string[] = []
  for (let bit = 1; bit !== 0 && bit <= raw; bit = (bit << 1) >>> 0) {
    if ((raw & bit) === 0) continue
    names.push(byBit.get(bit) ?? `0x${bit.toString(16).padStart(4, '0')}`)
  }
  return names
}

function probeNode(path: string): DeviceNode {
  const exists = existsSync(path)
  try {
    closeSync(openSync(path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK))
    return { path, exists, openable: true, error: null }
  } catch (e) {
    return { path, exists, openable: false, error: (e as NodeJS.ErrnoException).code ?? 'EIO' }
  }
}

const CAP_NET_ADMIN = 12

/** CapEff bit 12 of /proc/self/status, or null. */
export function hasCapNetAdmin(status?: string): boolean | null {
  let text = status
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/status', 'utf8')
    } catch {
      return null
    }
  }
  const m = text.match(/^CapEff:\s*([0-9a-fA-F]+)\s*$/m)
  if (!m) return null
  return ((BigInt(`0x${m[1]}`) >> BigInt(CAP_NET_ADMIN)) & 1n) === 1n
}

export function probe(): ProbeReport {
  const tun = probeNode('/dev/net/tun')
  const vhostNet = probeNode('/dev/vhost-net')
  const f = probeFeatures()
  const capNetAdmin = hasCapNetAdmin()
  let offloads: Required<Offloads> | null = null
  let offloadsUnknownReason: string | null = null
  if (capNetAdmin !== true) offloadsUnknownReason = 'needs CAP_NET_ADMIN'
  else if (!tun.openable) offloadsUnknownReason = `/dev/net/tun cannot be opened (${tun.error})`
  else {
    try {
      offloads = probeOffloads()
    } catch (e) {
      const { line } = describeError(e)
      offloadsUnknownReason = line.replace(/^vmtap: /, '')
    }
  }
  return {
    schema: 1,
    kernel: release(),
    capNetAdmin,
    tun,
    vhostNet,
    features: {
      raw: f.raw,
      names: f.raw === null ? [] : featureNames(f.raw),
      tap: f.tap,
      noPi: f.noPi,
      oneQueue: f.oneQueue,
      vnetHdr: f.vnetHdr,
      multiQueue: f.multiQueue,
    },
    maxQueues: f.raw === null ? null : f.multiQueue ? MAX_QUEUES : 1,
    vnetHdr: f.vnetHdr,
    offloads,
    offloadsUnknownReason,
  }
}

/** The human table: one `key  value` row per line, values aligned. */
export function probeTable(r: ProbeReport): string {
  const yesNo = (b: boolean) => (b ? 'yes' : 'no')
  const node = (n: DeviceNode) =>
    n.openable ? 'present, read/write' : n.exists ? `present, cannot be opened read/write (${n.error})` : `absent (${n.error})`
  const rows: [string, string][] = [
    ['kernel', r.kernel],
    ['CAP_NET_ADMIN', r.capNetAdmin === null ? 'unknown' : yesNo(r.capNetAdmin)],
    [r.tun.path, node(r.tun)],
    [r.vhostNet.path, node(r.vhostNet)],
    ['TUNGETFEATURES', r.features.raw === null ? 'unknown (/dev/net/tun cannot be opened)' : `0x${r.features.raw.toString(16).padStart(4, '0')} ${r.features.names.join(' ')}`],
    ['tap', r.features.raw === null ? 'unknown' : yesNo(r.features.tap)],
    ['multi-queue', r.maxQueues === null ? 'unknown' : r.features.multiQueue ? `yes, up to ${r.maxQueues} queues per device` : 'no (1 queue per device)'],
    ['vnet_hdr', r.features.raw === null ? 'unknown' : yesNo(r.vnetHdr)],
    ['vhost-net', r.vhostNet.openable ? 'yes' : 'no'],
    [
      'offloads',
      r.offloads === null
        ? `unknown (${r.offloadsUnknownReason})`
        : Object.entries(r.offloads)
            .filter(([, on]) => on)
            .map(([k]) => k)
            .join(' ') || 'none',
    ],
  ]
  const width = Math.max(...rows.map(([k]) => k.length)) + 2
  return rows.map(([k, v]) => `${k.padEnd(width)}${v}`).join('\n') + '\n'
}

// ---------------------------------------------------------------------------
// exec
// ---------------------------------------------------------------------------

export interface ExecFlags extends NicSpec {
  persist?: boolean
  format: Format
  /** The --net groups (undefined: none given). */
  net?: NicSpec[]
}

/** The NICs of an `exec`: one from the flags, or one per --net group with the flags as defaults. */
export function nicsOf(o: ExecFlags): NicSpec[] {
  const defaults: NicSpec = {}
  for (const k of ['queues', 'vhost', 'vnetHdr', 'bridge', 'mtu', 'up'] as const) {
    if (o[k] !== undefined) (defaults as Record<string, unknown>)[k] = o[k]
  }
  const groups = o.net ?? []
  let nics: NicSpec[]
  if (groups.length === 0) {
    nics = [{ ...defaults, ...(o.name !== undefined ? { name: o.name } : {}), ...(o.mac !== undefined ? { mac: o.mac } : {}) }]
  } else {
    if (o.name !== undefined) throw new UsageError('--name cannot be combined with --net; give each NIC its name=... in its --net group')
    if (o.mac !== undefined) throw new UsageError('--mac cannot be combined with --net; give each NIC its mac=... in its --net group')
    nics = groups.map((g) => ({ ...defaults, ...g }))
  }
  return nics.map((nic, i) => {
    const where = groups.length === 0 ? '--vhost' : `--net[${i}] vhost`
    if (o.format === 'cloud-hypervisor') {
      if (nic.vhost !== undefined && nic.vhost !== 'off') {
        throw new UsageError(`${where} ${nic.vhost}: cloud-hypervisor takes no vhost-net fds (it does virtio-net itself or vhost-user)`)
      }
      return { ...nic, vhost: 'off' }
    }
    return { ...nic, vhost: nic.vhost ?? 'auto' }
  })
}

function openOptions(nic: NicSpec): OpenTapOptions {
  const o: OpenTapOptions = {}
  if (nic.name !== undefined) o.name = nic.name
  if (nic.queues !== undefined) o.queues = nic.queues
  if (nic.vhost !== undefined) o.vhost = triToOption(nic.vhost)
  if (nic.vnetHdr !== undefined) o.vnetHdr = triToOption(nic.vnetHdr)
  if (nic.mtu !== undefined) o.mtu = nic.mtu
  if (nic.mac !== undefined) o.mac = nic.mac
  if (nic.bridge !== undefined) o.bridge = nic.bridge
  if (nic.up !== undefined) o.up = nic.up
  return o
}

const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

const SPAWN_ERRORS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  ENOEXEC: 'exec format error',
  ENOTDIR: 'not a directory',
  E2BIG: 'argument list too long',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in system',
  EAGAIN: 'resource temporarily unavailable',
}

function spawnError(file: string, e: NodeJS.ErrnoException): SpawnError {
  const code = e.code ?? 'EIO'
  if (code === 'ENOENT') return new SpawnError(`${file}: command not found`, code, EXIT_NOT_FOUND)
  return new SpawnError(`cannot run ${file}: ${SPAWN_ERRORS[code] ?? e.message}`, code, EXIT_SYSTEM)
}

/** The exit status of a shell for a child that ended with (code, signal). */
export function shellStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  const n = signal ? (osConstants.signals as Record<string, number>)[signal] : undefined
  return 128 + (n ?? 0)
}

function closeAll(taps: readonly TapDevice[]): void {
  for (const t of taps) {
    try {
      t.close()
    } catch {
      // closing is best effort on the way out
    }
  }
}

/** Open the NICs, run the command with their fds, wait for it; resolves with the exit status. */
export async function runExec(command: readonly string[], o: ExecFlags): Promise<number> {
  const [file, ...args] = command
  if (file === undefined || file === '') throw new UsageError('exec needs a command: vmtap exec [options] -- COMMAND [ARGS...]')
  const nics = nicsOf(o)
  checkPlaceholders(args, nics, o.format)

  // Catch the forwarded signals before anything is opened: one that arrives
  // while the devices are being set up is handled once this synchronous
  // section is over, and goes to the command (or nowhere, if it could not
  // start) instead of killing vmtap between spawn and setting up forwarding.
  let child: ChildProcess | undefined
  const forward = (sig: NodeJS.Signals) => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        child.kill(sig)
      } catch {
        // it is exiting
      }
    }
  }
  for (const sig of FORWARDED_SIGNALS) process.on(sig, forward)
  const unforward = () => {
    for (const sig of FORWARDED_SIGNALS) process.off(sig, forward)
  }

  const taps: TapDevice[] = []
  let started: ChildProcess
  try {
    // Check every NIC's options before opening the first, so a bad value in
    // the second group never creates (and bridges) the first device.
    nics.forEach((nic, i) => {
      try {
        checkOpenTapOptions(openOptions(nic))
      } catch (e) {
        throw renameOptions(e, (o.net ?? []).length === 0 ? null : i)
      }
    })
    nics.forEach((nic, i) => {
      try {
        taps.push(openTap(openOptions(nic)))
      } catch (e) {
        throw renameOptions(e, (o.net ?? []).length === 0 ? null : i)
      }
    })
    const handed = handOff(taps, { stdio: 'inherit' })
    const argv = substitute(args, handed.devices, o.format)
    try {
      started = child = spawn(file, argv, { stdio: handed.stdio as StdioOptions })
    } catch (e) {
      throw spawnError(file, e as NodeJS.ErrnoException)
    }
  } catch (e) {
    closeAll(taps)
    unforward()
    throw e
  }

  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException }>((resolve) => {
    started.once('error', (error) => resolve({ error }))
    started.once('exit', (code, signal) => resolve({ code, signal }))
  })

  if (started.pid === undefined) {
    // Spawning failed (ENOENT, EACCES...): the error event comes next.
    closeAll(taps)
    const r = await ended
    unforward()
    throw 'error' in r ? spawnError(file, r.error) : new SpawnError(`cannot run ${file}`, 'EIO', EXIT_SYSTEM)
  }

  // The command runs with its own copies of the fds. Make the devices
  // persistent now (only now: a failed start leaves nothing behind), then
  // close ours, so each device lives exactly as long as the command holds it.
  let persistError: unknown = null
  if (o.persist) {
    for (const t of taps) {
      try {
        t.setPersist(true)
      } catch (e) {
        persistError ??= e
      }
    }
  }
  closeAll(taps)
  if (persistError !== null) {
    // Rare (the fds are ours); do not leave a VM running that the caller
    // believes has a persistent NIC.
    forward('SIGTERM')
    await ended
    unforward()
    throw persistError
  }

  const r = await ended
  unforward()
  if ('error' in r) throw spawnError(file, r.error)
  return shellStatus(r.code, r.signal)
}

// ---------------------------------------------------------------------------
// create / delete
// ---------------------------------------------------------------------------

export interface CreateFlags {
  persist?: boolean
  name: string
  queues?: number
  owner?: number
  group?: number
  vnetHdr?: Tri
  mtu?: number
  mac?: string
  bridge?: string
  up?: boolean
}

/** Create a persistent device; returns its name (a %d template filled in). */
export function runCreate(o: CreateFlags): string {
  if (!o.persist) {
    throw new UsageError(
      'create needs --persist: a device that is not persistent vanishes as soon as vmtap exits; run a VM with a temporary device with vmtap exec instead',
    )
  }
  const opts: OpenTapOptions = { name: o.name, persist: true, exclusive: true }
  if (o.queues !== undefined) opts.queues = o.queues
  if (o.owner !== undefined) opts.owner = o.owner
  if (o.group !== undefined) opts.group = o.group
  if (o.vnetHdr !== undefined) opts.vnetHdr = triToOption(o.vnetHdr)
  if (o.mtu !== undefined) opts.mtu = o.mtu
  if (o.mac !== undefined) opts.mac = o.mac
  if (o.bridge !== undefined) opts.bridge = o.bridge
  if (o.up !== undefined) opts.up = o.up
  let tap: TapDevice
  try {
    tap = openTap(opts)
  } catch (e) {
    throw renameOptions(e, null)
  }
  tap.close()
  return tap.ifname
}

export function runDelete(name: string): void {
  try {
    deleteTap(name)
  } catch (e) {
    if (isArgError(e)) throw new UsageError(e.message.replace(/'name'/, 'NAME'), e.code)
    throw e
  }
}

// ---------------------------------------------------------------------------
// The program
// ---------------------------------------------------------------------------

function packageVersion(): string {
  for (const p of [join(__dirname, '..', 'package.json'), join(__dirname, 'package.json')]) {
    try {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'vmtap' && pkg.version) return pkg.version
    } catch {
      // try the next
    }
  }
  return 'unknown'
}

const PROBE_HELP = `
Reports TUNGETFEATURES (bits by name), the queue limit of a multi-queue device,
vnet_hdr, the offloads TUNSETOFFLOAD accepts (probed on a throwaway device: needs
CAP_NET_ADMIN, "unknown" without it), whether /dev/net/tun and /dev/vhost-net
exist and open read/write, CAP_NET_ADMIN (CapEff bit 12) and the kernel release.

--json prints one object (schema 1; every key is always present):
  schema                 1
  kernel                 string      os.release()
  capNetAdmin            bool|null   null: /proc/self/status unreadable
  tun, vhostNet          { path: string, exists: bool, openable: bool, error: string|null }
                                     error: errno name of the failed open (ENOENT, EACCES...)
  features               { raw: number|null, names: string[], tap, noPi, oneQueue,
                           vnetHdr, multiQueue: bool }   raw null: /dev/net/tun unusable
  maxQueues              number|null 256 with IFF_MULTI_QUEUE, 1 without, null unknown
  vnetHdr                bool
  offloads               { csum, tso4, tso6, ecn, ufo, uso4, uso6: bool } | null
  offloadsUnknownReason  string|null why offloads is null

Examples:
  vmtap probe
  vmtap probe --json | jq .features.multiQueue
`

const EXEC_HELP = `
Opens the TAP device(s), runs COMMAND with their fds and waits for it. COMMAND
gets vmtap's stdin, stdout and stderr, then the fds from 3 up: NIC by NIC, its
tap fds (one per queue) then its vhost-net fds. vmtap closes its own copies once
COMMAND has started, so a device lives exactly as long as COMMAND holds it; with
--persist it stays afterwards (remove it with vmtap delete NAME). A persistent
device that existed before (vmtap create) is attached to and never removed.

Placeholders, replaced in ARGS (also inside a word; other braces are left alone):
  {ifname}    the interface name, e.g. tap0
  {fds}       the tap fds as COMMAND sees them, colon-separated: 3:4:5:6
  {fd}        the tap fd of a one-queue device (an error with several queues)
  {vhostfds}  the vhost-net fds, colon-separated (needs --vhost on)
  {vhostfd}   the vhost-net fd of a one-queue device (needs --vhost on)
  {netdev}    the whole QEMU -netdev value, e.g. tap,id=net0,fds=3:4,vhost=on,vhostfds=5:6
              (vhost only when there are vhost fds); with --format cloud-hypervisor
              the --net value, e.g. fd=[3,4],num_queues=4
  {device}    a QEMU -device value: virtio-net-pci,netdev=net0,mq=on,vectors=10
  NIC i's netdev id is net<i>. Append i to address NIC i of several --net groups:
  {ifname1} {fds1} {netdev1}...; without a number they mean NIC 0.

Several NICs: one --net group per NIC, in order:
  --net KEY=VALUE[,KEY=VALUE...]   keys: name, queues, vhost, vnet-hdr, bridge,
                                   mtu, mac, up (or up=on|off)
  --queues, --vhost, --vnet-hdr, --bridge, --mtu and --up given outside a group
  are defaults for every group; --name and --mac (one device each) cannot be
  combined with --net.

--vhost defaults to auto (vhost-net fds when the host has them) with QEMU and to
off with --format cloud-hypervisor, which takes none. --mac is the host-side MAC
of the TAP device; the guest's MAC goes on QEMU's -device.

Exit status: COMMAND's; 128+N when it died of signal N; 127 when it does not
exist; 1 when vmtap fails (a TapError, a spawn failure); 2 for a usage error.
SIGINT, SIGTERM and SIGHUP are forwarded to COMMAND.

Examples:
  vmtap exec --queues 4 -- qemu-system-x86_64 -enable-kvm -m 1G -smp 4 -drive file=vm.qcow2 \\
      -netdev {netdev} -device virtio-net-pci,netdev=net0,mq=on,vectors=10
  vmtap exec --name vm%d --bridge br0 --up --queues 2 -- qemu-system-x86_64 ... \\
      -netdev {netdev} -device {device},mac=52:54:00:12:34:56
  vmtap exec --net name=lan%d,queues=2,bridge=br0,up --net name=wan%d -- qemu-system-x86_64 ... \\
      -netdev {netdev0} -device {device0} -netdev {netdev1} -device {device1}
  vmtap exec --format cloud-hypervisor --queues 2 -- cloud-hypervisor --kernel vmlinux ... --net {netdev}
  vmtap exec --name vm0 -- sh -c 'echo "{ifname} has fd {fd}"; ls -l /proc/self/fd'
`

const CREATE_HELP = `
Like "ip tuntap add ... mode tap", but multi-queue, vnet_hdr and ownership done
right. --persist is required: a device that is not persistent would vanish as soon
as vmtap exits (use vmtap exec to run a VM with a temporary one). The device must
not exist yet (EBUSY). Prints the device name (a %d in NAME filled in).

--queues Q with Q > 1 makes a multi-queue device; whoever attaches later chooses
how many queues (up to 256). --owner/--group let that uid/gid attach without
CAP_NET_ADMIN (a name: --owner "$(id -u qemu)").

Examples:
  vmtap create --persist --name vm0 --queues 4 --owner "$(id -u qemu)" --bridge br0 --up
  vmtap exec --name vm0 --queues 4 -- qemu-system-x86_64 ... -netdev {netdev} -device {device}
  vmtap delete vm0
`

const DELETE_HELP = `
Removes a persistent TAP device (TUNSETPERSIST 0): it goes now, or when the last
process holding it closes it. ENODEV when there is no such device.

Example:
  vmtap delete vm0
`

const MAIN_HELP = `
Exit status: 0 success, 1 system error (the kernel refused: TapError), 2 usage
error; vmtap exec exits with its command's status.

Examples:
  vmtap probe
  vmtap exec --queues 4 -- qemu-system-x86_64 ... -netdev {netdev} -device virtio-net-pci,netdev=net0,mq=on,vectors=10
  vmtap create --persist --name vm0 --queues 4 --owner 1000
  vmtap delete vm0
`

function tri(flags: string, description: string): Option {
  return new Option(flags, description).choices(TRI as string[])
}

/** The commander program; `run` parses and reports. */
export function buildProgram(onStatus: (status: number) => void): Command {
  const program = new Command('vmtap')
  program
    .description('Linux TAP devices for virtual machines: multi-queue, vnet_hdr, vhost-net fds handed to QEMU or cloud-hypervisor')
    .version(packageVersion(), '-V, --version')
    .enablePositionalOptions()
    .exitOverride()
    // Errors are reported as one line by run(); writeErr is only help shown
    // for an error (vmtap help nosuch), reported as one line too.
    .configureOutput({ outputError: () => {}, writeErr: () => {} })
    .addHelpText('after', MAIN_HELP)

  program
    .command('probe')
    .description('show what this host supports')
    .option('--json', 'print JSON (schema 1) instead of a table')
    .addHelpText('after', PROBE_HELP)
    .action((opts: { json?: boolean }) => {
      const r = probe()
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : probeTable(r))
      onStatus(0)
    })

  program
    .command('exec')
    .description('open TAP device(s) and run COMMAND with their fds; placeholders in ARGS name them')
    .usage('[options] -- COMMAND [ARGS...]')
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('--name <name>', "device name or template: vm0, vm%d (default: the kernel's tap%d)")
    .option('--queues <n>', 'queues (1-256); more than 1 makes a multi-queue device', parseInteger)
    .addOption(tri('--vhost <mode>', 'vhost-net fds; on: required, auto: when the host has them (default: auto; off for cloud-hypervisor)'))
    .addOption(tri('--vnet-hdr <mode>', 'IFF_VNET_HDR; on: required, auto: when the kernel offers it (default: auto)'))
    .option('--bridge <bridge>', 'enslave the device to this Linux bridge')
    .option('--mtu <mtu>', 'the MTU (68-65521)', parseInteger)
    .option('--mac <mac>', 'the host-side MAC of the TAP device (unicast)')
    .option('--up', 'bring the link up')
    .option('--persist', 'keep the device(s) after COMMAND exits (remove with vmtap delete)')
    .addOption(new Option('--format <vmm>', 'what {netdev} is').choices(['qemu', 'cloud-hypervisor']).default('qemu'))
    .option('--net <group>', 'one NIC per group, repeatable: KEY=VALUE,... (see below)', (v: string, prev: NicSpec[] | undefined) => [...(prev ?? []), parseNetSpec(v)])
    .passThroughOptions()
    .addHelpText('after', EXEC_HELP)
    .action(async (command: string[], opts: ExecFlags) => {
      onStatus(await runExec(command, opts))
    })

  program
    .command('create')
    .description('create a persistent TAP device (needs --persist)')
    .usage('--persist --name NAME [options]')
    .option('--persist', 'required: the device outlives vmtap')
    .requiredOption('--name <name>', 'device name, or a template like vm%d')
    .option('--queues <n>', 'more than 1 makes a multi-queue device', parseInteger)
    .option('--owner <uid>', 'this uid may attach without CAP_NET_ADMIN', parseInteger)
    .option('--group <gid>', 'members of this gid may attach without CAP_NET_ADMIN', parseInteger)
    .addOption(tri('--vnet-hdr <mode>', 'IFF_VNET_HDR; on: required, auto: when the kernel offers it (default: auto)'))
    .option('--mtu <mtu>', 'the MTU (68-65521)', parseInteger)
    .option('--mac <mac>', 'the host-side MAC (unicast)')
    .option('--bridge <bridge>', 'enslave the device to this Linux bridge')
    .option('--up', 'bring the link up')
    .addHelpText('after', CREATE_HELP)
    .action((opts: CreateFlags) => {
      process.stdout.write(`${runCreate(opts)}\n`)
      onStatus(0)
    })

  program
    .command('delete')
    .description('delete a persistent TAP device')
    .argument('<name>', 'the device')
    .addHelpText('after', DELETE_HELP)
    .action((name: string) => {
      runDelete(name)
      onStatus(0)
    })

  return program
}

/** Run the command line `argv` (without node and the script); resolves with the exit status. */
export async function run(argv: readonly string[]): Promise<number> {
  let status = 0
  const program = buildProgram((s) => (status = s))
  try {
    if (argv.length === 0) throw new UsageError("no command; the commands are probe, exec, create and delete (see 'vmtap --help')")
    await program.parseAsync([...argv], { from: 'user' })
    return status
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return 0 // --help, help, --version
    if (e instanceof CommanderError && e.code === 'commander.help') {
      // help for an error: no command, or `vmtap help nosuch`
      e = new UsageError("no command, or an unknown one; the commands are probe, exec, create and delete (see 'vmtap --help')")
    }
    const { line, status: s } = describeError(e)
    process.stderr.write(`${line}\n`)
    if (process.env.VMTAP_DEBUG && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`)
    return s
  }
}

if (require.main === module) {
  // `vmtap probe | head -1`: a reader that goes away is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') return
    process.stderr.write(`vmtap: cannot write to stdout: ${e.message} (${e.code ?? 'EIO'})\n`)
    process.exitCode = EXIT_SYSTEM
  })
  run(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status
    },
    (e) => {
      process.stderr.write(`vmtap: ${String(e)} (ERR_VMTAP_CLI)\n`)
      process.exitCode = EXIT_SYSTEM
    },
  )
}
