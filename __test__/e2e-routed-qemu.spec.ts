// End to end, routed mode: one real guest on a tap that vmtap configured as
// Ganeti's and Incus' routed NICs do — host address 192.0.2.1/32 on the tap,
// a route to the guest 192.0.2.2/32 through it, proxy ARP and forwarding —
// reaches addresses in another namespace through the host: 198.51.100.2
// through its gateway (forwarding) and 198.51.100.3 as if it were on its own
// link (proxy ARP). The host's tables are checked against `ip -j addr` and
// `ip -j route`. Needs root and QEMU (a missing one fails the test).
import { execFileSync } from 'node:child_process'

import { type DriverOutcome, prepareGuest, runDriver } from './guest/run'
import { plainConsole } from './guest/host'
import type { RoutedConfig, RoutedResult } from './guest/routed-scenario'
import { rootTest, type T } from './helpers'

const QEMU_TIMEOUT_MS = 90_000

function logOutcome(t: T, o: DriverOutcome<RoutedResult>): void {
  t.log(`guest: ${(o.result.events ?? []).join(' | ')}`)
  if (!o.result.done) t.log(`console:\n${plainConsole(o.result.console ?? '').slice(-3000)}`)
  if (o.result.error) t.log(`driver stderr:\n${o.stderr.slice(-3000)}`)
}

interface IpAddr {
  ifname: string
  flags: string[]
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[]
}

rootTest(
  'routed mode: a guest at 192.0.2.2 behind a vmtap-configured tap reaches another namespace through the host',
  async (t) => {
    t.timeout(QEMU_TIMEOUT_MS + 60_000)
    const guest = prepareGuest()
    const remote = `vmtap-e2erouted-r-${process.pid}`
    execFileSync('ip', ['netns', 'add', remote])
    try {
      const config: RoutedConfig = { kernel: guest.kernel, initrd: guest.initrd, remote, timeoutMs: QEMU_TIMEOUT_MS }
      const o = await runDriver<RoutedResult>('e2erouted', 'routed-scenario.ts', config, QEMU_TIMEOUT_MS + 30_000)
      logOutcome(t, o)
      const r = o.result
      if (r.error) throw new Error(`the scenario failed: ${r.error}`)

      // The host's tables, as ip reports them.
      const [link] = r.addr as IpAddr[]
      t.is(link.ifname, 'vmr0')
      t.true(link.flags.includes('UP'))
      t.deepEqual(
        link.addr_info
          .filter((a) => a.family === 'inet')
          .map((a) => ({ local: a.local, prefixlen: a.prefixlen, scope: a.scope })),
        [{ local: '192.0.2.1', prefixlen: 32, scope: 'global' }],
      )
      t.deepEqual(
        r.route,
        [{ dst: '192.0.2.2', scope: 'link', flags: [] }],
        'one route through the tap: the device route to the guest (ip leaves out protocol boot)',
      )
      t.deepEqual(r.sysctls, { proxyArp: '1', forwarding: '1', allForwarding: '0', allProxyArp: '0' }, 'the tap only')

      // The guest.
      t.is(r.fail, undefined, 'the guest reported no failure')
      t.true(r.done, 'the guest reached DONE')
      t.deepEqual(r.ping, { sent: 3, received: 3 }, '198.51.100.2 through the gateway: forwarded by the host')
      t.deepEqual(r.onlinkPing, { sent: 3, received: 3 }, '198.51.100.3 on-link: answered by proxy ARP')
      t.regex(r.neighbour ?? '', /^192\.0\.2\.2 lladdr 52:54:00:c0:00:02 /, 'the host reached the guest on the tap')
      t.deepEqual(r.exit, { code: 0, signal: null }, 'QEMU exited after the guest powered off')
      t.false(r.after, 'the device went with QEMU')
      t.deepEqual(o.leftoverPids, [])
    } finally {
      execFileSync('ip', ['netns', 'del', remote])
    }
  },
)
