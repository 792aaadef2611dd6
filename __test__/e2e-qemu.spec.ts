// End to end: a real QEMU guest (TCG, Debian kernel, busybox initramfs from
// __test__/guest/build.ts) moves packets through the fds vmtap opened.
//
// Each case runs __test__/guest/scenario.ts inside a fresh network namespace
// (the tap, its address and all traffic stay in there), which opens the tap
// with openTap, hands it to QEMU with handOff + qemuArgs, closes its copies
// right after spawn, and reports what it saw as JSON. The three cases start
// together on the first test (they are independent: one namespace each) and
// each test awaits its own.
//
// Needs root, qemu-system-x86_64, /boot/vmlinuz-* with /lib/modules/*, and
// busybox-static; a missing one fails the tests (never skips them).
import { spawn } from 'node:child_process'
import { join } from 'node:path'

import { probeFeatures, type OpenTapOptions } from '../index'
import { buildGuest, repoRoot, type Guest } from './guest/build'
import { assertGuestRan, destroyNetns, ipNetns, QEMU, requireQemu } from './guest/run'
import type { ScenarioConfig, ScenarioResult } from './guest/scenario'
import { rootTest, type T } from './helpers'

const MiB = 1 << 20
/** A hung guest is killed after this long (the scenario's own timeout). */
const QEMU_TIMEOUT_MS = 100_000

interface Case {
  tap: OpenTapOptions
  smp: number
  transferBytes: number
}

const CASES = {
  // 4 queue pairs need 4 vCPUs: virtio-net enables min(queues, CPUs) pairs.
  multiQueue: { tap: { queues: 4, vnetHdr: true }, smp: 4, transferBytes: 8 * MiB },
  singleQueue: { tap: { queues: 1 }, smp: 1, transferBytes: 8 * MiB },
  vhostAuto: { tap: { vhost: 'auto' }, smp: 1, transferBytes: 0 },
} satisfies Record<string, Case>

type CaseName = keyof typeof CASES

interface Outcome {
  result: ScenarioResult
  /** The scenario's stderr (the guest console as it came, and any crash). */
  stderr: string
  netns: string
}

/** Run the scenario in a fresh namespace; the namespace and anything left in it are removed afterwards. */
async function runInNetns(name: CaseName, guest: Guest): Promise<Outcome> {
  const netns = `vmtap-e2e-${process.pid}-${name}`
  const config: ScenarioConfig = {
    ...CASES[name],
    kernel: guest.kernel,
    initrd: guest.initrd,
    timeoutMs: QEMU_TIMEOUT_MS,
    qemu: QEMU,
  }
  ipNetns('add', netns)
  try {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        netns,
        process.execPath,
        '--import=tsx',
        join(__dirname, 'guest', 'scenario.ts'),
        JSON.stringify(config),
      ],
      // No tsx cache: its asynchronous cache writes would show up in the fd lists.
      { cwd: repoRoot, env: { ...process.env, TSX_DISABLE_CACHE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    // The scenario kills QEMU itself; this only guards against the scenario hanging.
    const guard = setTimeout(() => child.kill('SIGTERM'), QEMU_TIMEOUT_MS + 30_000)
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', resolve)
    })
    clearTimeout(guard)
    const last = stdout.trim().split('\n').at(-1) ?? ''
    let result: ScenarioResult
    try {
      result = JSON.parse(last) as ScenarioResult
    } catch {
      throw new Error(
        `scenario (${name}) exited with ${code} without a result\n--- stdout\n${stdout}\n--- stderr\n${stderr}`,
      )
    }
    return { result, stderr, netns }
  } finally {
    // Anything still running in the namespace is ours (the scenario or its QEMU).
    destroyNetns(netns)
  }
}

let started: Record<CaseName, Promise<Outcome>> | undefined

/** Build the guest and start every case (once); a missing QEMU or kernel rejects them all. */
function outcome(name: CaseName): Promise<Outcome> {
  if (!started) {
    let setup: Promise<Guest>
    try {
      requireQemu()
      setup = Promise.resolve(buildGuest())
    } catch (e) {
      setup = Promise.reject(e)
    }
    const all = {} as Record<CaseName, Promise<Outcome>>
    for (const n of Object.keys(CASES) as CaseName[]) {
      all[n] = setup.then((g) => runInNetns(n, g))
      all[n].catch(() => {}) // awaited by its own test; a test filtered out must not leave an unhandled rejection
    }
    started = all
  }
  return started[name]
}

/** The checks every case shares: the guest booted, saw a virtio NIC, pinged both ways, and nothing is left. */
function commonChecks(t: T, o: Outcome, queues: number): ScenarioResult {
  const r = o.result
  t.log(`${o.netns}: QEMU ran ${r.exit?.ms ?? '?'} ms; guest: ${(r.events ?? []).join(' | ')}`)
  if (r.error || !r.guest?.done) {
    t.log(`guest console and QEMU stderr:\n${(r.console ?? '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')}`)
    t.log(`scenario stderr:\n${o.stderr.slice(-4000)}`)
  }
  if (r.error) throw new Error(`the scenario failed: ${r.error}`)
  assertGuestRan(t, r)
  t.regex(
    r.guest.nic ?? '',
    /^driver=virtio_net mac=52:54:00:77:00:02 interfaces=eth0,lo,$/,
    'the guest has one NIC, virtio_net, with our MAC',
  )
  t.deepEqual(r.guest.queues, { rx: queues, tx: queues }, `the guest's eth0 has ${queues} rx and ${queues} tx queues`)
  t.is(r.tap?.tapFds, queues)

  // The device outlived the parent's copies (closed right after spawn) because QEMU held its own.
  t.like(r.whileRunning, { deviceExists: true, qemuTapFds: queues, ownTunFds: 0 }, 'while QEMU ran')
  if (queues > 1) {
    // QEMU detaches (TUNSETQUEUE) the queues of pairs the guest has not enabled: none is left detached.
    t.like(r.whileRunning, { numqueues: queues, numdisabled: 0 }, 'the guest enabled every queue pair')
  }

  t.deepEqual(r.guest.ping, { sent: 3, received: 3 }, 'guest -> host pings')
  t.like(r.host.ping, { sent: 3, received: 3 }, 'host -> guest pings')

  t.deepEqual(r.after, { deviceExists: false, ownTunFds: 0 }, 'after QEMU exited the device is gone')
  t.deepEqual(r.fdsAfter, r.fdsBefore, 'the scenario process holds exactly the fds it had before openTap')
  return r
}

function transferChecks(t: T, r: ScenarioResult, bytes: number): void {
  t.true(bytes >= 8 * MiB)
  t.deepEqual(r.host.sent?.bytes, bytes, 'the host sent the whole payload')
  t.deepEqual(r.guest.rx, r.host.sent, 'host -> guest: the guest received the same bytes (SHA-256)')
  t.is(r.guest.tx?.bytes, bytes, 'the guest generated the payload')
  t.deepEqual(r.host.received, r.guest.tx, 'guest -> host: the host received the same bytes (SHA-256)')
}

const netdevArg = (r: ScenarioResult) => r.qemuArgs[r.qemuArgs.indexOf('-netdev') + 1]
const deviceArg = (r: ScenarioResult) => r.qemuArgs[r.qemuArgs.indexOf('-device') + 1]

rootTest(
  'qemu e2e: 4 queues + vnet_hdr: the guest gets 4 queue pairs, pings both ways, 8 MiB each way byte-exact, nothing left',
  async (t) => {
    t.timeout(QEMU_TIMEOUT_MS + 60_000)
    const r = commonChecks(t, await outcome('multiQueue'), 4)
    t.like(r.tap, { vnetHdr: true, multiQueue: true, vhostFds: 0 })
    t.deepEqual(r.handedFds, [3, 4, 5, 6])
    t.is(netdevArg(r), 'tap,id=n0,fds=3:4:5:6')
    t.is(deviceArg(r), 'virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02,mq=on,vectors=10')
    t.like(r.whileRunning, { vnetHdr: true, multiQueue: true })
    transferChecks(t, r, CASES.multiQueue.transferBytes)
  },
)

rootTest('qemu e2e: 1 queue (fd=): pings both ways, 8 MiB each way byte-exact, nothing left', async (t) => {
  t.timeout(QEMU_TIMEOUT_MS + 60_000)
  const r = commonChecks(t, await outcome('singleQueue'), 1)
  t.like(r.tap, { vnetHdr: true, multiQueue: false, vhostFds: 0 })
  t.deepEqual(r.handedFds, [3])
  t.is(netdevArg(r), 'tap,id=n0,fd=3')
  t.is(deviceArg(r), 'virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02')
  t.like(r.whileRunning, { vnetHdr: true, multiQueue: false })
  transferChecks(t, r, CASES.singleQueue.transferBytes)
})

rootTest(
  "qemu e2e: vhost: 'auto' follows the host (no vhost-net: no vhost argument) and the guest works",
  async (t) => {
    t.timeout(QEMU_TIMEOUT_MS + 60_000)
    const vhostNet = probeFeatures().vhostNet
    const r = commonChecks(t, await outcome('vhostAuto'), 1)
    if (!vhostNet) {
      t.is(r.tap?.vhostFds, 0, 'no /dev/vhost-net: no vhost fds')
      t.false(
        r.qemuArgs.some((a) => /vhost/.test(a)),
        `no vhost in QEMU's arguments: ${r.qemuArgs.join(' ')}`,
      )
      t.is(netdevArg(r), 'tap,id=n0,fd=3')
    } else {
      t.is(r.tap?.vhostFds, 1, '/dev/vhost-net is usable: one vhost fd')
      t.is(netdevArg(r), 'tap,id=n0,fd=3,vhost=on,vhostfd=4')
    }
    t.deepEqual(
      r.guest.rx,
      { bytes: 0, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' },
      'the host released the guest (empty payload)',
    )
  },
)
