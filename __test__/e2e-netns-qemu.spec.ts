// End to end with namespaces: two real guests at once, each on a 2-queue tap
// named vmt0 in its own network namespace, both with the guest address
// 10.77.0.2; each pings 10.77.0.1, an address that exists only in its own
// namespace. A process in a third namespace opened both taps and never left
// its own. Needs root and QEMU (a missing one fails the test).
import { execFileSync } from 'node:child_process'

import { type DriverOutcome, prepareGuest, runDriver } from './guest/run'
import { plainConsole } from './guest/host'
import type { NetnsConfig, NetnsResult } from './guest/netns-scenario'
import { rootTest, type T } from './helpers'

const QEMU_TIMEOUT_MS = 90_000

function logOutcome(t: T, o: DriverOutcome<NetnsResult>): void {
  for (const g of o.result.guests ?? []) {
    t.log(`${g.ns}: ${g.events.join(' | ')}`)
    if (!g.done) t.log(`console:\n${plainConsole(g.console).slice(-3000)}`)
  }
  if (o.result.error) t.log(`driver stderr:\n${o.stderr.slice(-3000)}`)
}

rootTest(
  'two guests at once, each on a 2-queue vmt0 in its own namespace with the same address, ping their own host side',
  async (t) => {
    t.timeout(QEMU_TIMEOUT_MS + 60_000)
    const guest = prepareGuest()
    const namespaces: [string, string] = [`vmtap-e2ens-a-${process.pid}`, `vmtap-e2ens-b-${process.pid}`]
    for (const ns of namespaces) execFileSync('ip', ['netns', 'add', ns])
    try {
      const config: NetnsConfig = { kernel: guest.kernel, initrd: guest.initrd, namespaces, timeoutMs: QEMU_TIMEOUT_MS }
      const o = await runDriver<NetnsResult>('e2e-netns', 'netns-scenario.ts', config, QEMU_TIMEOUT_MS + 30_000)
      logOutcome(t, o)
      const r = o.result
      if (r.error) throw new Error(`the scenario failed: ${r.error}`)
      t.deepEqual(r.links, { a: true, b: true, here: false }, 'vmt0 in A and in B, none where vmtap ran')
      t.deepEqual(
        r.netns,
        namespaces.map((n) => `/run/netns/${n}`),
      )
      t.is(r.guests?.length, 2)
      for (const g of r.guests ?? []) {
        t.is(g.fail, undefined, `${g.ns}: the guest reported no failure`)
        t.true(g.done, `${g.ns}: the guest reached DONE`)
        t.deepEqual(g.queues, { rx: 2, tx: 2 }, `${g.ns}: 2 queue pairs in the guest`)
        t.is(g.qemuTapFds, 2, `${g.ns}: QEMU held both queues' fds`)
        t.deepEqual(g.ping, { sent: 3, received: 3 }, `${g.ns}: the guest reached 10.77.0.1 in its own namespace`)
        t.deepEqual(g.exit, { code: 0, signal: null }, `${g.ns}: QEMU exited after the guest powered off`)
      }
      t.deepEqual(r.after, { a: false, b: false }, 'each device went with its QEMU')
      t.deepEqual(o.leftoverPids, [])
    } finally {
      for (const ns of namespaces) execFileSync('ip', ['netns', 'del', ns])
    }
  },
)
