// End to end with a macvtap: a real guest on a 2-queue macvtap (bridge mode)
// over a veth whose far end is in another namespace with 10.77.0.1/24, as a
// VM on a host's physical network would be. The guest sees 2 queue pairs,
// uses the macvtap's MAC (qemuArgs puts it on the NIC) and pings 10.77.0.1;
// the macvtap outlives QEMU and is gone after close(). Needs root and QEMU
// (a missing one fails the test).
import { execFileSync } from 'node:child_process'

import { plainConsole } from './guest/host'
import type { MacvtapConfig, MacvtapResult } from './guest/macvtap-scenario'
import { prepareGuest, runDriver } from './guest/run'
import { rootTest } from './helpers'

const QEMU_TIMEOUT_MS = 90_000

rootTest(
  'a guest on a 2-queue macvtap over a veth sees 2 queue pairs and pings the far end; close() deletes the link',
  async (t) => {
    t.timeout(QEMU_TIMEOUT_MS + 60_000)
    const guest = prepareGuest()
    const peer = `vmtap-e2emv-p-${process.pid}`
    execFileSync('ip', ['netns', 'add', peer])
    try {
      const config: MacvtapConfig = { kernel: guest.kernel, initrd: guest.initrd, peer, timeoutMs: QEMU_TIMEOUT_MS }
      const o = await runDriver<MacvtapResult>('e2e-macvtap', 'macvtap-scenario.ts', config, QEMU_TIMEOUT_MS + 30_000)
      const r = o.result
      t.log(`events: ${(r.events ?? []).join(' | ')}`)
      if (!r.done) t.log(`console:\n${plainConsole(r.console ?? '').slice(-3000)}`)
      if (r.error) {
        t.log(`driver stderr:\n${o.stderr.slice(-3000)}`)
        throw new Error(`the scenario failed: ${r.error}`)
      }
      t.is(r.kind, 'macvtap')
      t.regex(r.ifname ?? '', /^macvtap\d+$/)
      t.is(r.macs?.device, r.macs?.link, 'TapDevice.mac is the link’s')
      t.is(r.macs?.guest, r.macs?.link, 'the guest NIC has the macvtap’s MAC')
      t.is(r.fail, undefined, 'the guest reported no failure')
      t.true(r.done, 'the guest reached DONE')
      t.deepEqual(r.queues, { rx: 2, tx: 2 }, '2 queue pairs in the guest')
      t.is(r.qemuTapFds, 2, 'QEMU held both queues’ fds')
      t.deepEqual(r.ping, { sent: 3, received: 3 }, 'the guest reached 10.77.0.1 beyond the macvtap')
      t.deepEqual(r.exit, { code: 0, signal: null }, 'QEMU exited after the guest powered off')
      t.true(r.afterQemu, 'the macvtap outlived its fds')
      t.false(r.afterClose, 'close() deleted it')
      t.false(
        o.linksAfter.some((l) => l.kind === 'macvtap'),
        'no macvtap left in the namespace',
      )
      t.deepEqual(o.leftoverPids, [])
    } finally {
      execFileSync('ip', ['netns', 'del', peer])
    }
  },
)
