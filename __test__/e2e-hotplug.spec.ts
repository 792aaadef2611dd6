// End to end hot-plug: a real QEMU guest (TCG, Debian kernel,
// busybox initramfs; `pc` machine, ACPI PCI hot-plug on pci.0) gets a
// 2-queue NIC hot-added over QMP — connectQmp, openTap, hotplugNic (getfd
// with SCM_RIGHTS per fd, netdev_add, device_add) — uses it, and loses it
// again with unplugNic (device_del, DEVICE_DELETED, netdev_del, closefd).
// __test__/guest/hotplug-scenario.ts drives it from inside a fresh network
// namespace and reports JSON; this file asserts on it.
//
// Needs root, qemu-system-x86_64, /boot/vmlinuz-* with /lib/modules/*, and
// busybox-static; a missing one fails the test (never skips it).
import { plainConsole } from './guest/host'
import { HOTPLUG_ID, HOTPLUG_MAC, type HotplugConfig, type HotplugResult } from './guest/hotplug-scenario'
import { assertGuestRan, prepareGuest, runDriver, type DriverOutcome } from './guest/run'
import { rootTest, type T } from './helpers'

const QUEUES = 2
/** A hung guest is killed after this long. */
const QEMU_TIMEOUT_MS = 90_000

function logOutcome(t: T, o: DriverOutcome<HotplugResult>): void {
  const r = o.result
  const times = Object.entries(r.eventTimes ?? {})
    .map(([e, ms]) => `${e}@${ms}`)
    .join(' ')
  t.log(
    `${o.netns}: driver ${o.ms} ms, QEMU ran ${r.exit?.ms ?? '?'} ms; hotplugNic ${r.hotplug?.ms ?? '?'} ms, unplugNic ${r.unplug?.ms ?? '?'} ms; guest (ms after start): ${times}`,
  )
  t.log(
    `QMP events: ${(r.qmpEvents ?? []).map((e) => `${e.event}${e.data?.device ? `(${String(e.data.device)})` : ''}`).join(', ')}`,
  )
  if (r.error || !r.guest?.done) {
    t.log(`guest console and QEMU stderr:\n${plainConsole(r.console ?? '')}`)
    t.log(`driver stderr (tail):\n${o.stderr.slice(-4000)}`)
  }
}

rootTest(
  'qemu e2e hot-plug: hotplugNic adds a 2-queue NIC over QMP (SCM_RIGHTS), the guest uses it, unplugNic removes it from guest and host',
  async (t) => {
    t.timeout(QEMU_TIMEOUT_MS + 60_000)
    const guest = prepareGuest()
    const config: HotplugConfig = {
      kernel: guest.kernel,
      initrd: guest.initrd,
      smp: 2,
      queues: QUEUES,
      timeoutMs: QEMU_TIMEOUT_MS,
    }
    const o = await runDriver<HotplugResult>('e2e-hotplug', 'hotplug-scenario.ts', config, QEMU_TIMEOUT_MS + 30_000)
    logOutcome(t, o)
    const r = o.result
    if (r.error) throw new Error(`the scenario failed: ${r.error}`)

    assertGuestRan(
      t,
      r,
      'QEMU powered off by itself',
      'the guest reached DONE (released over eth0, which still works after the unplug)',
    )
    t.regex(
      r.guest.nic ?? '',
      /^driver=virtio_net mac=52:54:00:77:00:02 interfaces=eth0,lo,$/,
      'the guest booted with one NIC',
    )

    // --- hot-plug --------------------------------------------------------------
    const hp = r.hotplug
    if (!hp) throw new Error('hotplugNic did not complete')
    t.deepEqual(
      { ...hp.nic },
      {
        id: HOTPLUG_ID,
        deviceId: `${HOTPLUG_ID}-dev`,
        fdNames: [`${HOTPLUG_ID}-0`, `${HOTPLUG_ID}-1`],
        vhostFdNames: [],
      },
      'hotplugNic registered one fd per queue',
    )
    t.like(hp, { tapFds: QUEUES, vhostFds: 0 })
    t.is(hp.qemuFdNumbers.length, QUEUES, 'QEMU received the queues over SCM_RIGHTS')
    t.like(
      r.afterHotplug,
      { deviceExists: true, qemuTapFds: QUEUES, qemuTunFds: 1 + QUEUES, ownTunFds: 0 },
      'after the parent closed its copies, QEMU alone holds the device',
    )

    t.regex(
      r.guest.hotplugNic ?? '',
      new RegExp(`^driver=virtio_net mac=${HOTPLUG_MAC} interfaces=eth0,eth1,lo,$`),
      'eth1 appeared in the guest: virtio_net with our MAC',
    )
    t.deepEqual(r.guest.hotplugQueues, { rx: QUEUES, tx: QUEUES }, `eth1 has ${QUEUES} rx and ${QUEUES} tx queues`)
    t.like(
      r.whilePlugged,
      {
        deviceExists: true,
        qemuTapFds: QUEUES,
        ownTunFds: 0,
        tun: { multi_queue: true, numqueues: QUEUES, numdisabled: 0 },
      },
      'the guest enabled both queue pairs',
    )
    t.true(
      r.whilePlugged?.peripherals?.includes(`${HOTPLUG_ID}-dev`),
      `QEMU has the device: ${r.whilePlugged?.peripherals}`,
    )
    t.regex(
      r.whilePlugged?.network ?? '',
      new RegExp(`${HOTPLUG_ID}: index=1,type=tap`),
      'QEMU has the netdev with 2 queues',
    )
    t.deepEqual(r.guest.hotplugPing, { sent: 3, received: 3 }, 'guest -> host pings through eth1')
    t.like(r.host.hotplugPing, { sent: 3, received: 3 }, 'host -> guest pings through the hot-plugged tap')

    // --- unplug ----------------------------------------------------------------
    t.true(
      r.qmpEvents.some((e) => e.event === 'DEVICE_DELETED' && e.data?.device === `${HOTPLUG_ID}-dev`),
      `DEVICE_DELETED for ${HOTPLUG_ID}-dev arrived: ${JSON.stringify(r.qmpEvents)}`,
    )
    t.like(
      r.afterUnplug,
      { deviceExists: false, qemuTapFds: 0, qemuTunFds: 1, ownTunFds: 0 },
      "after unplugNic: the host device is gone, QEMU holds only eth0's fd, we hold none",
    )
    t.false(
      r.afterUnplug?.peripherals?.includes(`${HOTPLUG_ID}-dev`),
      `QEMU no longer has the device: ${r.afterUnplug?.peripherals}`,
    )
    t.notRegex(r.afterUnplug?.network ?? '', new RegExp(`\\b${HOTPLUG_ID}\\b`), 'QEMU no longer has the netdev')
    t.is(r.guest.goneInterfaces, 'eth0,lo,', 'eth1 disappeared from the guest')
    const at = r.eventTimes
    t.true(at.HOTPLUG_PING < at.HOTPLUG_GONE && at.HOTPLUG_GONE < at.DONE, 'in order: pings, eth1 gone, done')

    // --- afterwards ------------------------------------------------------------
    t.deepEqual(r.after, { nic0Exists: false, ownTunFds: 0 }, 'after QEMU exited the boot NIC is gone too')
    t.deepEqual(
      r.fdsAfter,
      r.fdsBefore,
      'the driver holds exactly the fds it had before (QMP socket, sendFds duplicates, taps)',
    )
    t.deepEqual(
      o.linksAfter.map((l) => l.ifname),
      ['lo'],
      'nothing but lo left in the namespace',
    )
    t.deepEqual(o.leftoverPids, [], 'no process left in the namespace')
  },
)
