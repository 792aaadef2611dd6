// The host side of the hot-plug end-to-end test. Runs INSIDE a
// network namespace, as
//
//   ip netns exec NS node --import=tsx __test__/guest/hotplug-scenario.ts '<json HotplugConfig>'
//
// It boots the guest (init.sh, vmtap.mode=hotplug) with one single-queue NIC
// handed over as scenario.ts does (openTap + handOff + qemuArgs) and a QMP
// socket. When the guest is READY it connects to QMP (connectQmp), opens a
// multi-queue tap with its own subnet, hot-adds it (hotplugNic: getfd with
// SCM_RIGHTS per fd, netdev_add, device_add), closes its own copies, and
// follows the guest: eth1 appears with N queue pairs and pings the host while
// the host pings it. Then unplugNic (device_del, DEVICE_DELETED, netdev_del,
// closefd) and the checks: the host device is gone, QEMU holds no fd of it,
// QMP knows no such device or netdev, the guest saw eth1 go. Finally it
// releases the guest (a TCP connection over eth0 it closes), which powers
// off. One JSON line (HotplugResult) on stdout; the console goes to stderr.

import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  connectQmp,
  handOff,
  hotplugNic,
  openTap,
  qemuArgs,
  unplugNic,
  type HotpluggedNic,
  type QmpClient,
  type QmpEvent,
  type TapDevice,
} from '../../index'
import {
  guestCmdline,
  GuestConsole,
  ip,
  linkInfo,
  listen,
  ownFds,
  ping,
  runAsMain,
  tapFdNumbers,
  tunFdCount,
  type TunInfo,
  guestQemuArgs,
  watchExit,
} from './host'

export interface HotplugConfig {
  kernel: string
  initrd: string
  /** Guest vCPUs: virtio-net enables min(queue pairs, vCPUs) pairs. */
  smp: number
  /** Queues of the hot-plugged tap. */
  queues: number
  /** QEMU is killed after this long. */
  timeoutMs: number
  /** Pings each way through the hot-plugged NIC. */
  pings?: number
  qemu?: string
}

/** What QEMU and the host looked like at one moment. */
export interface Sample {
  /** The hot-plugged tap exists in the namespace. */
  deviceExists: boolean
  tun?: TunInfo
  /** QEMU's fds attached to the hot-plugged tap. */
  qemuTapFds: number
  /** QEMU's /dev/net/tun fds, all devices. */
  qemuTunFds: number
  /** /dev/net/tun or /dev/vhost-net fds this process holds. */
  ownTunFds: number
  /** QOM children of /machine/peripheral (the -device / device_add ids). */
  peripherals?: string[]
  /** HMP `info network`. */
  network?: string
}

export interface HotplugResult {
  error?: string
  qemuArgs: string[]
  /** The guest's "VMTAP" lines, in order. */
  events: string[]
  /** ms after QEMU started at which each guest event was seen. */
  eventTimes: Record<string, number>
  console: string
  qmpVersion?: unknown
  nic0?: { ifname: string }
  hotplug?: {
    ifname: string
    tapFds: number
    vhostFds: number
    nic: HotpluggedNic
    /** hotplugNic's duration, ms. */
    ms: number
    /** QEMU's fd numbers attached to the device after hotplugNic. */
    qemuFdNumbers: number[]
  }
  /** Right after hotplugNic returned and the parent's copies were closed. */
  afterHotplug?: Sample
  /** When the guest said HOTPLUG_UP (eth1 configured and up). */
  whilePlugged?: Sample
  unplug?: { ms: number }
  /** Right after unplugNic returned. */
  afterUnplug?: Sample
  /** QMP events seen from the hot-plug on (event name and data). */
  qmpEvents: Pick<QmpEvent, 'event' | 'data'>[]
  guest: {
    nic?: string
    queues?: { rx: number; tx: number }
    hotplugNic?: string
    hotplugQueues?: { rx: number; tx: number }
    hotplugPing?: { sent: number; received: number }
    goneInterfaces?: string
    done: boolean
    fail?: string
  }
  host: { hotplugPing?: { sent: number; received: number; output: string } }
  exit?: { code: number | null; signal: string | null; timedOut: boolean; ms: number }
  /** After QEMU exited. */
  after?: { nic0Exists: boolean; ownTunFds: number }
  fdsBefore: string[]
  fdsAfter: string[]
}

const HOST0 = '10.77.2.1'
const GUEST0 = '10.77.2.2'
const HOST1 = '10.77.3.1'
const GUEST1 = '10.77.3.2'
const PREFIX = 24
const GATE_PORT = 5001
const MAC0 = '52:54:00:77:00:02'
export const HOTPLUG_MAC = '52:54:00:77:00:12'
export const HOTPLUG_ID = 'net1'

/** How long one step may wait for the guest (TCG on a busy host is slow, but not this slow). */
const STEP_MS = 45_000

function sample(qemuPid: number, ifname: string): Sample {
  const tun = linkInfo(ifname)
  return {
    deviceExists: tun !== undefined,
    ...(tun ? { tun } : {}),
    qemuTapFds: tapFdNumbers(qemuPid, ifname).length,
    qemuTunFds: tunFdCount(qemuPid),
    ownTunFds: tunFdCount(),
  }
}

async function qmpState(qmp: QmpClient): Promise<Pick<Sample, 'peripherals' | 'network'>> {
  const list = await qmp.execute<{ name: string; type: string }[]>('qom-list', { path: '/machine/peripheral' })
  const network = await qmp.execute<string>('human-monitor-command', { 'command-line': 'info network' })
  return {
    peripherals: list
      .filter((p) => p.type.startsWith('child<'))
      .map((p) => p.name)
      .sort(),
    network: network.replace(/\r/g, ''),
  }
}

export async function runHotplug(config: HotplugConfig): Promise<HotplugResult> {
  const result: HotplugResult = {
    qemuArgs: [],
    events: [],
    eventTimes: {},
    console: '',
    qmpEvents: [],
    guest: { done: false },
    host: {},
    fdsBefore: [],
    fdsAfter: [],
  }
  const pings = config.pings ?? 3
  ip('link', 'set', 'lo', 'up')
  result.fdsBefore = ownFds()

  const dir = mkdtempSync(join(tmpdir(), 'vmtap-hotplug-'))
  const qmpPath = join(dir, 'qmp.sock')
  const tap0 = openTap({ queues: 1 })
  result.nic0 = { ifname: tap0.ifname }
  let tap1: TapDevice | undefined
  let qmp: QmpClient | undefined
  let qemu: ChildProcess | undefined
  let con: GuestConsole | undefined
  let killer: NodeJS.Timeout | undefined
  let killOnExit: (() => void) | undefined
  const gate = createServer({ allowHalfOpen: true })
  const sockets = new Set<Socket>()
  try {
    ip('addr', 'add', `${HOST0}/${PREFIX}`, 'dev', tap0.ifname)
    ip('link', 'set', 'dev', tap0.ifname, 'up')

    // The guest powers off once the host closes its connection to GATE_PORT.
    let releaseGate!: () => void
    const released = new Promise<void>((r) => (releaseGate = r))
    gate.on('connection', (sock: Socket) => {
      sockets.add(sock)
      sock.on('close', () => sockets.delete(sock))
      sock.on('error', () => {})
      sock.resume()
      void released.then(() => sock.end())
    })
    await listen(gate, GATE_PORT, HOST0)

    const append = guestCmdline({
      mode: 'hotplug',
      ip: `${GUEST0}/${PREFIX}`,
      host: HOST0,
      ip1: `${GUEST1}/${PREFIX}`,
      host1: HOST1,
      pings,
      rxport: GATE_PORT,
      wait: STEP_MS / 1000,
    })
    const h = handOff(tap0, { stdio: ['pipe', 'pipe', 'pipe'] })
    result.qemuArgs = [
      ...guestQemuArgs({ kernel: config.kernel, initrd: config.initrd, smp: config.smp, append }),
      '-qmp',
      `unix:${qmpPath},server=on,wait=off`,
      ...qemuArgs(h.devices[0], { id: 'n0', mac: MAC0 }),
    ]
    const started = Date.now()
    const vm = spawn(config.qemu ?? 'qemu-system-x86_64', result.qemuArgs, { stdio: h.stdio })
    qemu = vm
    tap0.close() // QEMU holds its own copy
    let timedOut = false
    killer = setTimeout(() => {
      timedOut = true
      vm.kill('SIGKILL')
    }, config.timeoutMs)
    killOnExit = () => vm.kill('SIGKILL')
    process.on('exit', killOnExit)
    process.on('SIGTERM', () => process.exit(143))
    con = new GuestConsole(vm.stdout!, vm.stderr)
    // 'close': QEMU has exited and its stdio pipes are closed.
    const exited = watchExit(
      vm,
      started,
      () => timedOut,
      (e) => {
        result.exit = e
      },
    )
    const qemuPid = vm.pid!

    // --- boot: eth0 up; QEMU created the QMP socket long before ------------
    await con.waitFor('READY', STEP_MS)
    qmp = await connectQmp(qmpPath, { timeoutMs: 20_000 })
    result.qmpVersion = qmp.greeting.QMP.version
    const q = qmp
    q.on('event', (e: QmpEvent) => result.qmpEvents.push({ event: e.event, ...(e.data ? { data: e.data } : {}) }))

    // --- hot-plug: a multi-queue tap with its own subnet --------------------
    const t1 = openTap({ queues: config.queues })
    tap1 = t1
    ip('addr', 'add', `${HOST1}/${PREFIX}`, 'dev', t1.ifname)
    ip('link', 'set', 'dev', t1.ifname, 'up')
    const t0 = Date.now()
    const nic = await hotplugNic(q, t1, { id: HOTPLUG_ID, mac: HOTPLUG_MAC })
    const ms = Date.now() - t0
    result.hotplug = {
      ifname: t1.ifname,
      tapFds: t1.tapFds.length,
      vhostFds: t1.vhostFds.length,
      nic,
      ms,
      qemuFdNumbers: tapFdNumbers(qemuPid, t1.ifname),
    }
    t1.close() // QEMU holds its own copies
    result.afterHotplug = sample(qemuPid, t1.ifname)

    // --- the guest configures eth1; pings both ways through it ---------------
    await con.waitFor('HOTPLUG_UP', STEP_MS)
    result.whilePlugged = { ...sample(qemuPid, t1.ifname), ...(await qmpState(q)) }
    const [hostPing] = await Promise.all([ping(GUEST1, pings), con.waitFor('HOTPLUG_PING', STEP_MS)])
    result.host.hotplugPing = hostPing

    // --- unplug -----------------------------------------------------------------
    const u0 = Date.now()
    await unplugNic(q, nic, { timeoutMs: STEP_MS })
    result.unplug = { ms: Date.now() - u0 }
    result.afterUnplug = { ...sample(qemuPid, t1.ifname), ...(await qmpState(q)) }
    await con.waitFor('HOTPLUG_GONE', STEP_MS)

    // --- let the guest power off ---------------------------------------------
    releaseGate()
    await exited
    result.after = { nic0Exists: linkInfo(tap0.ifname) !== undefined, ownTunFds: tunFdCount() }
  } catch (e) {
    result.error = (e as Error).stack ?? String(e)
    // Do not wait for the guest's own deadlines.
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) {
      qemu.kill('SIGKILL')
      await new Promise((r) => qemu!.once('close', r))
    }
  } finally {
    clearTimeout(killer)
    if (killOnExit) process.off('exit', killOnExit)
    qmp?.close()
    tap0.close()
    tap1?.close()
    for (const sock of sockets) sock.destroy()
    await new Promise((r) => gate.close(r))
    rmSync(dir, { recursive: true, force: true })
  }
  if (con) {
    result.console = con.text
    result.events = con.lines
    for (const e of con.events) result.eventTimes[e.name] ??= e.at
    const kv = (name: string) => con!.get(name)?.kv
    result.guest = {
      nic: con.get('NIC')?.rest,
      queues: kv('QUEUES') && { rx: Number(kv('QUEUES')!.rx), tx: Number(kv('QUEUES')!.tx) },
      hotplugNic: con.get('HOTPLUG_NIC')?.rest,
      hotplugQueues: kv('HOTPLUG_QUEUES') && {
        rx: Number(kv('HOTPLUG_QUEUES')!.rx),
        tx: Number(kv('HOTPLUG_QUEUES')!.tx),
      },
      hotplugPing: kv('HOTPLUG_PING') && {
        sent: Number(kv('HOTPLUG_PING')!.sent),
        received: Number(kv('HOTPLUG_PING')!.received || 0),
      },
      goneInterfaces: kv('HOTPLUG_GONE')?.interfaces,
      done: con.get('DONE') !== undefined,
      fail: con.get('FAIL')?.rest,
    }
  }
  result.fdsAfter = ownFds()
  return result
}

runAsMain(module, runHotplug)
