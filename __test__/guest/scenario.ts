// The host side of the end-to-end QEMU test. Runs INSIDE a network namespace
// (the tap is created where this process is), as
//
//   ip netns exec NS node --import=tsx __test__/guest/scenario.ts '<json ScenarioConfig>'
//
// It opens a tap with vmtap's public API, gives it an address, hands its fds
// to QEMU (handOff + qemuArgs), closes its own copies right after spawn, then
// follows the guest's console (init.sh prints "VMTAP <EVENT> ..." lines):
// pings the guest once it is READY, sends it a payload over TCP, receives the
// guest's payload, and when QEMU has exited checks that the device is gone and
// that no fd is left. The result is one JSON line (ScenarioResult) on stdout;
// the guest's console goes to stderr as it arrives.

import { execFile, spawn } from 'node:child_process'

import { handOff, openTap, qemuArgs, type OpenTapOptions } from '../../index'
import {
  guestCmdline,
  ip,
  isTunFd,
  linkInfo,
  ownFds,
  parsePing,
  runAsMain,
  TransferHost,
  tapFdsOf,
  guestQemuArgs,
} from './host'

export interface ScenarioConfig {
  /** openTap options. */
  tap: OpenTapOptions
  /** Guest vCPUs (virtio-net enables min(queues, vCPUs) queue pairs). */
  smp: number
  kernel: string
  initrd: string
  /** Bytes each way over TCP (0: no payload; the host still gates the guest). */
  transferBytes: number
  /** QEMU is killed after this long (a hung guest fails instead of hanging). */
  timeoutMs: number
  /** Pings each way. */
  pings?: number
  qemu?: string
}

export interface ScenarioResult {
  error?: string
  tap?: { ifname: string; tapFds: number; vhostFds: number; vnetHdr: boolean; multiQueue: boolean }
  /** QEMU's argv (after the binary). */
  qemuArgs: string[]
  /** The child-side fd numbers handOff() chose. */
  handedFds: number[]
  /** Lines the guest printed, "VMTAP " stripped, in order. */
  events: string[]
  /** The whole serial console and QEMU's stderr, for failure messages. */
  console: string
  guest: {
    queues?: { rx: number; tx: number }
    nic?: string
    ping?: { sent: number; received: number }
    rx?: { bytes: number; sha256: string }
    tx?: { bytes: number; sha256: string }
    done: boolean
    fail?: string
  }
  host: {
    ping?: { sent: number; received: number; output: string }
    sent?: { bytes: number; sha256: string }
    received?: { bytes: number; sha256: string }
  }
  /** Sampled when the guest said READY (the parent's copies were closed at spawn). */
  whileRunning?: {
    deviceExists: boolean
    numqueues?: number
    numdisabled?: number
    vnetHdr?: boolean
    multiQueue?: boolean
    /** fds QEMU holds that are attached to the tap (fdinfo `iff:`). */
    qemuTapFds: number
    /** /dev/net/tun or /dev/vhost-net fds this process still holds. */
    ownTunFds: number
  }
  exit?: { code: number | null; signal: string | null; timedOut: boolean; ms: number }
  /** After QEMU exited. */
  after?: { deviceExists: boolean; ownTunFds: number }
  fdsBefore: string[]
  fdsAfter: string[]
}

const HOST_IP = '10.77.0.1'
const GUEST_IP = '10.77.0.2'
const PREFIX = 24
const RX_PORT = 5001 // host -> guest payload (and the gate that keeps the guest up until the host's pings are done)
const TX_PORT = 5002 // guest -> host payload
const MAC = '52:54:00:77:00:02'

export async function runScenario(config: ScenarioConfig): Promise<ScenarioResult> {
  const result: ScenarioResult = {
    qemuArgs: [],
    handedFds: [],
    events: [],
    console: '',
    guest: { done: false },
    host: {},
    fdsBefore: [],
    fdsAfter: [],
  }
  const pings = config.pings ?? 3
  // Loopback up; this first child also makes Node open what it keeps for
  // child processes before the snapshot, so before/after compare like with like.
  ip('link', 'set', 'lo', 'up')
  result.fdsBefore = ownFds()

  // --- the tap, as a VMM would open it ---------------------------------------
  const tap = openTap(config.tap)
  result.tap = {
    ifname: tap.ifname,
    tapFds: tap.tapFds.length,
    vhostFds: tap.vhostFds.length,
    vnetHdr: tap.vnetHdr,
    multiQueue: tap.multiQueue,
  }
  const transfers = new TransferHost(config.transferBytes, result.host)
  let qemuPid: number | undefined
  let killer: NodeJS.Timeout | undefined
  let killOnExit: (() => void) | undefined
  try {
    ip('addr', 'add', `${HOST_IP}/${PREFIX}`, 'dev', tap.ifname)
    ip('link', 'set', 'dev', tap.ifname, 'up')

    // --- TCP: host -> guest on RX_PORT, guest -> host on TX_PORT --------------
    await transfers.listen(HOST_IP, RX_PORT, TX_PORT)

    // --- QEMU: exactly the README's sequence -------------------------------------
    const append = guestCmdline({
      ip: `${GUEST_IP}/${PREFIX}`,
      host: HOST_IP,
      pings,
      rxport: RX_PORT,
      txport: config.transferBytes ? TX_PORT : 0,
      txbytes: config.transferBytes,
    })
    const h = handOff(tap, { stdio: ['pipe', 'pipe', 'pipe'] })
    result.handedFds = [...h.fds]
    result.qemuArgs = [
      ...guestQemuArgs({ kernel: config.kernel, initrd: config.initrd, smp: config.smp, append }),
      ...qemuArgs(h.devices[0], { id: 'n0', mac: MAC }),
    ]
    const started = Date.now()
    const qemu = spawn(config.qemu ?? 'qemu-system-x86_64', result.qemuArgs, { stdio: h.stdio })
    tap.close() // QEMU holds its own copies; the device lives until QEMU exits
    qemuPid = qemu.pid

    let timedOut = false
    killer = setTimeout(() => {
      timedOut = true
      qemu.kill('SIGKILL')
    }, config.timeoutMs)
    killOnExit = () => qemu.kill('SIGKILL')
    process.on('exit', killOnExit)
    process.on('SIGTERM', () => process.exit(143))

    let buf = ''
    const onLine = (line: string) => {
      const m = line.match(/VMTAP (\w+)(?: (.*))?$/)
      if (!m) return
      const [, ev, rest = ''] = m
      result.events.push(rest ? `${ev} ${rest}` : ev)
      const kv = Object.fromEntries([...rest.matchAll(/(\w+)=(\S*)/g)].map((x) => [x[1], x[2]]))
      switch (ev) {
        case 'NIC':
          result.guest.nic = rest
          break
        case 'QUEUES':
          result.guest.queues = { rx: Number(kv.rx), tx: Number(kv.tx) }
          break
        case 'READY': {
          const info = linkInfo(tap.ifname)
          result.whileRunning = {
            deviceExists: info !== undefined,
            numqueues: info?.numqueues,
            numdisabled: info?.numdisabled,
            vnetHdr: info?.vnet_hdr,
            multiQueue: info?.multi_queue,
            qemuTapFds: qemuPid ? tapFdsOf(qemuPid, tap.ifname) : 0,
            ownTunFds: ownFds().filter(isTunFd).length,
          }
          // host -> guest pings, then let the guest go on.
          execFile(
            '/bin/busybox',
            ['ping', '-c', String(pings), '-W', '10', GUEST_IP],
            { encoding: 'utf8' },
            (_err, stdout, stderr) => {
              const output = `${stdout}${stderr}`
              result.host.ping = { ...parsePing(output), output }
              transfers.releaseGate()
            },
          )
          break
        }
        case 'GUEST_PING':
          result.guest.ping = { sent: Number(kv.sent), received: Number(kv.received || 0) }
          break
        case 'RX':
          result.guest.rx = { bytes: Number(kv.bytes), sha256: kv.sha256 }
          break
        case 'TX':
          result.guest.tx = { bytes: Number(kv.bytes), sha256: kv.sha256 }
          break
        case 'DONE':
          result.guest.done = true
          break
        case 'FAIL':
          result.guest.fail = rest
          break
      }
    }
    qemu.stdout!.setEncoding('utf8').on('data', (s: string) => {
      result.console += s
      process.stderr.write(s)
      buf += s
      let i: number
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i).replace(/\r$/, ''))
        buf = buf.slice(i + 1)
      }
    })
    qemu.stderr!.setEncoding('utf8').on('data', (s: string) => {
      result.console += s
      process.stderr.write(s)
    })

    // 'close': QEMU has exited and its stdio pipes are closed.
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      qemu.once('error', reject)
      qemu.once('close', (c, s) => resolve([c, s]))
    })
    if (buf) onLine(buf)
    result.exit = { code, signal, timedOut, ms: Date.now() - started }
    result.after = { deviceExists: linkInfo(tap.ifname) !== undefined, ownTunFds: ownFds().filter(isTunFd).length }
  } catch (e) {
    result.error = (e as Error).stack ?? String(e)
  } finally {
    clearTimeout(killer)
    if (killOnExit) process.off('exit', killOnExit)
    tap.close()
    await transfers.close()
  }
  result.fdsAfter = ownFds()
  return result
}

runAsMain(module, runScenario)
