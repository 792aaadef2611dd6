// Handing TAP fds to a VMM, and the command-line arguments that name them.
//
// Node has no `pass_fds`: the only way to give a child an fd is the `stdio`
// array of child_process.spawn, whose entry i becomes fd i in the child
// (libuv dup2()s it there, without FD_CLOEXEC). `handOff()` builds that array
// and tells the child-side number of every tap and vhost fd; the formatters
// turn those numbers into QEMU and cloud-hypervisor arguments.

import type { StdioNull, StdioPipe } from 'node:child_process'

import { invalidType, invalidValue } from './errors'
import { copyArray, isArray, readProperty, snapshotOptions, validateInteger, validateMac } from './validate'

/** The part of a TapDevice the hand-off needs (a `TapDevice` is one). */
export interface HandOffSource {
  readonly ifname: string
  readonly tapFds: readonly number[]
  readonly vhostFds: readonly number[]
  readonly closed: boolean
  /** The MAC the guest NIC must use (a macvtap's, {@link TapDevice.mac}); null or absent when it is free. */
  readonly mac?: string | null
}

/** One stdio entry of `spawn`: what the caller wants at fds 0-2. */
export type StdioEntry =
  | StdioPipe
  | StdioNull
  | 'inherit'
  | 'ipc'
  | number
  | import('node:stream').Stream
  | null
  | undefined

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
  /**
   * The MAC the guest NIC must use, when the device dictates one (a macvtap); absent otherwise. The
   * formatters put it on the guest NIC unless their options give another.
   */
  readonly mac?: string
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
 * Read a device-like argument once: `tapFds` and `vhostFds` must be arrays
 * (copied, each element read once, so what is validated is what is used);
 * a throwing getter or Proxy trap is ERR_INVALID_ARG_VALUE.
 * @internal
 */
export function readDevice(
  d: unknown,
  name: string,
  expected: string,
  extra: readonly ('ifname' | 'closed' | 'mac')[],
) {
  if (d === null || typeof d !== 'object') throw invalidType(name, expected, d)
  const tapFds = readProperty(d, 'tapFds', `${name}.tapFds`)
  const vhostFds = readProperty(d, 'vhostFds', `${name}.vhostFds`)
  if (!isArray(tapFds, `${name}.tapFds`) || !isArray(vhostFds, `${name}.vhostFds`)) throw invalidType(name, expected, d)
  const out = {
    tapFds: copyArray(tapFds as unknown[], `${name}.tapFds`),
    vhostFds: copyArray(vhostFds as unknown[], `${name}.vhostFds`),
    ifname: undefined as unknown,
    closed: undefined as unknown,
    mac: undefined as string | undefined,
  }
  for (const k of extra) {
    if (k !== 'mac') {
      out[k] = readProperty(d, k, `${name}.${k}`)
      continue
    }
    // A device's own MAC for the guest: a macvtap's (null or absent: none).
    if (!hasMac(d)) continue
    const v = readProperty(d, k, `${name}.${k}`)
    if (v !== null && v !== undefined) out.mac = validateMac(v, `${name}.mac`)
  }
  return out
}

/**
 * Whether `d` has a `mac` of its own or from its class (a TapDevice's
 * getter), never one inherited from Object.prototype: a polluted prototype
 * must not put a MAC on a guest NIC. A Proxy trap that throws counts as none.
 */
function hasMac(d: object): boolean {
  try {
    for (let o: object | null = d; o !== null && o !== Object.prototype; o = Reflect.getPrototypeOf(o)) {
      if (Object.hasOwn(o, 'mac')) return true
    }
  } catch {
    // a hostile Proxy: no MAC
  }
  return false
}

/** A device must have tap fds, and vhost fds either none or one per tap fd. @internal */
export function checkFdCounts(
  d: { tapFds: readonly unknown[]; vhostFds: readonly unknown[] },
  name: string,
  why = '',
): void {
  if (d.tapFds.length === 0) throw invalidValue(`${name}.tapFds`, 'is empty', d.tapFds)
  if (d.vhostFds.length !== 0 && d.vhostFds.length !== d.tapFds.length) {
    throw invalidValue(`${name}.vhostFds`, `must be empty or one per tap fd${why}`, d.vhostFds)
  }
}

/**
 * Build the `stdio` array that passes every fd of `devices` to a child, and
 * the child-side fd numbers (3, 4, ... in order: device by device, tap fds
 * then vhost fds). The parent's fds stay close-on-exec: only this explicit
 * hand-off passes them. After `spawn()` the parent may close its devices:
 * the child holds its own copies and the devices live until it exits.
 */
export function handOff(devices: HandOffSource | readonly HandOffSource[], options?: HandOffOptions): HandOff {
  const list = isArray(devices, 'devices') ? copyArray(devices as readonly unknown[], 'devices') : [devices]
  if (list.length === 0) throw invalidValue('devices', 'must name at least one device', devices)
  const o = snapshotOptions(options, 'options', ['stdio'])
  let head: StdioEntry[]
  if (o.stdio === undefined) head = ['inherit', 'inherit', 'inherit']
  else if (isArray(o.stdio, 'options.stdio')) {
    const entries = copyArray(o.stdio as unknown[], 'options.stdio')
    if (entries.length !== 3) throw invalidValue('options.stdio', 'must have exactly 3 entries (fds 0-2)', o.stdio)
    head = entries.map((v, i) => checkStdioEntry(v, `options.stdio[${i}]`))
  } else {
    const v = checkStdioEntry(o.stdio, 'options.stdio')
    head = [v, v, v]
  }
  const stdio: StdioEntry[] = [...head]
  const handed: HandedDevice[] = []
  const seen = new Set<number>()
  list.forEach((source, i) => {
    const name = `devices[${i}]`
    const d = readDevice(source, name, 'a TapDevice', ['closed', 'ifname', 'mac'])
    if (d.closed)
      throw invalidValue(
        name,
        `is closed (${String(d.ifname)}); its fd numbers may belong to something else now`,
        d.ifname,
      )
    checkFdCounts(d, name)
    const place = (value: unknown, what: string) => {
      const fd = validateInteger(value, what, 0, 2 ** 31 - 1)
      if (seen.has(fd)) throw invalidValue(what, 'is passed twice', fd)
      seen.add(fd)
      stdio.push(fd)
      return stdio.length - 1
    }
    const tapFds = d.tapFds.map((fd, q) => place(fd, `${name}.tapFds[${q}]`))
    const vhostFds = d.vhostFds.map((fd, q) => place(fd, `${name}.vhostFds[${q}]`))
    const h: HandedDevice = {
      ifname: d.ifname as string,
      tapFds: Object.freeze(tapFds),
      vhostFds: Object.freeze(vhostFds),
    }
    handed.push(Object.freeze(d.mac === undefined ? h : { ...h, mac: d.mac }))
  })
  const fds = handed.flatMap((h) => [...h.tapFds, ...h.vhostFds])
  return Object.freeze({ stdio, devices: Object.freeze(handed), fds: Object.freeze(fds) })
}

// QEMU's id_wellformed(): a letter, then letters, digits, '-', '.', '_'.
const QEMU_ID_RE = /^[A-Za-z][A-Za-z0-9_.-]*$/

function validateHanded(d: unknown, name: string): HandedDevice {
  const h = readDevice(d, name, 'a device from handOff().devices', ['mac']) as unknown as HandedDevice
  checkFdCounts(h, name, ' (QEMU requires as many vhostfds as fds)')
  for (const fd of [...h.tapFds, ...h.vhostFds]) validateInteger(fd, `${name} fd`, 0, 2 ** 31 - 1)
  return h
}

export interface QemuNetOptions {
  /** The netdev id (QEMU id syntax: a letter, then letters, digits, `-._`). */
  id: string
  /**
   * The guest MAC for `-device`. Default: the device's own when it dictates one (a macvtap's: the guest
   * receives nothing with any other MAC), else QEMU's default.
   */
  mac?: string
  /** The NIC model. Default `virtio-net-pci`. */
  model?: string
  /** Extra `-device` properties, e.g. `{ bus: 'pci.0', addr: '0x5' }`. */
  deviceProps?: Readonly<Record<string, string | number>>
}

/** A QEMU id (netdev, device, fd name). @internal */
export function validateQemuId(id: unknown, name: string): string {
  if (typeof id !== 'string') throw invalidType(name, 'of type string', id)
  if (!QEMU_ID_RE.test(id))
    throw invalidValue(name, 'must start with a letter and contain only letters, digits, -, . and _', id)
  return id
}

/** A QEMU device (NIC model) name. @internal */
export function validateQemuDriver(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  if (!/^[A-Za-z0-9_.-]+$/.test(value)) throw invalidValue(name, 'must be a QEMU device name', value)
  return value
}

/** The `-netdev` value of a validated device. */
function netdevValue(d: HandedDevice, id: string): string {
  const multi = d.tapFds.length > 1
  let s = `tap,id=${id},${multi ? 'fds' : 'fd'}=${d.tapFds.join(':')}`
  if (d.vhostFds.length) s += `,vhost=on,${multi ? 'vhostfds' : 'vhostfd'}=${d.vhostFds.join(':')}`
  return s
}

/** The `-device` value of a validated device, from a snapshot of QemuNetOptions (validated here). */
function deviceValue(d: HandedDevice, o: Record<string, unknown>): string {
  const id = validateQemuId(o.id, 'id')
  const model = o.model === undefined ? 'virtio-net-pci' : validateQemuDriver(o.model, 'options.model')
  let s = `${model},netdev=${id}`
  const mac = o.mac !== undefined ? validateMac(o.mac, 'options.mac') : d.mac
  if (mac !== undefined) s += `,mac=${mac}`
  const n = d.tapFds.length
  if (n > 1) s += `,mq=on,vectors=${2 * n + 2}`
  if (o.deviceProps !== undefined) {
    for (const [k, v] of Object.entries(snapshotOptions(o.deviceProps ?? null, 'options.deviceProps', null))) {
      if (!/^[A-Za-z0-9_.-]+$/.test(k)) throw invalidValue(`options.deviceProps.${k}`, 'has a bad property name', k)
      s += `,${k}=${propValue(v, `options.deviceProps.${k}`)}`
    }
  }
  return s
}

const QEMU_KEYS = ['id', 'mac', 'model', 'deviceProps']

/**
 * The `-netdev` value for a handed device: `tap,id=ID,fd=N` for one queue,
 * `tap,id=ID,fds=a:b:c` for several, plus `vhost=on,vhostfd(s)=...` when it
 * has vhost fds. QEMU counts queues from the fds (it refuses `queues=` with
 * `fds=`) and reads vnet_hdr from the fds.
 */
export function qemuNetdev(device: HandedDevice, id: string): string {
  const d = validateHanded(device, 'device')
  return netdevValue(d, validateQemuId(id, 'id'))
}

/** The `-device` value: `virtio-net-pci,netdev=ID[,mac=...][,mq=on,vectors=2N+2]`. */
export function qemuDevice(device: HandedDevice, options: QemuNetOptions): string {
  const d = validateHanded(device, 'device')
  return deviceValue(d, snapshotOptions(options, 'options', QEMU_KEYS))
}

/** A property value for a command line: a string or a finite number without `,`, `=`, whitespace or control characters. */
function propValue(v: unknown, name: string): string {
  if (
    (typeof v !== 'string' && (typeof v !== 'number' || !Number.isFinite(v))) ||
    /[,=\s\x00-\x1f\x7f]/.test(String(v))
  ) {
    throw invalidValue(name, 'must be a string or finite number without commas, =, spaces or control characters', v)
  }
  return String(v)
}

/** `['-netdev', qemuNetdev(...), '-device', qemuDevice(...)]`, the device and options read once. */
export function qemuArgs(device: HandedDevice, options: QemuNetOptions): string[] {
  const d = validateHanded(device, 'device')
  const o = snapshotOptions(options, 'options', QEMU_KEYS)
  const dev = deviceValue(d, o) // validates the id too
  return ['-netdev', netdevValue(d, o.id as string), '-device', dev]
}

export interface CloudHypervisorNetOptions {
  /** The guest MAC. Default: the device's own when it dictates one (a macvtap's), else cloud-hypervisor's. */
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
  const mac = o.mac !== undefined ? validateMac(o.mac, 'options.mac') : d.mac
  if (mac !== undefined) s += `,mac=${mac}`
  if (o.extra !== undefined) {
    for (const [k, v] of Object.entries(snapshotOptions(o.extra ?? null, 'options.extra', null))) {
      if (!/^[a-z_]+$/.test(k) || k === 'fd' || k === 'num_queues')
        throw invalidValue(`options.extra.${k}`, 'is not a parameter vmtap can add', k)
      s += `,${k}=${propValue(v, `options.extra.${k}`)}`
    }
  }
  return s
}

/** `['--net', cloudHypervisorNet(...)]`. */
export function cloudHypervisorArgs(device: HandedDevice, options?: CloudHypervisorNetOptions): string[] {
  return ['--net', cloudHypervisorNet(device, options)]
}
