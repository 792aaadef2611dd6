// The host side of the broker end-to-end test. Runs INSIDE a network
// namespace, as root:
//
//   ip netns exec NS node --import=tsx __test__/guest/broker-scenario.ts '<json BrokerQemuConfig>'
//
// It makes a bridge with the host's address on it, starts the broker (`vmtap
// serve`, root) from a copy of the package staged where every uid can read it,
// and boots the guest with QEMU running as uid 65534 without capabilities:
//
//   setpriv --reuid=65534 ... qemu-system-x86_64 ... \
//       -netdev bridge,id=n0,br=br0,helper="<node> <stage>/dist/cli.js bridge-helper --socket <stage>/broker.sock"
//
// QEMU runs the helper through /bin/sh -c; the helper asks the broker and
// hands QEMU the tap fd. When the guest is READY it looks at the bridge's port,
// at QEMU (uid, capabilities, the fd it holds) and at the broker's log, pings
// the guest, waits for the guest's pings to the host's address on the bridge,
// then lets it power off. After QEMU exits it lists the links and stops the
// broker. One JSON line (BrokerQemuResult) on stdout; the console on stderr.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import type { BrokerLogEntry } from '../../index'
import {
  guestCmdline,
  guestQemuArgs,
  GuestConsole,
  ip,
  type LinkSummary,
  listLinks,
  ping,
  runAsMain,
  TransferHost,
  tapFdNumbers,
  watchExit,
} from './host'

export interface BrokerQemuConfig {
  /** The staged copy (see broker-harness.ts stageVmtap): dist/, the addon, vmlinuz and initrd.gz. */
  stage: string
  /** QEMU is killed after this long. */
  timeoutMs: number
  pings?: number
  qemu?: string
}

export interface BrokerQemuResult {
  error?: string
  qemuArgs: string[]
  events: string[]
  eventTimes: Record<string, number>
  console: string
  brokerStderr: string
  /** The broker's log lines. */
  log: BrokerLogEntry[]
  whileRunning?: {
    /** The bridge's ports. */
    ports: LinkSummary[]
    /** The tap's owner as `ip -d -j` prints it. */
    owner?: string | number
    /** QEMU's real and effective uid, and its effective capabilities (hex). */
    qemuUid: string
    qemuCapEff: string
    /** QEMU's fd numbers attached to the port. */
    qemuTapFds: number[]
    qemuPid: number
  }
  guest: { nic?: string; ping?: { sent: number; received: number }; done: boolean; fail?: string }
  host: { ping?: { sent: number; received: number; output: string } }
  exit?: { code: number | null; signal: string | null; timedOut: boolean; ms: number }
  after?: { links: LinkSummary[] }
  broker?: { code: number | null; signal: string | null; socketLeft: boolean }
}

export const BRIDGE = 'br0'
const HOST_IP = '10.77.4.1'
const GUEST_IP = '10.77.4.2'
const PREFIX = 24
const GATE_PORT = 5001
export const BROKER_MAC = '52:54:00:77:00:04'
export const NOBODY = 65534
const STEP_MS = 45_000

const AS_NOBODY = [
  'setpriv',
  `--reuid=${NOBODY}`,
  `--regid=${NOBODY}`,
  '--clear-groups',
  '--inh-caps=-all',
  '--ambient-caps=-all',
  '--bounding-set=-all',
]

function env(): NodeJS.ProcessEnv {
  const e = { ...process.env }
  delete e.NAPI_RS_NATIVE_LIBRARY_PATH
  delete e.NODE_OPTIONS
  return e
}

function status(pid: number, field: string): string {
  return readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(.*)$`, 'm'))?.[1] ?? ''
}

export async function runBrokerQemu(config: BrokerQemuConfig): Promise<BrokerQemuResult> {
  const result: BrokerQemuResult = {
    qemuArgs: [],
    events: [],
    eventTimes: {},
    console: '',
    brokerStderr: '',
    log: [],
    guest: { done: false },
    host: {},
  }
  const pings = config.pings ?? 3
  const stage = config.stage
  const sock = join(stage, 'broker.sock')
  const policyFile = join(stage, 'policy.json')
  const gate = new TransferHost(0, {})
  let con: GuestConsole | undefined
  let broker: ChildProcess | undefined
  let brokerExit: Promise<void> | undefined
  let killer: NodeJS.Timeout | undefined
  let qemu: ChildProcess | undefined
  try {
    ip('link', 'set', 'lo', 'up')
    ip('link', 'add', BRIDGE, 'type', 'bridge')
    ip('addr', 'add', `${HOST_IP}/${PREFIX}`, 'dev', BRIDGE)
    ip('link', 'set', 'dev', BRIDGE, 'up')
    await gate.listen(HOST_IP, GATE_PORT, GATE_PORT + 1)

    // --- the broker, as root -------------------------------------------------
    writeFileSync(policyFile, JSON.stringify({ allow: [{ name: 'qemu-nobody', uid: NOBODY, bridges: [BRIDGE] }] }))
    const b = spawn(
      process.execPath,
      [join(stage, 'dist', 'cli.js'), 'serve', '--socket', sock, '--policy', policyFile],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: env(),
      },
    )
    broker = b
    let out = ''
    b.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s
      let i: number
      while ((i = out.indexOf('\n')) >= 0) {
        result.log.push(JSON.parse(out.slice(0, i)) as BrokerLogEntry)
        out = out.slice(i + 1)
      }
    })
    const brokerClosed = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      b.once('close', (code, signal) => resolve({ code, signal })),
    )
    brokerExit = brokerClosed.then((r) => {
      result.broker = { ...r, socketLeft: existsSync(sock) }
    })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the broker did not listen: ${result.brokerStderr}`)), 20_000)
      b.stderr!.setEncoding('utf8').on('data', (s: string) => {
        result.brokerStderr += s
        if (/listening on/.test(result.brokerStderr)) {
          clearTimeout(timer)
          resolve()
        }
      })
      b.once('close', () => reject(new Error(`the broker exited: ${result.brokerStderr}`)))
    })

    // --- QEMU as uid 65534, its NIC from the bridge helper -----------------------
    const helper = `${process.execPath} ${join(stage, 'dist', 'cli.js')} bridge-helper --socket ${sock}`
    result.qemuArgs = [
      ...guestQemuArgs({
        kernel: join(stage, 'vmlinuz'),
        initrd: join(stage, 'initrd.gz'),
        smp: 1,
        append: guestCmdline({
          ip: `${GUEST_IP}/${PREFIX}`,
          host: HOST_IP,
          pings,
          rxport: GATE_PORT,
          txport: 0,
          txbytes: 0,
        }),
      }),
      '-netdev',
      `bridge,id=n0,br=${BRIDGE},helper=${helper}`,
      '-device',
      `virtio-net-pci,netdev=n0,mac=${BROKER_MAC}`,
    ]
    const started = Date.now()
    const vm = spawn(AS_NOBODY[0], [...AS_NOBODY.slice(1), config.qemu ?? 'qemu-system-x86_64', ...result.qemuArgs], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: env(),
      cwd: '/',
    })
    qemu = vm
    let timedOut = false
    killer = setTimeout(() => {
      timedOut = true
      vm.kill('SIGKILL')
    }, config.timeoutMs)
    con = new GuestConsole(vm.stdout!, vm.stderr)
    const exited = watchExit(
      vm,
      started,
      () => timedOut,
      (e) => {
        result.exit = e
      },
    )

    try {
      await con.waitFor('READY', STEP_MS)
      const qemuPid = vm.pid! // setpriv execs QEMU
      const ports = listLinks().filter((l) => l.master === BRIDGE)
      const dev = ports[0]?.ifname
      type Owner = { linkinfo?: { info_data?: { user?: string | number } } }
      const j = dev
        ? (JSON.parse(execFileSync('ip', ['-d', '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' })) as Owner[])
        : []
      result.whileRunning = {
        ports,
        owner: j[0]?.linkinfo?.info_data?.user,
        qemuUid: status(qemuPid, 'Uid'),
        qemuCapEff: status(qemuPid, 'CapEff'),
        qemuTapFds: dev ? tapFdNumbers(qemuPid, dev) : [],
        qemuPid,
      }
      result.host.ping = await ping(GUEST_IP, pings)
      await con.waitFor('GUEST_PING', STEP_MS)
      gate.releaseGate()
    } catch (e) {
      vm.kill('SIGKILL')
      throw e
    } finally {
      await exited
    }
    result.after = { links: listLinks() }
  } catch (e) {
    result.error = (e as Error).stack ?? String(e)
    if (qemu && qemu.exitCode === null && qemu.signalCode === null) qemu.kill('SIGKILL')
  } finally {
    clearTimeout(killer)
    broker?.kill('SIGTERM')
    await brokerExit
    await gate.close()
  }
  if (con) {
    result.console = con.text
    result.events = con.lines
    for (const e of con.events) result.eventTimes[e.name] ??= e.at
    const kv = con.get('GUEST_PING')?.kv
    result.guest = {
      nic: con.get('NIC')?.rest,
      ping: kv && { sent: Number(kv.sent), received: Number(kv.received || 0) },
      done: con.get('DONE') !== undefined,
      fail: con.get('FAIL')?.rest,
    }
  }
  return result
}

runAsMain(module, runBrokerQemu)
