// The host side of the namespaces end-to-end test. Runs INSIDE a network
// namespace O (runDriver), as
//
//   ip netns exec O node --import=tsx __test__/guest/netns-scenario.ts '<json NetnsConfig>'
//
// From O it opens a 2-queue tap named vmt0 in each of two namespaces A and B
// (openTap's netns option; O never gets a vmt0), puts the host address
// 10.77.0.1/24 on each (which exists only in that namespace), and boots two
// guests at once, each on its namespace's tap through the hand-off, both with
// the guest address 10.77.0.2. Each guest pings 10.77.0.1: the replies can
// only come from its own namespace. One JSON line (NetnsResult) on stdout.

import { execFileSync, spawn } from 'node:child_process'

import { handOff, openTap, qemuArgs, type TapDevice } from '../../index'
import { guestCmdline, GuestConsole, runAsMain, tapFdNumbers, guestQemuArgs } from './host'

export interface NetnsConfig {
  kernel: string
  initrd: string
  /** The two namespaces (made by the test). */
  namespaces: [string, string]
  timeoutMs: number
  qemu?: string
}

export interface GuestOutcome {
  ns: string
  events: string[]
  queues?: { rx: number; tx: number }
  ping?: { sent: number; received: number }
  done: boolean
  fail?: string
  /** The tap fds QEMU held, as fdinfo's iff: shows them, while the guest ran. */
  qemuTapFds?: number
  exit?: { code: number | null; signal: string | null }
  console: string
}

export interface NetnsResult {
  error?: string
  /** vmt0 in A and B (ip -j), and in O. */
  links?: { a: boolean; b: boolean; here: boolean }
  netns?: (string | number | null)[]
  guests?: GuestOutcome[]
  /** After both QEMUs exited: vmt0 left in A or B. */
  after?: { a: boolean; b: boolean }
}

const HOST_IP = '10.77.0.1'
const GUEST_IP = '10.77.0.2'
const sh = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' })
const has = (ns: string | null, name: string) =>
  (JSON.parse(sh(...(ns ? ['-n', ns] : []), '-j', 'link', 'show')) as { ifname: string }[]).some(
    (l) => l.ifname === name,
  )

async function boot(tap: TapDevice, ns: string, config: NetnsConfig, mac: string): Promise<GuestOutcome> {
  const h = handOff(tap, { stdio: ['ignore', 'pipe', 'pipe'] })
  const args = [
    ...guestQemuArgs({
      kernel: config.kernel,
      initrd: config.initrd,
      smp: 2,
      append: guestCmdline({ ip: `${GUEST_IP}/24`, host: HOST_IP, pings: 3, rxport: 0, txport: 0 }),
    }),
    ...qemuArgs(h.devices[0], { id: 'n0', mac }),
  ]
  const qemu = spawn(config.qemu ?? 'qemu-system-x86_64', args, { stdio: h.stdio })
  const out: GuestOutcome = { ns, events: [], done: false, console: '' }
  const guest = new GuestConsole(qemu.stdout!, qemu.stderr, () => undefined)
  const killer = setTimeout(() => qemu.kill('SIGKILL'), config.timeoutMs)
  try {
    await guest.waitFor('READY', config.timeoutMs)
    out.qemuTapFds = qemu.pid ? tapFdNumbers(qemu.pid, 'vmt0').length : 0
    await guest.waitFor('DONE', config.timeoutMs).catch(() => undefined)
  } finally {
    const exit = await new Promise<{ code: number | null; signal: string | null }>((resolve) => {
      if (qemu.exitCode !== null || qemu.signalCode !== null) resolve({ code: qemu.exitCode, signal: qemu.signalCode })
      else qemu.once('exit', (code, signal) => resolve({ code, signal }))
    })
    clearTimeout(killer)
    out.exit = exit
    out.events = guest.lines
    out.console = guest.text
    const q = guest.get('QUEUES')
    if (q) out.queues = { rx: Number(q.kv.rx), tx: Number(q.kv.tx) }
    const p = guest.get('GUEST_PING')
    if (p) out.ping = { sent: Number(p.kv.sent), received: Number(p.kv.received || 0) }
    out.done = guest.get('DONE') !== undefined
    out.fail = guest.get('FAIL')?.rest
  }
  return out
}

export async function runNetns(config: NetnsConfig): Promise<NetnsResult> {
  const [a, b] = config.namespaces
  const result: NetnsResult = {}
  for (const ns of [a, b]) sh('-n', ns, 'link', 'set', 'lo', 'up')
  const ta = openTap({ name: 'vmt0', queues: 2, netns: a })
  const tb = openTap({ name: 'vmt0', queues: 2, netns: b })
  try {
    for (const ns of [a, b]) {
      sh('-n', ns, 'addr', 'add', `${HOST_IP}/24`, 'dev', 'vmt0')
      sh('-n', ns, 'link', 'set', 'dev', 'vmt0', 'up')
    }
    result.links = { a: has(a, 'vmt0'), b: has(b, 'vmt0'), here: has(null, 'vmt0') }
    result.netns = [ta.netns, tb.netns]
    const running = [boot(ta, a, config, '52:54:00:77:0a:02'), boot(tb, b, config, '52:54:00:77:0b:02')]
    // QEMU holds its own copies now; each device lives until its QEMU exits.
    ta.close()
    tb.close()
    result.guests = await Promise.all(running)
    result.after = { a: has(a, 'vmt0'), b: has(b, 'vmt0') }
  } finally {
    ta.close()
    tb.close()
  }
  return result
}

runAsMain(module, runNetns)
