// The host side of the `vmtap exec` end-to-end test. Runs INSIDE a
// network namespace, as
//
//   ip netns exec NS node --import=tsx __test__/guest/cli-scenario.ts '<json CliConfig>'
//
// It makes a bridge with the host's address on it (so the host side is ready
// before the guest pings), then boots the guest through the built CLI, the
// way a shell user would:
//
//   node dist/cli.js exec --queues 2 --bridge br0 --up -- qemu-system-x86_64 ... \
//       -netdev {netdev} -device {device},mac=52:54:00:77:00:02
//
// and follows the console (QEMU's stdout is vmtap's): when the guest is READY
// it looks at QEMU (its argv after substitution, the fds it got), at vmtap
// (no tun fd of its own left) and at the bridge's port, pings the guest, then
// lets it go on (init.sh's default flow: payload each way over TCP). Once
// vmtap has exited it lists the namespace's links. One JSON line (CliResult)
// on stdout; the console goes to stderr.

import { spawn } from 'node:child_process'

import {
  childrenOf,
  cmdlineOf,
  guestCmdline,
  GuestConsole,
  ip,
  type LinkSummary,
  listLinks,
  ping,
  runAsMain,
  TransferHost,
  tapFdNumbers,
  tunFdCount,
  guestQemuArgs,
  watchExit,
} from './host'

export interface CliConfig {
  kernel: string
  initrd: string
  /** dist/cli.js */
  cli: string
  queues: number
  smp: number
  /** Bytes each way over TCP (0: none; the host still gates the guest). */
  transferBytes: number
  /** QEMU is killed after this long. */
  timeoutMs: number
  pings?: number
  qemu?: string
}

export interface CliResult {
  error?: string
  /** vmtap's argv (after node). */
  vmtapArgs: string[]
  events: string[]
  eventTimes: Record<string, number>
  console: string
  /** Sampled when the guest said READY. */
  whileRunning?: {
    /** vmtap's children: QEMU, and only QEMU. */
    children: number
    /** QEMU's argv (after the binary): the placeholders substituted. */
    qemuArgs: string[]
    /** The bridge's ports. */
    ports: LinkSummary[]
    /** QEMU's fd numbers attached to the port's tap. */
    qemuTapFdNumbers: number[]
    /** /dev/net/tun and /dev/vhost-net fds vmtap still holds. */
    vmtapTunFds: number
  }
  guest: {
    nic?: string
    queues?: { rx: number; tx: number }
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
  /** How vmtap ended. */
  exit?: { code: number | null; signal: string | null; timedOut: boolean; ms: number }
  /** After vmtap exited: the namespace's links, and this process's tun fds. */
  after?: { links: LinkSummary[]; ownTunFds: number }
}

export const BRIDGE = 'br0'
const HOST_IP = '10.77.1.1'
const GUEST_IP = '10.77.1.2'
const PREFIX = 24
const RX_PORT = 5001
const TX_PORT = 5002
export const CLI_MAC = '52:54:00:77:00:02'
const STEP_MS = 45_000

export async function runCli(config: CliConfig): Promise<CliResult> {
  const result: CliResult = { vmtapArgs: [], events: [], eventTimes: {}, console: '', guest: { done: false }, host: {} }
  const pings = config.pings ?? 3
  const transfers = new TransferHost(config.transferBytes, result.host)
  let con: GuestConsole | undefined
  let killer: NodeJS.Timeout | undefined
  let backstop: NodeJS.Timeout | undefined
  let killOnExit: (() => void) | undefined
  try {
    // --- the host side, configured before the guest exists -------------------
    ip('link', 'set', 'lo', 'up')
    ip('link', 'add', BRIDGE, 'type', 'bridge')
    ip('addr', 'add', `${HOST_IP}/${PREFIX}`, 'dev', BRIDGE)
    ip('link', 'set', 'dev', BRIDGE, 'up')

    await transfers.listen(HOST_IP, RX_PORT, TX_PORT)

    // --- vmtap exec -- qemu ... ------------------------------------------------
    const append = guestCmdline({
      ip: `${GUEST_IP}/${PREFIX}`,
      host: HOST_IP,
      pings,
      rxport: RX_PORT,
      txport: config.transferBytes ? TX_PORT : 0,
      txbytes: config.transferBytes,
    })
    result.vmtapArgs = [
      config.cli,
      'exec',
      '--queues',
      String(config.queues),
      '--bridge',
      BRIDGE,
      '--up',
      '--',
      config.qemu ?? 'qemu-system-x86_64',
      ...guestQemuArgs({ kernel: config.kernel, initrd: config.initrd, smp: config.smp, append }),
      '-netdev',
      '{netdev}',
      '-device',
      `{device},mac=${CLI_MAC}`,
    ]
    const started = Date.now()
    const vmtap = spawn(process.execPath, result.vmtapArgs, { stdio: ['pipe', 'pipe', 'pipe'] })
    const qemuPids = () => (vmtap.pid === undefined ? [] : childrenOf(vmtap.pid))
    let timedOut = false
    const killAll = () => {
      for (const pid of qemuPids()) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone
        }
      }
      vmtap.kill('SIGKILL')
    }
    // A hung guest: SIGTERM to vmtap (which forwards it to QEMU), then SIGKILL to both.
    killer = setTimeout(() => {
      timedOut = true
      vmtap.kill('SIGTERM')
      backstop = setTimeout(killAll, 5000)
    }, config.timeoutMs)
    killOnExit = killAll
    process.on('exit', killOnExit)
    process.on('SIGTERM', () => process.exit(143))
    con = new GuestConsole(vmtap.stdout, vmtap.stderr)
    const exited = watchExit(
      vmtap,
      started,
      () => timedOut,
      (e) => {
        result.exit = e
      },
    )

    try {
      await con.waitFor('READY', STEP_MS)
      const children = qemuPids()
      const qemuPid = children[0]
      const ports = listLinks().filter((l) => l.master === BRIDGE)
      result.whileRunning = {
        children: children.length,
        qemuArgs: qemuPid ? cmdlineOf(qemuPid).slice(1) : [],
        ports,
        qemuTapFdNumbers: qemuPid && ports[0] ? tapFdNumbers(qemuPid, ports[0].ifname) : [],
        vmtapTunFds: tunFdCount(vmtap.pid!),
      }
      // host -> guest, then let the guest go on.
      result.host.ping = await ping(GUEST_IP, pings)
      transfers.releaseGate()
    } catch (e) {
      // Do not wait for the guest's own deadlines.
      killAll()
      throw e
    } finally {
      await exited
      vmtap.stdin.end()
    }
    result.after = { links: listLinks(), ownTunFds: tunFdCount() }
  } catch (e) {
    result.error = (e as Error).stack ?? String(e)
  } finally {
    clearTimeout(killer)
    clearTimeout(backstop)
    if (killOnExit) process.off('exit', killOnExit)
    await transfers.close()
  }
  if (con) {
    result.console = con.text
    result.events = con.lines
    for (const e of con.events) result.eventTimes[e.name] ??= e.at
    const kv = (name: string) => con!.get(name)?.kv
    const pair = (k?: Record<string, string>) => k && { bytes: Number(k.bytes), sha256: k.sha256 }
    result.guest = {
      nic: con.get('NIC')?.rest,
      queues: kv('QUEUES') && { rx: Number(kv('QUEUES')!.rx), tx: Number(kv('QUEUES')!.tx) },
      ping: kv('GUEST_PING') && {
        sent: Number(kv('GUEST_PING')!.sent),
        received: Number(kv('GUEST_PING')!.received || 0),
      },
      rx: pair(kv('RX')),
      tx: pair(kv('TX')),
      done: con.get('DONE') !== undefined,
      fail: con.get('FAIL')?.rest,
    }
  }
  return result
}

runAsMain(module, runCli)
