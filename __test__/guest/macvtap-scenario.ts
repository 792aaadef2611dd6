// The host side of the macvtap end-to-end test. Runs INSIDE a network
// namespace O (runDriver), as
//
//   ip netns exec O node --import=tsx __test__/guest/macvtap-scenario.ts '<json MacvtapConfig>'
//
// O gets a veth pair whose far end vb1 is in namespace P (made by the test)
// with 10.77.0.1/24: the "physical network". A 2-queue macvtap in bridge mode
// on vb0 (openMacvtap) carries a real guest (QEMU through handOff and
// qemuArgs, whose guest NIC gets the macvtap's MAC by default) with
// 10.77.0.2/24; the guest pings 10.77.0.1, which only P has. After QEMU has
// exited the macvtap is still there (a macvtap outlives its fds) until
// close() deletes it. One JSON line (MacvtapResult) on stdout.

import { execFileSync, spawn } from 'node:child_process'
import { readdirSync, readlinkSync } from 'node:fs'

import { handOff, openMacvtap, qemuArgs } from '../../index'
import { GuestConsole, guestCmdline, guestQemuArgs, runAsMain } from './host'

export interface MacvtapConfig {
  kernel: string
  initrd: string
  /** The namespace with the far end of the veth (made by the test). */
  peer: string
  timeoutMs: number
  qemu?: string
}

export interface MacvtapResult {
  error?: string
  ifname?: string
  kind?: string
  /** TapDevice.mac, ip's address of the macvtap, the guest's NIC's. */
  macs?: { device: string | null; link: string; guest?: string }
  events?: string[]
  queues?: { rx: number; tx: number }
  ping?: { sent: number; received: number }
  done?: boolean
  fail?: string
  /** The fds QEMU held on the macvtap's device, while the guest ran. */
  qemuTapFds?: number
  exit?: { code: number | null; signal: string | null }
  console?: string
  /** The macvtap after QEMU exited, and after close(). */
  afterQemu?: boolean
  afterClose?: boolean
}

const HOST_IP = '10.77.0.1'
const GUEST_IP = '10.77.0.2'
const sh = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' })
const link = (name: string) =>
  (JSON.parse(sh('-j', 'link', 'show')) as { ifname: string; address: string }[]).find((l) => l.ifname === name)

/** How many fds of `pid` are open on what `targets` name (readlink of /proc/PID/fd/N). */
function fdsOn(pid: number, targets: Set<string>): number {
  let n = 0
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (targets.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) n++
    } catch {
      // closed meanwhile
    }
  }
  return n
}

export async function runMacvtap(config: MacvtapConfig): Promise<MacvtapResult> {
  const result: MacvtapResult = {}
  sh('link', 'set', 'lo', 'up')
  sh('link', 'add', 'vb0', 'type', 'veth', 'peer', 'name', 'vb1', 'netns', config.peer)
  sh('link', 'set', 'vb0', 'up')
  sh('-n', config.peer, 'link', 'set', 'lo', 'up')
  sh('-n', config.peer, 'addr', 'add', `${HOST_IP}/24`, 'dev', 'vb1')
  sh('-n', config.peer, 'link', 'set', 'vb1', 'up')

  const tap = openMacvtap({ link: 'vb0', queues: 2, up: true })
  try {
    result.ifname = tap.ifname
    result.kind = tap.kind
    result.macs = { device: tap.mac, link: link(tap.ifname)?.address ?? '' }
    const targets = new Set(tap.tapFds.map((fd) => readlinkSync(`/proc/self/fd/${fd}`)))
    const h = handOff(tap, { stdio: ['ignore', 'pipe', 'pipe'] })
    const args = [
      ...guestQemuArgs({
        kernel: config.kernel,
        initrd: config.initrd,
        smp: 2,
        append: guestCmdline({ ip: `${GUEST_IP}/24`, host: HOST_IP, pings: 3, rxport: 0, txport: 0 }),
      }),
      // No mac: the formatter puts the macvtap's on the guest NIC.
      ...qemuArgs(h.devices[0], { id: 'n0' }),
    ]
    const qemu = spawn(config.qemu ?? 'qemu-system-x86_64', args, { stdio: h.stdio })
    const guest = new GuestConsole(qemu.stdout!, qemu.stderr, () => undefined)
    const killer = setTimeout(() => qemu.kill('SIGKILL'), config.timeoutMs)
    try {
      await guest.waitFor('READY', config.timeoutMs)
      result.qemuTapFds = qemu.pid ? fdsOn(qemu.pid, targets) : 0
      await guest.waitFor('DONE', config.timeoutMs).catch(() => undefined)
    } finally {
      result.exit = await new Promise<{ code: number | null; signal: string | null }>((resolve) => {
        if (qemu.exitCode !== null || qemu.signalCode !== null)
          resolve({ code: qemu.exitCode, signal: qemu.signalCode })
        else qemu.once('exit', (code, signal) => resolve({ code, signal }))
      })
      clearTimeout(killer)
      result.events = guest.lines
      result.console = guest.text
      const nic = guest.get('NIC')
      if (nic) result.macs.guest = nic.kv.mac
      const q = guest.get('QUEUES')
      if (q) result.queues = { rx: Number(q.kv.rx), tx: Number(q.kv.tx) }
      const p = guest.get('GUEST_PING')
      if (p) result.ping = { sent: Number(p.kv.sent), received: Number(p.kv.received || 0) }
      result.done = guest.get('DONE') !== undefined
      result.fail = guest.get('FAIL')?.rest
    }
    result.afterQemu = link(tap.ifname) !== undefined
    tap.close()
    result.afterClose = link(tap.ifname) !== undefined
  } finally {
    tap.close()
  }
  return result
}

runAsMain(module, runMacvtap)
