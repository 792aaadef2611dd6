// Handing TAP fds to a VMM, and the command-line arguments that name them.
//
// Node has no `pass_fds`: the only way to give a child an fd is the `stdio`
// array of child_process.spawn, whose entry i becomes fd i in the child
// (libuv dup2()s it there, without FD_CLOEXEC). `handOff()` builds that array
// and tells the child-side number of every tap and vhost fd; the formatters
// turn those numbers into QEMU and cloud-hypervisor arguments.

import type { StdioNull, StdioPipe } from 'node:child_process'

import { invalidType, invalidValue } from './errors'
import { snapshotOptions, validateInteger, validateMac } from './validate'

/** The part of a TapDevice the hand-off needs (a `TapDevice` is one). */
export interface HandOffSource {
  readonly ifname: string
  readonly tapFds: readonly number[]
  readonly vhostFds: readonly number[]
  readonly closed: boolean
}

/** One stdio entry of `spawn`: what the caller wants at fds 0-2. */
export type StdioEntry = StdioPipe | StdioNull | 'inherit' | 'ipc' | number | import('node:stream').Stream | null | undefined

export interface HandOffOptions {
  /**
   * The child's stdin/stdout/stderr: one value for all three (`'inherit'`,
   * `'pipe'`, `'ignore'`) or a 3-element array, as spawn takes. Default
   * `['inherit', 'inherit', 'inherit']`.
   */
  stdio?: StdioEntry | readonly [StdioEntry, StdioEntry, StdioEntry]
}

/** A device as the child will see it. */
export interface HandedDevice {
  readonly ifname: string
  /** Child-side fd numbers of the tap fds, in queue order. */
  readonly tapFds: readonly number[]
  /** Child-side fd numbers of the vhost fds (same count as tapFds, or none). */
  readonly vhostFds: readonly number[]
}

export interface HandOff {
  /** Pass as `spawn(cmd, args, { stdio })`. Entries 0-2 are the caller's choice. A fresh array each call. */
  readonly stdio: StdioEntry[]
  /** Per device, in the order given: where its fds land in the child. */
  readonly devices: readonly HandedDevice[]
  /** Every child-side fd, in order: device by device, tap fds then vhost fds. */
  readonly fds: readonly number[]
}

const STDIO_WORDS = new Set(['inherit', 'pipe', 'ignore', 'overlapped'])

function checkStdioEntry(v: unknown, name: string): StdioEntry {
  if (v === null || v === undefined) return v
  if (typeof v === 'string') {
    if (STDIO_WORDS.has(v) || v === 'ipc') return v as StdioEntry
    throw invalidValue(name, "must be 'inherit', 'pipe', 'ignore', 'ipc', an fd or a stream", v)
  }
  if (typeof v === 'number') return validateInteger(v, name, 0, 2 ** 31 - 1)
  if (typeof v === 'object') return v as StdioEntry
  throw invalidType(name, 'a stdio value', v)
}

/**
 * Build the `stdio` array that passes every fd of `devices` to a child, and
 * the child-side fd numbers (3, 4, ... in order: device by device, tap fds
 * then vhost fds). The parent's fds stay close-on-exec: only this explicit
 * hand-off passes them. After `spawn()` the parent may close its devices:
 * the child holds its own copies and the devices live until it exits.
 */
export function handOff(devices: HandOffSource | readonly HandOffSource[], options?: HandOffOptions): HandOff {
  const list = Array.isArray(devices) ? (devices as readonly HandOffSource[]) : [devices as HandOffSource]
  if (list.length === 0) throw invalidValue('devices', 'must name at least one device', devices)
  const o = snapshotOptions(options, 'options', ['stdio'])
  let head: StdioEntry[]
  if (o.stdio === undefined) head = ['inherit', 'inherit', 'inherit']
  else if (Array.isArray(o.stdio)) {
    if (o.stdio.length !== 3) throw invalidValue('options.stdio', 'must have exactly 3 entries (fds 0-2)', o.stdio)
    head = o.stdio.map((v, i) => checkStdioEntry(v, `options.stdio[${i}]`))
  } else {
    const v = checkStdioEntry(o.stdio, 'options.stdio')
    head = [v, v, v]
  }
  const stdio: StdioEntry[] = [...head]
  const handed: HandedDevice[] = []
  const seen = new Set<number>()
  list.forEach((d, i) => {
    const name = `devices[${i}]`
    if (d === null || typeof d !== 'object' || !Array.isArray(d.tapFds) || !Array.isArray(d.vhostFds)) {
      throw invalidType(name, 'a TapDevice', d)
    }
    if (d.closed) throw invalidValue(name, `is closed (${d.ifname}); its fd numbers may belong to something else now`, d.ifname)
    if (d.tapFds.length === 0) throw invalidValue(`${name}.tapFds`, 'is empty', d.tapFds)
    if (d.vhostFds.length !== 0 && d.vhostFds.length !== d.tapFds.length) {
      throw invalidValue(`${name}.vhostFds`, 'must be empty or one per tap fd', d.vhostFds)
    }
    const place = (fd: number, what: string) => {
      validateInteger(fd, what, 0, 2 ** 31 - 1)
      if (seen.has(fd)) throw invalidValue(what, 'is passed twice', fd)
      seen.add(fd)
      stdio.push(fd)
      return stdio.length - 1
    }
    const tapFds = d.tapFds.map((fd, q) => place(fd, `${name}.tapFds[${q}]`))
    const vhostFds = d.vhostFds.map((fd, q) => place(fd, `${name}.vhostFds[${q}]`))
    handed.push(Object.freeze({ ifname: d.ifname, tapFds: Object.freeze(tapFds), vhostFds: Object.freeze(vhostFds) }))
  })
  const fds = handed.flatMap((h) => [...h.tapFds, ...h.vhostFds])
  return Object.freeze({ stdio, devices: Object.freeze(handed), fds: Object.freeze(fds) })
}

// QEMU's id_wellformed(): a letter, then letters, digits, '-', '.', '_'.
const QEMU_ID_RE = /^[A-Za-z][A-Za-z0-9_.-]*$/

function validateHanded(d: unknown, name: string): HandedDevice {
  const h = d as HandedDevice
  if (h === null || typeof h !== 'object' || !Array.isArray(h.tapFds) || !Array.isArray(h.vhostFds)) {
    throw invalidType(name, 'a device from handOff().devices', d)
  }
  if (h.tapFds.length === 0) throw invalidValue(`${name}.tapFds`, 'is empty', h.tapFds)
  if (h.vhostFds.length !== 0 && h.vhostFds.length !== h.tapFds.length) {
    throw invalidValue(`${name}.vhostFds`, 'must be empty or one per tap fd (QEMU requires as many vhostfds as fds)', h.vhostFds)
  }
  for (const fd of [...h.tapFds, ...h.vhostFds]) validateInteger(fd, `${name} fd`, 0, 2 ** 31 - 1)
  return h
}

export interface QemuNetOptions {
  /** The netdev id (QEMU id syntax: a letter, then letters, digits, `-._`). */
  id: string
  /** The guest MAC for `-device`. */
  mac?: string
  /** The NIC model. Default `virtio-net-pci`. */
  model?: string
  /** Extra `-device` properties, e.g. `{ bus: 'pci.0', addr: '0x5' }`. */
  deviceProps?: Readonly<Record<string, string | number>>
}

/**
 * The `-netdev` value for a handed device: `tap,id=ID,fd=N` for one queue,
 * `tap,id=ID,fds=a:b:c` for several, plus `vhost=on,vhostfd(s)=...` when it
 * has vhost fds. QEMU counts queues from the fds (it refuses `queues=` with
 * `fds=`) and reads vnet_hdr from the fds.
 */
export function qemuNetdev(device: HandedDevice, id: string): string {
  const d = validateHanded(device, 'device')
  if (typeof id !== 'string') throw invalidType('id', 'of type string', id)
  if (!QEMU_ID_RE.test(id)) throw invalidValue('id', 'must start with a letter and contain only letters, digits, -, . and _', id)
  const multi = d.tapFds.length > 1
  let s = `tap,id=${id},${multi ? 'fds' : 'fd'}=${d.tapFds.join(':')}`
  if (d.vhostFds.length) s += `,vhost=on,${multi ? 'vhostfds' : 'vhostfd'}=${d.vhostFds.join(':')}`
  return s
}

/** The `-device` value: `virtio-net-pci,netdev=ID[,mac=...][,mq=on,vectors=2N+2]`. */
export function qemuDevice(device: HandedDevice, options: QemuNetOptions): string {
  const d = validateHanded(device, 'device')
  const o = snapshotOptions(options, 'options', ['id', 'mac', 'model', 'deviceProps'])
  qemuNetdev(d, o.id as string) // validates id
  const model = o.model === undefined ? 'virtio-net-pci' : o.model
  if (typeof model !== 'string') throw invalidType('options.model', 'of type string', model)
  if (!/^[A-Za-z0-9_.-]+$/.test(model)) throw invalidValue('options.model', 'must be a QEMU device name', model)
  let s = `${model},netdev=${o.id as string}`
  if (o.mac !== undefined) s += `,mac=${validateMac(o.mac, 'options.mac')}`
  const n = d.tapFds.length
  if (n > 1) s += `,mq=on,vectors=${2 * n + 2}`
  if (o.deviceProps !== undefined) {
    if (o.deviceProps === null || typeof o.deviceProps !== 'object') throw invalidType('options.deviceProps', 'an object', o.deviceProps)
    for (const [k, v] of Object.entries(o.deviceProps as Record<string, unknown>)) {
      if (!/^[A-Za-z0-9_.-]+$/.test(k)) throw invalidValue(`options.deviceProps.${k}`, 'has a bad property name', k)
      if ((typeof v !== 'string' && typeof v !== 'number') || /[,=\s]/.test(String(v))) {
        throw invalidValue(`options.deviceProps.${k}`, 'must be a string or number without commas, = or spaces', v)
      }
      s += `,${k}=${v}`
    }
  }
  return s
}

/** `['-netdev', qemuNetdev(...), '-device', qemuDevice(...)]`. */
export function qemuArgs(device: HandedDevice, options: QemuNetOptions): string[] {
  return ['-netdev', qemuNetdev(device, options?.id), '-device', qemuDevice(device, options)]
}

export interface CloudHypervisorNetOptions {
  /** The guest MAC. */
  mac?: string
  /** Extra `--net` parameters, e.g. `{ id: 'net0', mtu: 9000 }`. */
  extra?: Readonly<Record<string, string | number>>
}

/**
 * The `--net` value for cloud-hypervisor: `fd=[3,4],num_queues=4,mac=...`.
 * cloud-hypervisor counts queues, not queue pairs (num_queues = 2 × fds),
 * and uses no vhost-net fds (it does vhost-user), so vhost fds are ignored.
 */
export function cloudHypervisorNet(device: HandedDevice, options?: CloudHypervisorNetOptions): string {
  const d = validateHanded(device, 'device')
  const o = snapshotOptions(options, 'options', ['mac', 'extra'])
  let s = `fd=[${d.tapFds.join(',')}],num_queues=${2 * d.tapFds.length}`
  if (o.mac !== undefined) s += `,mac=${validateMac(o.mac, 'options.mac')}`
  if (o.extra !== undefined) {
    if (o.extra === null || typeof o.extra !== 'object') throw invalidType('options.extra', 'an object', o.extra)
    for (const [k, v] of Object.entries(o.extra as Record<string, unknown>)) {
      if (!/^[a-z_]+$/.test(k) || k === 'fd' || k === 'num_queues') throw invalidValue(`options.extra.${k}`, 'is not a parameter vmtap can add', k)
      if ((typeof v !== 'string' && typeof v !== 'number') || /[,=\s]/.test(String(v))) {
        throw invalidValue(`options.extra.${k}`, 'must be a string or number without commas, = or spaces', v)
      }
      s += `,${k}=${v}`
    }
  }
  return s
}

/** `['--net', cloudHypervisorNet(...)]`. */
export function cloudHypervisorArgs(device: HandedDevice, options?: CloudHypervisorNetOptions): string[] {
  return ['--net', cloudHypervisorNet(device, options)]
}

