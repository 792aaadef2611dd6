// End to end through the broker: QEMU runs as uid 65534 without capabilities
// and gets its NIC from `-netdev bridge,br=br0,helper="<node> vmtap
// bridge-helper --socket ..."` — QEMU's own bridge-helper protocol, answered by
// vmtap's helper as a client of the broker (`vmtap serve`, root), no setuid
// anywhere. The guest (TCG, Debian kernel, busybox initramfs from
// __test__/guest/build.ts) pings the host's address on the bridge and the host
// pings it; the device goes away when QEMU exits.
// __test__/guest/broker-scenario.ts drives it inside a fresh namespace from a
// copy of the package (and of the guest) staged under /tmp, which uid 65534
// can read wherever the checkout lives.
//
// Needs root, qemu-system-x86_64, /boot/vmlinuz-* with /lib/modules/*, and
// busybox-static; a missing one fails the test (never skips it).
import { chmodSync, copyFileSync } from 'node:fs'
import { join } from 'node:path'

import { stageVmtap } from './broker-harness'
import { BRIDGE, BROKER_MAC, type BrokerQemuConfig, type BrokerQemuResult, NOBODY } from './guest/broker-scenario'
import { plainConsole } from './guest/host'
import { assertGuestRan, prepareGuest, runDriver } from './guest/run'
import { rootTest } from './helpers'

const QEMU_TIMEOUT_MS = 60_000

rootTest(
  'qemu e2e through the broker: QEMU as uid 65534 with -netdev bridge,helper="vmtap bridge-helper ..." boots the guest, which pings the address on the bridge; the device goes away with QEMU',
  async (t) => {
    t.timeout(QEMU_TIMEOUT_MS + 90_000)
    const guest = prepareGuest()
    const stage = stageVmtap()
    try {
      for (const [from, to] of [
        [guest.kernel, 'vmlinuz'],
        [guest.initrd, 'initrd.gz'],
      ]) {
        copyFileSync(from, join(stage.dir, to))
        chmodSync(join(stage.dir, to), 0o644)
      }
      const config: BrokerQemuConfig = { stage: stage.dir, timeoutMs: QEMU_TIMEOUT_MS }
      const o = await runDriver<BrokerQemuResult>('e2e-broker', 'broker-scenario.ts', config, QEMU_TIMEOUT_MS + 30_000)
      const r = o.result
      t.log(
        `${o.netns}: driver ${o.ms} ms, QEMU ran ${r.exit?.ms ?? '?'} ms; guest (ms after start): ${Object.entries(
          r.eventTimes ?? {},
        )
          .map(([e, ms]) => `${e}@${ms}`)
          .join(' ')}`,
      )
      if (r.error || !r.guest?.done || r.exit?.code !== 0) {
        t.log(`guest console and QEMU stderr:\n${plainConsole(r.console ?? '')}`)
        t.log(`broker stderr:\n${r.brokerStderr}`)
        t.log(`driver stderr (tail):\n${o.stderr.slice(-4000)}`)
      }
      if (r.error) throw new Error(`the scenario failed: ${r.error}`)

      assertGuestRan(t, r)
      t.regex(r.guest.nic ?? '', new RegExp(`^driver=virtio_net mac=${BROKER_MAC} interfaces=eth0,lo,$`))
      t.deepEqual(r.guest.ping, { sent: 3, received: 3 }, "guest -> host: pings to the host's address on the bridge")
      t.like(r.host.ping, { sent: 3, received: 3 }, 'host -> guest pings')

      const w = r.whileRunning
      if (!w) throw new Error('no sample while QEMU ran')
      t.regex(w.qemuUid, new RegExp(`^${NOBODY}\\s+${NOBODY}\\s+${NOBODY}\\s+${NOBODY}$`), 'QEMU ran as uid 65534')
      t.is(w.qemuCapEff, '0000000000000000', 'without capabilities')
      t.is(w.ports.length, 1, `${BRIDGE} has one port: QEMU's tap`)
      const port = w.ports[0]
      t.like(port, { kind: 'tun', master: BRIDGE, up: true, tun: { type: 'tap', multi_queue: false } })
      t.true(w.owner === 'nobody' || w.owner === NOBODY, `the device is owned by QEMU's uid (${w.owner})`)
      t.is(w.qemuTapFds.length, 1, 'QEMU holds the one fd the helper passed')

      t.is(r.log.length, 1, 'the broker logged one request')
      t.like(r.log[0], {
        event: 'grant',
        uid: NOBODY,
        gid: NOBODY,
        rule: 'qemu-nobody',
        result: port.ifname,
        request: { bridge: BRIDGE, vnetHdr: 'auto', up: true },
      })
      t.not(r.log[0].pid, w.qemuPid, "the client was QEMU's helper, a process of its own")

      const names = (links: { ifname: string }[]) => links.map((l) => l.ifname).sort()
      t.deepEqual(names(r.after?.links ?? []), [BRIDGE, 'lo'].sort(), 'the tap went away with QEMU')
      t.deepEqual(r.broker, { code: 0, signal: null, socketLeft: false }, 'the broker stopped cleanly')
      t.deepEqual(names(o.linksAfter), [BRIDGE, 'lo'].sort())
      t.deepEqual(o.leftoverPids, [], 'no process left in the namespace')
    } finally {
      stage.cleanup()
    }
  },
)
