// The host side of the routed end-to-end test. Runs INSIDE a network
// namespace H (runDriver), as
//
//   ip netns exec H node --import=tsx __test__/guest/routed-scenario.ts '<json RoutedConfig>'
//
// Topology (Ganeti's / Incus' routed NIC): H is the host. A veth joins H
// (198.51.100.1/24) to a namespace R (198.51.100.2/24 and .3/24) that routes
// 192.0.2.2 back through H. vmtap opens the tap vmr0 in H with everything
// routed mode needs, in one call: the host address 192.0.2.1/32, a route to
// the guest 192.0.2.2/32 through the tap, proxy ARP and forwarding. The
// guest (192.0.2.2/32, gateway 192.0.2.1 on-link) pings 198.51.100.2 through
// its gateway — forwarded by H only because the tap's forwarding is on —
// and 198.51.100.3 as if it were on its own link — reachable only because
// the tap answers ARP for it (proxy ARP). One JSON line (RoutedResult) on
// stdout.

import { execFileSync, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'

import { handOff, openTap, qemuArgs } from '../../index'
import { GuestConsole, guestCmdline, guestQemuArgs, runAsMain } from './host'

export interface RoutedConfig {
  kernel: string
  initrd: string
  /** R: the far side (made by the test). */
  remote: string
  timeoutMs: number
  qemu?: string
}

export interface RoutedResult {
  error?: string
  /** `ip -j addr show dev vmr0` and `ip -j route show dev vmr0` in H, as they were while the guest ran. */
  addr?: unknown
  route?: unknown
  /** The tap's sysctls in H, and the namespace-wide ones (which vmtap leaves alone). */
  sysctls?: Record<string, string>
  events?: string[]
  ping?: { sent: number; received: number }
  onlinkPing?: { sent: number; received: number }
  /** H's neighbour entry for the guest on the tap, after the guest's pings through H. */
  neighbour?: string
  done?: boolean
  fail?: string
  exit?: { code: number | null; signal: string | null }
  console?: string
  /** vmr0 left in H once QEMU exited. */
  after?: boolean
}

const HOST_IP = '192.0.2.1'
const GUEST_IP = '192.0.2.2'
const FAR = '198.51.100.2'
const FAR_ONLINK = '198.51.100.3'
const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' })
const sysctl = (path: string) => readFileSync(`/proc/sys/net/${path}`, 'utf8').trim()

/** The veth between H (here) and R, and R's side of the routing. Test scaffolding, not vmtap. */
function farSide(r: string): void {
  ip('link', 'set', 'lo', 'up')
  ip('-n', r, 'link', 'set', 'lo', 'up')
  ip('link', 'add', 'vr0', 'type', 'veth', 'peer', 'name', 'vr1', 'netns', r)
  ip('addr', 'add', '198.51.100.1/24', 'dev', 'vr0')
  ip('link', 'set', 'vr0', 'up')
  // The replies come back in on vr0: it forwards too (the tap is vmtap's job).
  writeFileSync('/proc/sys/net/ipv4/conf/vr0/forwarding', '1')
  ip('-n', r, 'addr', 'add', `${FAR}/24`, 'dev', 'vr1')
  ip('-n', r, 'addr', 'add', `${FAR_ONLINK}/24`, 'dev', 'vr1')
  ip('-n', r, 'link', 'set', 'vr1', 'up')
  ip('-n', r, 'route', 'add', `${GUEST_IP}/32`, 'via', '198.51.100.1')
}

const pingOf = (rest: Record<string, string>) => ({ sent: Number(rest.sent), received: Number(rest.received || 0) })

export async function runRouted(config: RoutedConfig): Promise<RoutedResult> {
  farSide(config.remote)
  const result: RoutedResult = {}
  const tap = openTap({
    name: 'vmr0',
    up: true,
    addresses: [`${HOST_IP}/32`],
    routes: [`${GUEST_IP}/32`],
    proxyArp: true,
    forwarding: true,
  })
  try {
    result.addr = JSON.parse(ip('-j', 'addr', 'show', 'dev', 'vmr0'))
    result.route = JSON.parse(ip('-j', 'route', 'show', 'dev', 'vmr0'))
    result.sysctls = {
      proxyArp: sysctl('ipv4/conf/vmr0/proxy_arp'),
      forwarding: sysctl('ipv4/conf/vmr0/forwarding'),
      allForwarding: sysctl('ipv4/conf/all/forwarding'),
      allProxyArp: sysctl('ipv4/conf/all/proxy_arp'),
    }
    const h = handOff(tap, { stdio: ['ignore', 'pipe', 'pipe'] })
    const args = [
      ...guestQemuArgs({
        kernel: config.kernel,
        initrd: config.initrd,
        smp: 1,
        append: guestCmdline({
          ip: `${GUEST_IP}/32`,
          gw: HOST_IP,
          host: FAR,
          onlink: FAR_ONLINK,
          pings: 3,
          rxport: 0,
          txport: 0,
        }),
      }),
      ...qemuArgs(h.devices[0], { id: 'n0', mac: '52:54:00:c0:00:02' }),
    ]
    const qemu = spawn(config.qemu ?? 'qemu-system-x86_64', args, { stdio: h.stdio })
    // QEMU holds its own copy of the fd now: the device lives until it exits.
    tap.close()
    const guest = new GuestConsole(qemu.stdout!, qemu.stderr, () => undefined)
    const killer = setTimeout(() => qemu.kill('SIGKILL'), config.timeoutMs)
    try {
      await guest.waitFor('READY', config.timeoutMs)
      // H's neighbour entry for the guest, read while the device surely
      // exists: after the guest's pings through H, before its on-link pings
      // (seconds more) and its power-off, which takes the device with it.
      await guest.waitFor('GUEST_PING', config.timeoutMs)
      result.neighbour = ip('neigh', 'show', 'dev', 'vmr0', GUEST_IP).trim()
      await guest.waitFor('DONE', config.timeoutMs).catch(() => undefined)
    } finally {
      result.exit = await new Promise((resolve) => {
        if (qemu.exitCode !== null || qemu.signalCode !== null)
          resolve({ code: qemu.exitCode, signal: qemu.signalCode })
        else qemu.once('exit', (code, signal) => resolve({ code, signal }))
      })
      clearTimeout(killer)
      result.events = guest.lines
      result.console = guest.text
      const p = guest.get('GUEST_PING')
      if (p) result.ping = pingOf(p.kv)
      const o = guest.get('ONLINK_PING')
      if (o) result.onlinkPing = pingOf(o.kv)
      result.done = guest.get('DONE') !== undefined
      result.fail = guest.get('FAIL')?.rest
    }
    result.after = (JSON.parse(ip('-j', 'link', 'show')) as { ifname: string }[]).some((l) => l.ifname === 'vmr0')
  } finally {
    tap.close()
  }
  return result
}

runAsMain(module, runRouted)
