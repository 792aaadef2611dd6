// The host side of a NIC through the public API and the CLI: routed mode
// (addresses, routes, proxy ARP/NDP, forwarding), bridge ports (the bridge's
// MTU, port flags, the queue length) and the carrier, each checked against
// what the kernel reports (`ip -j`, /proc/sys/net, sysfs) inside network
// namespaces the tests create. The end-to-end routed guest is
// e2e-routed-qemu.spec.ts.
import { join } from 'node:path'

import { ensureDistBuilt } from './staging'
import { rootTest } from './helpers'
import { runIn, withNetns } from './netns'

const scenario = 'scenarios/hostside.ts'
type Err = { name: string; code: string; syscall: string; path?: string; message: string; isTapError: boolean } | null

rootTest(
  'routed mode at open: addresses, routes, proxy ARP/NDP, forwarding, txQueueLen as ip and /proc/sys show them',
  async (t) => {
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'routed'))
    t.deepEqual(r.v4, ['192.0.2.1/32'])
    t.deepEqual(r.v6, ['2001:db8:1::1/64'])
    t.deepEqual(r.routes4, ['192.0.2.2 scope link'])
    t.deepEqual(r.routes6, ['2001:db8:2::/64 scope global'])
    t.like(r.route4, { dst: '192.0.2.2', dev: 'hr0', scope: 'link' })
    t.deepEqual(r.sysctls, { proxyArp: '1', forwarding4: '1', proxyNdp: '1', forwarding6: '1' })
    t.is(r.loForwarding, '0', 'only the device, not the namespace')
    t.is(r.txqlen, 500)
    t.like(r.info, { ifname: 'hr0', up: true, carrier: true, txQueueLen: 500 })
  },
)

rootTest(
  'bridged: a tap without mtu takes a 9000-byte bridge MTU (the bridge stays 9000); port flags and txQueueLen from ip -d -j link',
  async (t) => {
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'bridged'))
    t.deepEqual(r.before, { bra: 9000, brm: 9000 })
    t.deepEqual(r.after, { bra: 9000, brm: 9000, hba0: 9000, hbm0: 9000 })
    t.is(r.master, 'bra')
    t.is(r.txqlen, 64)
    t.like(r.port, { isolated: true, learning: false, flood: false, hairpin: true })
    t.like(r.mPort, { isolated: true, learning: false }, 'setBridgePort sets one flag and leaves the others')
    t.is(r.mInfo.txQueueLen, 0)
    t.like(r.notAPort as Err, { isTapError: true, syscall: 'netlink(RTM_SETLINK)' })
  },
)

rootTest(
  'the methods, against ip, sysfs and /proc/sys; kernel refusals are TapErrors that say what to do',
  async (t) => {
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'methods'))
    t.like(r.routeWhileDown as Err, { isTapError: true, code: 'ENETDOWN', syscall: 'netlink(RTM_NEWROUTE)' })
    t.regex(r.routeWhileDown.message, /bring the link up first/)
    t.deepEqual(r.added, {
      v4: ['10.20.0.1/24'],
      v6: ['2001:db8:9::1/128'],
      routes4: ['198.51.100.0/24 scope link'],
      routes6: ['2001:db8:7::/48 scope global'],
    })
    t.like(r.addTwice as Err, { isTapError: true, code: 'EEXIST', syscall: 'netlink(RTM_NEWADDR)' })
    t.like(r.routeTwice as Err, { isTapError: true, code: 'EEXIST', syscall: 'netlink(RTM_NEWROUTE)' })
    t.deepEqual(r.removed, { v4: [], v6: [], routes4: [], routes6: [] })
    t.like(r.removeMissing as Err, { isTapError: true, code: 'EADDRNOTAVAIL' })
    t.like(r.removeMissingRoute as Err, { isTapError: true, code: 'ESRCH' })
    const off = { proxyArp: '0', forwarding4: '0', proxyNdp: '0', forwarding6: '0' }
    t.deepEqual(r.sysctls, [off, { proxyArp: '1', forwarding4: '1', proxyNdp: '1', forwarding6: '1' }, off])
    t.deepEqual(r.carrier[0], { info: true, sysfs: '1' })
    t.like(r.carrier[1], { info: false, sysfs: '0' })
    t.true(r.carrier[1].flags.includes('NO-CARRIER') && r.carrier[1].flags.includes('UP'))
    t.deepEqual(r.carrier[2], { info: true, sysfs: '1' })
    t.deepEqual(r.txqlen, { info: 4242, sysfs: '4242\n' })
    t.like(r.noIpv6 as Err, {
      isTapError: true,
      code: 'ENOENT',
      syscall: 'read',
      path: '/proc/sys/net/ipv6/conf/hm6/proxy_ndp',
    })
    t.regex(r.noIpv6.message, /IPv6 is not available on hm6/)
    t.deepEqual(r.noIpv6Forwarding, { v4: '1', v6dir: false }, 'forwarding: IPv4, IPv6 skipped where there is none')
    t.like(r.openNoIpv6 as Err, { isTapError: true, code: 'ENOENT' })
    t.true(r.gone)
  },
)

rootTest(
  'bad arguments to the new methods and options are TypeError/RangeError before the addon is called',
  async (t) => {
    const r = await withNetns((ns) =>
      runIn<{ results: Record<string, { name: string; code: string; message: string } | 'returned'>; calls: string[] }>(
        ns,
        scenario,
        'refusals',
      ),
    )
    t.deepEqual(r.calls, [], 'nothing reached the addon')
    const expect: Record<string, [string, string]> = {
      'addAddress(1)': ['TypeError', 'ERR_INVALID_ARG_TYPE'],
      'addAddress(/33)': ['RangeError', 'ERR_OUT_OF_RANGE'],
      'addAddress(0.0.0.0)': ['TypeError', 'ERR_INVALID_ARG_VALUE'],
      'addAddress(zone)': ['TypeError', 'ERR_INVALID_ARG_VALUE'],
      'removeAddress(multicast)': ['TypeError', 'ERR_INVALID_ARG_VALUE'],
      'addRoute(host bits)': ['TypeError', 'ERR_INVALID_ARG_VALUE'],
      'removeRoute(/129)': ['RangeError', 'ERR_OUT_OF_RANGE'],
      'setProxyArp(1)': ['TypeError', 'ERR_INVALID_ARG_TYPE'],
      'setProxyNdp()': ['TypeError', 'ERR_INVALID_ARG_TYPE'],
      'setForwarding("on")': ['TypeError', 'ERR_INVALID_ARG_TYPE'],
      'setCarrier(null)': ['TypeError', 'ERR_INVALID_ARG_TYPE'],
      'setTxQueueLen(-1)': ['RangeError', 'ERR_OUT_OF_RANGE'],
      'setTxQueueLen(2**31)': ['RangeError', 'ERR_OUT_OF_RANGE'],
      'setTxQueueLen(1.5)': ['RangeError', 'ERR_OUT_OF_RANGE'],
      'setBridgePort({ isolate })': ['TypeError', 'ERR_INVALID_ARG_VALUE'],
      'setBridgePort({ hairpin: 1 })': ['TypeError', 'ERR_INVALID_ARG_TYPE'],
      'setBridgePort(null)': ['TypeError', 'ERR_INVALID_ARG_TYPE'],
      'open addresses not an array': ['TypeError', 'ERR_INVALID_ARG_TYPE'],
      'open addresses twice': ['TypeError', 'ERR_INVALID_ARG_VALUE'],
      'open routes without up': ['TypeError', 'ERR_INVALID_ARG_VALUE'],
      'open routes host bits': ['TypeError', 'ERR_INVALID_ARG_VALUE'],
      'open bridgePort without bridge': ['TypeError', 'ERR_INVALID_ARG_VALUE'],
      'open proxyArp "yes"': ['TypeError', 'ERR_INVALID_ARG_TYPE'],
      'open txQueueLen too big': ['RangeError', 'ERR_OUT_OF_RANGE'],
      'open too many routes': ['RangeError', 'ERR_OUT_OF_RANGE'],
    }
    t.deepEqual(Object.keys(r.results).sort(), Object.keys(expect).sort())
    for (const [label, [name, code]] of Object.entries(expect)) {
      t.like(r.results[label], { name, code }, label)
    }
    t.regex((r.results['addRoute(host bits)'] as { message: string }).message, /the network is 192\.0\.2\.0\/24/)
    t.regex(
      (r.results['open addresses twice'] as { message: string }).message,
      /options\.addresses\[1\].*repeats options\.addresses\[0\]/,
    )
  },
)

rootTest(
  'a device opened into another namespace (netns) gets its addresses, routes and sysctls there, none here',
  async (t) => {
    const r = await withNetns((other) =>
      withNetns((here) => runIn<Record<string, any>>(here, scenario, 'fromOutside', [other])),
    )
    t.deepEqual(r.v4, ['192.0.2.1/32'])
    t.deepEqual(r.v6, ['2001:db8:5::1/64'])
    t.deepEqual(r.routes4, ['192.0.2.2 scope link', '203.0.113.0/24 scope link'])
    t.deepEqual(r.sysctls, { proxyArp: '1', forwarding: '1', proxyNdp: '1' })
    t.false(r.here)
    t.like(r.info, { ifname: 'ho0', up: true })
  },
)

rootTest(
  'an existing device: a call that fails on a clashing route takes back what it added and keeps what was there',
  async (t) => {
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'undo'))
    t.like(r.error as Err, { isTapError: true, code: 'EEXIST' })
    t.regex(r.error.message, /already has a route to 198\.51\.100\.9\/32 through another interface/)
    t.deepEqual(r.before.v4, ['192.0.2.1/32'])
    t.deepEqual(r.after.v4, ['192.0.2.1/32'], '192.0.2.77 was taken back')
    t.deepEqual(r.after.sysctls, r.before.sysctls)
    t.deepEqual(r.after.routes4, [], 'the route it had added is gone')
  },
)

rootTest(
  'vmtap create and exec with --address, --route, --proxy-arp, --forwarding, --txqueuelen, --bridge-port',
  async (t) => {
    const repo = join(__dirname, '..')
    ensureDistBuilt()
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'cli', [repo]))
    t.is(r.created.status, 0, r.created.stderr)
    t.is(r.created.stdout, 'hc0\n')
    t.deepEqual(r.createdState.v4, ['192.0.2.1/32'])
    t.deepEqual(r.createdState.v6, ['2001:db8:1::1/64'])
    t.deepEqual(r.createdState.routes4, ['192.0.2.2 scope link'])
    t.like(r.createdState.sysctls, { proxyArp: '1', forwarding4: '1' })
    t.is(r.createdState.txqlen, 321)
    t.like(r.createdState.port, { isolated: true, learning: false })
    t.is(r.exec.status, 0, r.exec.stderr)
    const [addr, route, proxyArp] = (r.exec.stdout as string).split('---').map((x) => x.trim())
    const locals = (JSON.parse(addr) as { addr_info: { local: string; prefixlen: number }[] }[])[0].addr_info.map(
      (a) => `${a.local}/${a.prefixlen}`,
    )
    t.true(locals.includes('192.0.2.1/32') && locals.includes('2001:db8:3::1/64'), locals.join(' '))
    t.deepEqual(
      (JSON.parse(route) as { dst: string; protocol?: string }[])
        .filter((x) => x.protocol !== 'kernel')
        .map((x) => x.dst),
      ['192.0.2.2'],
    )
    t.is(proxyArp, '1')
    t.is(r.routeWithoutUp.status, 2)
    t.regex(r.routeWithoutUp.stderr, /^vmtap: .*--route.*needs up: true.*\(ERR_INVALID_ARG_VALUE\)\n$/)
    t.is(r.badAddress.status, 2)
    t.regex(r.badAddress.stderr, /--address\[0\].*\(ERR_OUT_OF_RANGE\)\n$/)
    t.is(r.badPort.status, 2)
    t.regex(r.badPort.stderr, /Unknown bridge port flag 'isolate'/)
    t.is(r.addressWithNet.status, 2)
    t.regex(r.addressWithNet.stderr, /--address cannot be combined with --net/)
    t.deepEqual(r.left, ['hcbr', 'lo'], 'no device left')
  },
)
