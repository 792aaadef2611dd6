// Scenarios for hostside.spec.ts: the host side of a NIC (addresses, routes,
// proxy ARP/NDP, forwarding, bridge ports, the queue length, the carrier).
// Each runs inside a network namespace the test created (see ../netns.ts),
// as root, and returns what the kernel reported (`ip -j`, /proc/sys/net,
// sysfs) so the test can assert on it.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { openTap, TapError } from '../../index'
import { native } from '../../lib/native'

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' })
const ip = (...args: string[]) => JSON.parse(sh('ip', '-j', ...args))
const exists = (name: string) => readdirSync('/sys/class/net').includes(name)
const sysctl = (family: string, dev: string, key: string) =>
  readFileSync(`/proc/sys/net/${family}/conf/${dev}/${key}`, 'utf8').trim()
const sysctls = (dev: string) => ({
  proxyArp: sysctl('ipv4', dev, 'proxy_arp'),
  forwarding4: sysctl('ipv4', dev, 'forwarding'),
  proxyNdp: sysctl('ipv6', dev, 'proxy_ndp'),
  forwarding6: sysctl('ipv6', dev, 'forwarding'),
})

interface IpAddr {
  addr_info: { family: string; local?: string; prefixlen?: number; scope?: string }[]
}
interface IpRoute {
  dst: string
  dev?: string
  scope?: string
  protocol?: string
}

/** The global addresses of `dev` in one family, as `ip -j addr` has them. */
export function globalAddresses(family: '-4' | '-6', dev: string, ns?: string): string[] {
  const rows = ip(...(ns ? ['-n', ns] : []), family, 'addr', 'show', 'dev', dev, 'scope', 'global') as IpAddr[]
  return rows
    .flatMap((r) => r.addr_info)
    .filter((a) => a.local !== undefined)
    .map((a) => `${a.local}/${a.prefixlen}`)
    .sort()
}

/** The main-table routes through `dev` that the kernel did not add itself. */
export function ownRoutes(family: '-4' | '-6', dev: string, ns?: string): string[] {
  const rows = ip(...(ns ? ['-n', ns] : []), family, 'route', 'show', 'dev', dev) as IpRoute[]
  return rows
    .filter((r) => r.protocol !== 'kernel')
    .map((r) => `${r.dst} scope ${r.scope ?? 'global'}`)
    .sort()
}

function errInfo(f: () => unknown) {
  try {
    f()
    return null
  } catch (e) {
    const err = e as TapError
    return {
      name: err.name,
      code: err.code,
      syscall: err.syscall,
      path: err.path,
      message: err.message,
      isTapError: err instanceof TapError,
    }
  }
}

/** Routed mode at open: Ganeti's / Incus' host side of a routed NIC, in one call. */
export function routed() {
  const tap = openTap({
    name: 'hr0',
    up: true,
    addresses: ['192.0.2.1/32', '2001:db8:1::1/64'],
    routes: ['192.0.2.2/32', '2001:db8:2::/64'],
    proxyArp: true,
    proxyNdp: true,
    forwarding: true,
    txQueueLen: 500,
  })
  try {
    return {
      v4: globalAddresses('-4', 'hr0'),
      v6: globalAddresses('-6', 'hr0'),
      routes4: ownRoutes('-4', 'hr0'),
      routes6: ownRoutes('-6', 'hr0'),
      // The kernel's own entries, whole: the address's /32 is local, the route is a device route.
      route4: (ip('-4', 'route', 'show', '192.0.2.2/32') as IpRoute[])[0],
      sysctls: sysctls('hr0'),
      loForwarding: sysctl('ipv4', 'lo', 'forwarding'),
      info: tap.getLinkInfo(),
      txqlen: (ip('link', 'show', 'dev', 'hr0') as { txqlen: number }[])[0].txqlen,
    }
  } finally {
    tap.close()
  }
}

/** Bridges whose MTU is 9000: from a port (it follows ports down), and set by hand. */
function bridges() {
  sh('ip', 'link', 'add', 'bra', 'type', 'bridge')
  sh('ip', 'link', 'add', 'vja', 'mtu', '9000', 'type', 'veth', 'peer', 'name', 'vjb', 'mtu', '9000')
  sh('ip', 'link', 'set', 'vja', 'master', 'bra')
  sh('ip', 'link', 'add', 'brm', 'type', 'bridge')
  sh('ip', 'link', 'set', 'brm', 'mtu', '9000')
}

const mtu = (dev: string) => (ip('link', 'show', 'dev', dev) as { mtu: number }[])[0].mtu

/** A tap enslaved without mtu takes the bridge's; the port's flags and the queue length read back. */
export function bridged() {
  bridges()
  const before = { bra: mtu('bra'), brm: mtu('brm') }
  const port = { isolated: true, learning: false, unicastFlood: false, hairpin: true }
  const a = openTap({ name: 'hba0', bridge: 'bra', bridgePort: port, txQueueLen: 64, up: true })
  const m = openTap({ name: 'hbm0', bridge: 'brm', up: true })
  const np = openTap({ name: 'hnp0' })
  try {
    const link = (ip('-d', 'link', 'show', 'dev', 'hba0') as Record<string, any>[])[0]
    const after = { bra: mtu('bra'), brm: mtu('brm'), hba0: mtu('hba0'), hbm0: mtu('hbm0') }
    m.setBridgePort({ isolated: true })
    m.setBridgePort({ learning: false })
    const mPort = (ip('-d', 'link', 'show', 'dev', 'hbm0') as Record<string, any>[])[0].linkinfo.info_slave_data
    m.setTxQueueLen(0)
    const mInfo = m.getLinkInfo()
    return {
      before,
      after,
      master: link.master,
      txqlen: link.txqlen,
      port: link.linkinfo.info_slave_data,
      mPort,
      mInfo,
      notAPort: errInfo(() => np.setBridgePort({ isolated: true })),
    }
  } finally {
    a.close()
    m.close()
    np.close()
  }
}

/** Every new method against ip, sysfs and /proc/sys; kernel refusals as TapErrors. */
export function methods() {
  const tap = openTap({ name: 'hm0' })
  const out: Record<string, unknown> = {}
  try {
    out.routeWhileDown = errInfo(() => tap.addRoute('198.51.100.0/24'))
    tap.setLinkUp(true)
    tap.addAddress('10.20.0.1/24')
    tap.addAddress('2001:db8:9::1')
    tap.addRoute('198.51.100.0/24')
    tap.addRoute('2001:db8:7::/48')
    out.added = {
      v4: globalAddresses('-4', 'hm0'),
      v6: globalAddresses('-6', 'hm0'),
      routes4: ownRoutes('-4', 'hm0'),
      routes6: ownRoutes('-6', 'hm0'),
    }
    out.addTwice = errInfo(() => tap.addAddress('10.20.0.1/24'))
    out.routeTwice = errInfo(() => tap.addRoute('198.51.100.0/24'))
    tap.removeRoute('198.51.100.0/24')
    tap.removeRoute('2001:db8:7::/48')
    tap.removeAddress('10.20.0.1/24')
    tap.removeAddress('2001:db8:9::1/128')
    out.removed = {
      v4: globalAddresses('-4', 'hm0'),
      v6: globalAddresses('-6', 'hm0'),
      routes4: ownRoutes('-4', 'hm0'),
      routes6: ownRoutes('-6', 'hm0'),
    }
    out.removeMissing = errInfo(() => tap.removeAddress('10.20.0.1/24'))
    out.removeMissingRoute = errInfo(() => tap.removeRoute('198.51.100.0/24'))
    const s0 = sysctls('hm0')
    tap.setProxyArp(true)
    tap.setProxyNdp(true)
    tap.setForwarding(true)
    const s1 = sysctls('hm0')
    tap.setProxyArp(false)
    tap.setProxyNdp(false)
    tap.setForwarding(false)
    out.sysctls = [s0, s1, sysctls('hm0')]
    const carrier = () => readFileSync('/sys/class/net/hm0/carrier', 'utf8').trim()
    const c0 = { info: tap.getLinkInfo().carrier, sysfs: carrier() }
    tap.setCarrier(false)
    const c1 = {
      info: tap.getLinkInfo().carrier,
      sysfs: carrier(),
      flags: (ip('link', 'show', 'dev', 'hm0') as { flags: string[] }[])[0].flags,
    }
    tap.setCarrier(true)
    out.carrier = [c0, c1, { info: tap.getLinkInfo().carrier, sysfs: carrier() }]
    tap.setTxQueueLen(4242)
    out.txqlen = { info: tap.getLinkInfo().txQueueLen, sysfs: readFileSync('/sys/class/net/hm0/tx_queue_len', 'utf8') }
  } finally {
    tap.close()
  }
  // A device without IPv6 (an MTU below 1280 takes it away).
  const small = openTap({ name: 'hm6', mtu: 1200, up: true })
  try {
    out.noIpv6 = errInfo(() => small.setProxyNdp(true))
    small.setForwarding(true)
    out.noIpv6Forwarding = { v4: sysctl('ipv4', 'hm6', 'forwarding'), v6dir: existsSync('/proc/sys/net/ipv6/conf/hm6') }
  } finally {
    small.close()
  }
  out.openNoIpv6 = errInfo(() => openTap({ name: 'hm7', mtu: 1200, up: true, proxyNdp: true }))
  out.gone = !exists('hm0') && !exists('hm6') && !exists('hm7')
  return out
}

/** Bad arguments to every new method and option: the documented error, and the addon never called. */
export function refusals() {
  const tap = openTap({ name: 'hv0' })
  const n = native() as unknown as Record<string, unknown>
  const seen: string[] = []
  const saved: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(n)) {
    if (typeof v !== 'function') continue
    saved[k] = v
    n[k] = (...args: unknown[]) => {
      seen.push(k)
      return (v as (...a: unknown[]) => unknown)(...args)
    }
  }
  const bad: [string, () => unknown][] = [
    ['addAddress(1)', () => tap.addAddress(1 as never)],
    ['addAddress(/33)', () => tap.addAddress('192.0.2.1/33')],
    ['addAddress(0.0.0.0)', () => tap.addAddress('0.0.0.0')],
    ['addAddress(zone)', () => tap.addAddress('fe80::1%eth0')],
    ['removeAddress(multicast)', () => tap.removeAddress('ff02::1')],
    ['addRoute(host bits)', () => tap.addRoute('192.0.2.5/24')],
    ['removeRoute(/129)', () => tap.removeRoute('2001:db8::/129')],
    ['setProxyArp(1)', () => tap.setProxyArp(1 as never)],
    ['setProxyNdp()', () => (tap.setProxyNdp as () => void)()],
    ['setForwarding("on")', () => tap.setForwarding('on' as never)],
    ['setCarrier(null)', () => tap.setCarrier(null as never)],
    ['setTxQueueLen(-1)', () => tap.setTxQueueLen(-1)],
    ['setTxQueueLen(2**31)', () => tap.setTxQueueLen(2 ** 31)],
    ['setTxQueueLen(1.5)', () => tap.setTxQueueLen(1.5)],
    ['setBridgePort({ isolate })', () => tap.setBridgePort({ isolate: true } as never)],
    ['setBridgePort({ hairpin: 1 })', () => tap.setBridgePort({ hairpin: 1 } as never)],
    ['setBridgePort(null)', () => tap.setBridgePort(null as never)],
    ['open addresses not an array', () => openTap({ addresses: '192.0.2.1/32' as never })],
    ['open addresses twice', () => openTap({ addresses: ['192.0.2.1', '192.0.2.1/24'] })],
    ['open routes without up', () => openTap({ routes: ['192.0.2.0/24'] })],
    ['open routes host bits', () => openTap({ routes: ['192.0.2.1/24'], up: true })],
    ['open bridgePort without bridge', () => openTap({ bridgePort: { isolated: true } })],
    ['open proxyArp "yes"', () => openTap({ proxyArp: 'yes' as never })],
    ['open txQueueLen too big', () => openTap({ txQueueLen: 2 ** 31 })],
    [
      'open too many routes',
      () => openTap({ up: true, routes: Array.from({ length: 257 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`) }),
    ],
  ]
  const results: Record<string, { name: string; code: string; message: string } | 'returned'> = {}
  try {
    for (const [label, f] of bad) {
      try {
        f()
        results[label] = 'returned'
      } catch (e) {
        const err = e as NodeJS.ErrnoException
        results[label] = { name: err.name, code: err.code ?? '', message: err.message }
      }
    }
  } finally {
    Object.assign(n, saved)
    tap.close()
  }
  return { results, calls: seen }
}

/**
 * From this namespace, a device in namespace `other` (openTap's netns): its
 * addresses, routes and sysctls land there, none here.
 */
export function fromOutside(other: string) {
  const tap = openTap({
    name: 'ho0',
    netns: other,
    up: true,
    addresses: ['192.0.2.1/32'],
    routes: ['192.0.2.2/32'],
    proxyArp: true,
    forwarding: true,
  })
  try {
    tap.addAddress('2001:db8:5::1/64')
    tap.addRoute('203.0.113.0/24')
    tap.setProxyNdp(true)
    const there = (key: string, family = 'ipv4') =>
      sh('ip', 'netns', 'exec', other, 'cat', `/proc/sys/net/${family}/conf/ho0/${key}`).trim()
    return {
      v4: globalAddresses('-4', 'ho0', other),
      v6: globalAddresses('-6', 'ho0', other),
      routes4: ownRoutes('-4', 'ho0', other),
      sysctls: { proxyArp: there('proxy_arp'), forwarding: there('forwarding'), proxyNdp: there('proxy_ndp', 'ipv6') },
      here: exists('ho0') || existsSync('/proc/sys/net/ipv4/conf/ho0'),
      info: tap.getLinkInfo(),
    }
  } finally {
    tap.close()
  }
}

/**
 * An existing persistent device opened again with a route that clashes:
 * the call fails and what it added is gone, what the device had stays.
 */
export function undo() {
  openTap({ name: 'hu0', persist: true, up: true, addresses: ['192.0.2.1/32'] }).close()
  sh('ip', 'link', 'add', 'hud0', 'type', 'veth', 'peer', 'name', 'hud1')
  sh('ip', 'link', 'set', 'hud0', 'up')
  sh('ip', 'route', 'add', '198.51.100.9/32', 'dev', 'hud0')
  const before = { v4: globalAddresses('-4', 'hu0'), sysctls: sysctls('hu0') }
  const error = errInfo(() =>
    openTap({
      name: 'hu0',
      up: true,
      addresses: ['192.0.2.1/32', '192.0.2.77/32'],
      routes: ['192.0.2.2/32', '198.51.100.9/32'],
      proxyArp: true,
    }),
  )
  const after = { v4: globalAddresses('-4', 'hu0'), sysctls: sysctls('hu0'), routes4: ownRoutes('-4', 'hu0') }
  sh('ip', 'link', 'del', 'hu0')
  return { before, error, after }
}

/** The CLI (the built dist/cli.js) with the host-side flags: create, then exec. */
export function cli(repo: string) {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [join(repo, 'dist', 'cli.js'), ...args], { encoding: 'utf8' })
  sh('ip', 'link', 'add', 'hcbr', 'type', 'bridge')
  const created = run(
    'create',
    '--name',
    'hc0',
    '--up',
    '--address',
    '192.0.2.1/32',
    '--address',
    '2001:db8:1::1/64',
    '--route',
    '192.0.2.2/32',
    '--proxy-arp',
    '--forwarding',
    '--txqueuelen',
    '321',
    '--bridge',
    'hcbr',
    '--bridge-port',
    'isolated,learning=off',
  )
  const link = (ip('-d', 'link', 'show', 'dev', 'hc0') as Record<string, any>[])[0]
  const createdState = {
    v4: globalAddresses('-4', 'hc0'),
    v6: globalAddresses('-6', 'hc0'),
    routes4: ownRoutes('-4', 'hc0'),
    sysctls: sysctls('hc0'),
    txqlen: link.txqlen,
    port: link.linkinfo.info_slave_data,
  }
  run('delete', 'hc0')
  const script =
    'ip -j addr show dev {ifname}; echo ---; ip -j route show dev {ifname}; echo ---; ' +
    'cat /proc/sys/net/ipv4/conf/{ifname}/proxy_arp'
  const exec = run(
    'exec',
    '--net',
    'name=hx0,up,address=192.0.2.1/32,address=2001:db8:3::1/64,route=192.0.2.2/32,proxy-arp,txqueuelen=77',
    '--',
    'sh',
    '-c',
    script,
  )
  const routeWithoutUp = run('exec', '--route', '192.0.2.2/32', '--', 'true')
  const badAddress = run('exec', '--address', '192.0.2.1/33', '--', 'true')
  const badPort = run('exec', '--bridge', 'hcbr', '--bridge-port', 'isolate', '--', 'true')
  const addressWithNet = run('exec', '--address', '192.0.2.1', '--net', 'name=a0', '--', 'true')
  return {
    created: { status: created.status, stdout: created.stdout, stderr: created.stderr },
    createdState,
    exec: { status: exec.status, stdout: exec.stdout, stderr: exec.stderr },
    routeWithoutUp: { status: routeWithoutUp.status, stderr: routeWithoutUp.stderr },
    badAddress: { status: badAddress.status, stderr: badAddress.stderr },
    badPort: { status: badPort.status, stderr: badPort.stderr },
    addressWithNet: { status: addressWithNet.status, stderr: addressWithNet.stderr },
    left: readdirSync('/sys/class/net').sort(),
  }
}
