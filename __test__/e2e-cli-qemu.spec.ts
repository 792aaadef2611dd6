// End to end through the CLI: a real QEMU guest (TCG, Debian
// kernel, busybox initramfs from __test__/guest/build.ts) booted by
//
//   vmtap exec --queues 2 --bridge br0 --up -- qemu-system-x86_64 ... \
//       -netdev {netdev} -device {device},mac=52:54:00:77:00:02
//
// inside a fresh network namespace whose bridge carries the host's address.
// __test__/guest/cli-scenario.ts drives it from inside the namespace and
// reports JSON; this file asserts on it.
//
// Needs root, qemu-system-x86_64, /boot/vmlinuz-* with /lib/modules/*, and
// busybox-static; a missing one fails the test (never skips it).
import { probeFeatures } from '../index'
import { BRIDGE, CLI_MAC, type CliConfig, type CliResult } from './guest/cli-scenario'
import { plainConsole } from './guest/host'
import { ensureDistBuilt } from './helpers'
import { assertGuestRan, prepareGuest, runDriver, type DriverOutcome } from './guest/run'
import { rootTest, type T } from './helpers'

const QUEUES = 2
/** A hung guest is killed after this long. */
const QEMU_TIMEOUT_MS = 60_000

function logOutcome(t: T, o: DriverOutcome<CliResult>): void {
  const r = o.result
  t.log(
    `${o.netns}: driver ${o.ms} ms, vmtap ran ${r.exit?.ms ?? '?'} ms; guest (ms after start): ${Object.entries(
      r.eventTimes ?? {},
    )
      .map(([e, ms]) => `${e}@${ms}`)
      .join(' ')}`,
  )
  if (r.error || !r.guest?.done || r.exit?.code !== 0) {
    t.log(`guest console and QEMU/vmtap stderr:\n${plainConsole(r.console ?? '')}`)
    t.log(`driver stderr (tail):\n${o.stderr.slice(-4000)}`)
  }
}

rootTest(
  "qemu e2e via the CLI: vmtap exec --queues 2 --bridge br0 --up boots a guest with 2 queue pairs that pings both ways; vmtap exits with QEMU's status and no tap is left",
  async (t) => {
    t.timeout(QEMU_TIMEOUT_MS + 60_000)
    const guest = prepareGuest()
    const cli = ensureDistBuilt()
    const config: CliConfig = {
      kernel: guest.kernel,
      initrd: guest.initrd,
      cli,
      queues: QUEUES,
      smp: 2,
      transferBytes: 1 << 20,
      timeoutMs: QEMU_TIMEOUT_MS,
    }
    const o = await runDriver<CliResult>('e2e-cli', 'cli-scenario.ts', config, QEMU_TIMEOUT_MS + 30_000)
    logOutcome(t, o)
    const r = o.result
    if (r.error) throw new Error(`the scenario failed: ${r.error}`)

    // vmtap ran QEMU to the end and exited with its status.
    // vmtap ran QEMU to the end and exited with its status; the guest finished.
    assertGuestRan(t, r, "vmtap exited 0: QEMU's status after the guest powered off")
    t.notRegex(r.console, /^vmtap: /m, 'vmtap reported no error')
    t.regex(
      r.guest.nic ?? '',
      new RegExp(`^driver=virtio_net mac=${CLI_MAC} interfaces=eth0,lo,$`),
      'the guest has one NIC, virtio_net, with the MAC given after {device}',
    )
    t.deepEqual(r.guest.queues, { rx: QUEUES, tx: QUEUES }, `eth0 has ${QUEUES} rx and ${QUEUES} tx queues`)
    t.deepEqual(r.guest.ping, { sent: 3, received: 3 }, 'guest -> host pings (to the address on the bridge)')
    t.like(r.host.ping, { sent: 3, received: 3 }, 'host -> guest pings')
    t.is(r.host.sent?.bytes, 1 << 20)
    t.deepEqual(r.guest.rx, r.host.sent, 'host -> guest: 1 MiB, same SHA-256')
    t.is(r.guest.tx?.bytes, 1 << 20)
    t.deepEqual(r.host.received, r.guest.tx, 'guest -> host: 1 MiB, same SHA-256')

    // While it ran: the placeholders were substituted, QEMU got the queues as fds 3 and 4, vmtap kept none.
    const w = r.whileRunning
    if (!w) throw new Error('no sample while QEMU ran')
    t.is(w.children, 1, 'vmtap has one child: QEMU')
    const vhost = probeFeatures().vhostNet
    const netdev = vhost ? 'tap,id=net0,fds=3:4,vhost=on,vhostfds=5:6' : 'tap,id=net0,fds=3:4'
    const arg = (flag: string) => w.qemuArgs[w.qemuArgs.indexOf(flag) + 1]
    t.is(arg('-netdev'), netdev, `{netdev} became ${netdev}`)
    t.is(
      arg('-device'),
      `virtio-net-pci,netdev=net0,mq=on,vectors=6,mac=${CLI_MAC}`,
      '{device} became the multi-queue virtio-net-pci device',
    )
    t.false(
      w.qemuArgs.some((a) => /\{(netdev|device|fds?|ifname)\}/.test(a)),
      'no placeholder left',
    )
    t.is(w.ports.length, 1, `${BRIDGE} has one port: the tap`)
    const port = w.ports[0]
    t.like(
      port,
      {
        kind: 'tun',
        master: BRIDGE,
        up: true,
        tun: { type: 'tap', multi_queue: true, numqueues: QUEUES, numdisabled: 0 },
      },
      '--bridge and --up were applied; the guest enabled both queue pairs',
    )
    t.deepEqual(w.qemuTapFdNumbers, [3, 4], `QEMU's fds 3 and 4 are ${port?.ifname}'s queues`)
    t.is(w.vmtapTunFds, 0, 'vmtap closed its copies once QEMU had started')

    // Afterwards: the device went with QEMU; only what the test made is left.
    const names = (links: { ifname: string }[]) => links.map((l) => l.ifname).sort()
    t.deepEqual(names(r.after?.links ?? []), [BRIDGE, 'lo'].sort(), 'right after vmtap exited: no tap in the namespace')
    t.false((r.after?.links ?? []).some((l) => l.kind === 'tun'))
    t.deepEqual(names(o.linksAfter), [BRIDGE, 'lo'].sort(), 'seen from outside the namespace too')
    t.deepEqual(o.leftoverPids, [], 'no process (vmtap, QEMU) left in the namespace')
  },
)
