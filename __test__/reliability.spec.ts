// Reliability: kernel-side failures give the documented TapError
// and leave nothing behind; a closed device refuses everything; the GC
// backstop; worker threads and the main thread at once; what children see of
// our fds. Every scenario runs in a child process inside a network namespace
// of its own (scenarios/reliability.ts), so the links counted are that
// namespace's and nothing touches the host's.
import { existsSync } from 'node:fs'
import { join } from 'node:path'

import { rootTest, type T } from './helpers'
import { runIn, withNetns, type RunOptions } from './netns'
import type { ErrInfo } from './scenarios/reliability'

const scenario = 'scenarios/reliability.ts'
const repo = join(__dirname, '..')
const fixtures = join(__dirname, 'fixtures', 'reliability')
/** For scenarios that call gc(). */
const withGc: RunOptions = {
  env: { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc`.trim() },
}

type Case = { err: ErrInfo | null; fds: [number, number]; linksSame: boolean; links: string[] }
type Expected = Partial<Omit<ErrInfo, 'message'>> & { message?: RegExp }

/** A failure with the documented fields that left no fd and no link behind. */
function failedCleanly(t: T, c: Case, expected: Expected, what: string): void {
  t.truthy(c.err, `${what}: it must fail`)
  if (!c.err) return
  const { message, ...fields } = expected
  t.like(c.err, { name: 'TapError', isTapError: true, ...fields }, what)
  t.true(c.err.errno < 0, `${what}: errno is negative (${c.err.errno})`)
  t.true(c.err.message.startsWith(`${c.err.code}: `), `${what}: Node's message shape: ${c.err.message}`)
  if (message) t.regex(c.err.message, message, what)
  t.is(c.fds[0], c.fds[1], `${what}: the fd count is unchanged`)
  t.true(c.linksSame, `${what}: the namespace's links are unchanged (${c.links.join(' ')})`)
}

rootTest(
  'kernel refusals (EBUSY, EINVAL, E2BIG, ENOENT, ENOTTY, EISDIR, EOPNOTSUPP) give the documented TapError and leave no fd or link',
  async (t) => {
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'kernelFailures'))
    const busy = { code: 'EBUSY', errno: -16, syscall: 'ioctl(TUNSETIFF)' }
    failedCleanly(
      t,
      r.busy,
      { ...busy, ifname: 'rkb0', message: /rkb0 is a single-queue device that is already attached/ },
      'a held single-queue name',
    )
    failedCleanly(
      t,
      r.busyAsync,
      { ...busy, ifname: 'rkb0', message: /already attached/ },
      'the same with openTapAsync',
    )
    failedCleanly(
      t,
      r.busyExclusive,
      { ...busy, ifname: 'rkb0', message: /exclusive creation was asked for/ },
      'exclusive on an existing tap',
    )
    failedCleanly(t, r.exclusiveOnBridge, { ...busy, ifname: 'rkbr0', message: /exclusive/ }, 'exclusive on a bridge')
    const einval = { code: 'EINVAL', errno: -22, syscall: 'ioctl(TUNSETIFF)' }
    failedCleanly(
      t,
      r.mqOnHeldSq,
      {
        ...einval,
        ifname: 'rkb0',
        message: /rkb0 already exists without multi_queue; delete it or open it with queues: 1/,
      },
      'queues: 2 on a held single-queue device',
    )
    failedCleanly(
      t,
      r.mqOnPersistentSq,
      { ...einval, ifname: 'rkps0', message: /without multi_queue/ },
      'queues: 4 on a persistent single-queue device',
    )
    failedCleanly(
      t,
      r.sqOnMq,
      { ...einval, ifname: 'rkm0', message: /rkm0 already exists with multi_queue; open it with queues of 2 or more/ },
      'one queue on a multi-queue device',
    )
    // 256 queues attached: one more is E2BIG, and the device keeps its 256.
    failedCleanly(
      t,
      r.e2big,
      {
        code: 'E2BIG',
        errno: -7,
        syscall: 'ioctl(TUNSETIFF)',
        ifname: 'rk2b0',
        message: /maximum of 256 queues \(MAX_TAP_QUEUES/,
      },
      'a 257th queue',
    )
    t.is(r.e2bigQueues, 256)
    // 255 attached, 2 asked: the first attaches, the second is E2BIG, the first is let go again.
    failedCleanly(
      t,
      r.e2bigPartial,
      { code: 'E2BIG', syscall: 'ioctl(TUNSETIFF)', ifname: 'rk2c0' },
      'queues 256 and 257 (async)',
    )
    t.is(r.e2bigPartialQueues, 255, 'the queue attached before the failure was released')
    const vhostHint =
      /vhost-net is not available: load the vhost_net module \(modprobe vhost_net\), or open with vhost: 'auto'/
    if (r.hasVhost) t.log('this host has /dev/vhost-net: the missing-device case is covered with vhostPath only')
    else
      failedCleanly(
        t,
        r.vhostMissing,
        { code: 'ENOENT', errno: -2, syscall: 'open', path: '/dev/vhost-net', message: vhostHint },
        'vhost: true without /dev/vhost-net',
      )
    failedCleanly(
      t,
      r.vhostPathMissing,
      { code: 'ENOENT', syscall: 'open', path: '/nonexistent/vhost-net', message: vhostHint },
      'a missing vhostPath',
    )
    failedCleanly(
      t,
      r.vhostPathMissingAsync,
      { code: 'ENOENT', syscall: 'open', path: '/nonexistent/vhost-net' },
      'a missing vhostPath (async)',
    )
    const tunHint =
      /the TUN\/TAP device node is missing: load the driver \(modprobe tun\) or create the node \(mknod \/dev\/net\/tun c 10 200\)/
    failedCleanly(
      t,
      r.tunPathMissing,
      { code: 'ENOENT', errno: -2, syscall: 'open', path: '/nonexistent/net/tun', message: tunHint },
      'a missing tunPath',
    )
    failedCleanly(
      t,
      r.tunPathMissingAsync,
      { code: 'ENOENT', syscall: 'open', path: '/nonexistent/net/tun', message: tunHint },
      'a missing tunPath (async)',
    )
    failedCleanly(
      t,
      r.tunPathMissingDelete,
      { code: 'ENOENT', syscall: 'open', path: '/nonexistent/net/tun' },
      'deleteTap with a missing tunPath',
    )
    t.is(r.tunPathMissingProbe, null, 'probeFeatures never throws for a missing node: raw is null')
    failedCleanly(
      t,
      r.tunPathNotTun,
      {
        code: 'ENOTTY',
        syscall: 'ioctl(TUNGETFEATURES)',
        path: '/dev/null',
        message: /is this really \/dev\/net\/tun\?/,
      },
      'a tunPath that is not the clone device',
    )
    failedCleanly(
      t,
      r.tunPathDirectory,
      { code: 'EISDIR', syscall: 'open', path: '/tmp' },
      'a tunPath that is a directory',
    )
    // Names taken by devices that are not TAP devices: refused, and those devices untouched.
    const notTap = /rkv0 exists and is not a TUN\/TAP device \(it is a veth\); pick another name/
    failedCleanly(t, r.veth, { ...einval, ifname: 'rkv0', message: notTap }, 'a veth name')
    failedCleanly(t, r.vethMq, { ...einval, ifname: 'rkv0', message: notTap }, 'a veth name, 2 queues')
    failedCleanly(t, r.vethExclusive, { ...busy, ifname: 'rkv0' }, 'a veth name, exclusive')
    const notTapToDelete = /rkv0 is not a TUN\/TAP device \(it is a veth\): deleteTap removes TUN\/TAP devices only/
    failedCleanly(t, r.vethDelete, { ...einval, ifname: 'rkv0', message: notTapToDelete }, 'deleteTap of a veth')
    failedCleanly(
      t,
      r.bridge,
      { ...einval, ifname: 'rkbr0', message: /rkbr0 exists and is not a TUN\/TAP device \(it is a bridge\)/ },
      'a bridge name',
    )
    failedCleanly(t, r.bridgeDelete, { ...einval, ifname: 'rkbr0', message: /it is a bridge/ }, 'deleteTap of a bridge')
    failedCleanly(
      t,
      r.tun,
      { ...einval, ifname: 'rkt0', message: /rkt0 exists and is a TUN device, not TAP/ },
      'a TUN device name',
    )
    // A configuration step fails after persist: the device this call made is gone anyway.
    failedCleanly(
      t,
      r.persistThenNotABridge,
      { code: 'EOPNOTSUPP', syscall: 'ioctl(SIOCBRADDIF)', ifname: 'rkp0', message: /rkv0 is not a bridge/ },
      'persist, then a veth as bridge',
    )
    failedCleanly(
      t,
      r.persistThenMtu,
      { code: 'EINVAL', syscall: 'ioctl(SIOCSIFMTU)', ifname: 'rkp1', message: /65521/ },
      'persist, then MTU 65535',
    )
    t.deepEqual(
      r.survivors,
      ['rkbr0', 'rkv0', 'rkv1', 'rkt0', 'rkps0', 'rkb0', 'rkm0'],
      'the devices whose names were refused are untouched',
    )
  },
)

type Step = {
  label: string
  ok: boolean
  value?: any
  err?: ErrInfo
  methods?: Record<string, { ok: boolean; code?: string; syscall?: string; message?: string; value?: unknown }>
  fds: [number, number]
  linksSame: boolean
  links: string[]
}
type ChildReport = { uid: number; capEff: string; results: Step[] }

rootTest(
  'without CAP_NET_ADMIN (uid 65534, no capabilities): EPERM / EACCES / ENOENT with advice, nothing left; what an owner may do',
  async (t) => {
    const r = await withNetns((ns) =>
      runIn<{ eperm: ChildReport; eacces: ChildReport; enoent: ChildReport; [k: string]: any }>(
        ns,
        scenario,
        'unprivileged',
        [repo],
      ),
    )
    const step = (rep: ChildReport, label: string) => rep.results.find((s) => s.label === label)!
    const failed = (rep: ChildReport, label: string, expected: Expected) =>
      failedCleanly(
        t,
        {
          err: step(rep, label).ok ? null : step(rep, label).err!,
          fds: step(rep, label).fds,
          linksSame: step(rep, label).linksSame,
          links: step(rep, label).links,
        },
        expected,
        `${label} (uid ${rep.uid})`,
      )

    // /dev/net/tun 0666, no capabilities: creating is EPERM, with what to do.
    t.is(r.eperm.uid, 65534)
    t.is(r.eperm.capEff, '0000000000000000')
    const eperm = { code: 'EPERM', errno: -1, syscall: 'ioctl(TUNSETIFF)' }
    const needCap =
      /creating a TAP device needs CAP_NET_ADMIN in this network namespace: run as root or grant CAP_NET_ADMIN, or attach to a persistent device created for this user \(uid 65534\)/
    failed(r.eperm, 'create', { ...eperm, ifname: 'rperm0', message: needCap })
    failed(r.eperm, 'createKernelName', { ...eperm, ifname: 'tap%d', message: needCap })
    failed(r.eperm, 'createTemplateMq', { ...eperm, ifname: 'rperm%d', message: needCap })
    failed(r.eperm, 'createUnique', { ...eperm, message: needCap })
    failed(r.eperm, 'createAsync', { ...eperm, ifname: 'rperm1', message: needCap })
    failed(r.eperm, 'probeOffloads', { ...eperm, message: needCap })
    failed(r.eperm, 'attachOtherOwner', {
      ...eperm,
      ifname: 'roth0',
      message:
        /roth0 exists and attaching to it needs CAP_NET_ADMIN or being its owner\/group \(it belongs to uid 65533/,
    })
    failed(r.eperm, 'deleteOtherOwner', { ...eperm, ifname: 'roth0' })
    t.like(
      step(r.eperm, 'attachGroup'),
      { ok: true, value: { ifname: 'rgrp0', fds: 1 } },
      'a member of the device group attaches',
    )
    // The kernel's rule (SECURITY.md): a persistent device with neither owner nor group is open to anyone who can open /dev/net/tun.
    t.like(step(r.eperm, 'attachNobodys'), { ok: true, value: { ifname: 'rroot0' } })
    t.like(step(r.eperm, 'deleteNobodys'), { ok: true }, 'and anyone can delete it')
    // vmtap's persist without owner/group: the creator's (uid 0 here), so others get EPERM.
    t.is(r.defaultOwner, '0')
    failed(r.eperm, 'attachDefaultOwned', { ...eperm, ifname: 'rdef0', message: /belongs to uid 0/ })
    // The owner attaches without capabilities; TUN ioctls on its fds work, link changes need CAP_NET_ADMIN.
    const owned = step(r.eperm, 'attachOwned')
    t.like(owned, { ok: true, value: { ifname: 'rown0', fds: 2 } })
    t.deepEqual(owned.fds[0], owned.fds[1])
    const m = owned.methods!
    for (const k of [
      'getLinkInfo',
      'getVnetHdrSize',
      'setVnetHdrSize(12)',
      'setVnetHdrSize(10)',
      'setOffloads({"csum":true})',
      'setOffloads({})',
      'setQueueEnabled(1,false)',
      'setQueueEnabled(1,true)',
      'setOwner(65534)',
      'setGroup(65534)',
      'setPersist(true)',
    ]) {
      t.true(m[k]?.ok, `${k} works for the owner without capabilities: ${m[k]?.message ?? ''}`)
    }
    const linkHint = /changing an interface needs CAP_NET_ADMIN in its network namespace/
    for (const [k, syscall, hint] of [
      ['setMtu(1400)', 'ioctl(SIOCSIFMTU)', linkHint],
      ['setLinkUp(true)', 'ioctl(SIOCSIFFLAGS)', linkHint],
      ['setMac("fe:00:00:00:00:42")', 'ioctl(SIOCSIFHWADDR)', linkHint],
      ['attachToBridge("rkbr1")', 'ioctl(SIOCBRADDIF)', /changing a bridge needs CAP_NET_ADMIN/],
    ] as const) {
      t.like(m[k], { ok: false, code: 'EPERM', syscall }, k)
      t.regex(m[k]?.message ?? '', hint, k)
    }
    // A configuration step refused after attaching to a pre-existing device: fds closed, the device stays.
    failed(r.eperm, 'attachOwnedWithOptions', {
      code: 'EPERM',
      syscall: 'ioctl(SIOCSIFFLAGS)',
      ifname: 'rown0',
      message: linkHint,
    })
    t.like(step(r.eperm, 'attachOwnedPersist'), { ok: true })
    t.like(
      r.ownedAfter,
      { mtu: r.ownedBefore.mtu, address: r.ownedBefore.address, flags: r.ownedBefore.flags, owner: '65534' },
      'the refused link changes changed nothing',
    )
    t.deepEqual(r.brif, [], 'not enslaved')

    // /dev/net/tun 0600: EACCES at open, saying what to do.
    t.is(r.eacces.uid, 65534)
    const eacces = { code: 'EACCES', errno: -13, syscall: 'open', path: '/dev/net/tun' }
    const openHint =
      /this process \(uid 65534\) may not open the TUN\/TAP clone device: run as root, or make the node readable and writable \(distributions ship it 0666\)/
    failed(r.eacces, 'create', { ...eacces, message: openHint })
    failed(r.eacces, 'attachOwned', { ...eacces, message: openHint })
    failed(r.eacces, 'createAsync', { ...eacces, message: openHint })
    t.like(
      step(r.eacces, 'probeFeatures'),
      { ok: true, value: { raw: null, tap: false, vhostNet: false } },
      'probeFeatures reports raw: null instead of throwing',
    )

    // No /dev/net/tun at all (an empty /dev/net), as root: ENOENT with the modprobe/mknod advice.
    t.is(r.enoent.uid, 0)
    const enoent = {
      code: 'ENOENT',
      errno: -2,
      syscall: 'open',
      path: '/dev/net/tun',
      message: /modprobe tun\) or create the node \(mknod \/dev\/net\/tun c 10 200\)/,
    }
    failed(r.enoent, 'create', enoent)
    failed(r.enoent, 'createMqVhostAuto', enoent)
    failed(r.enoent, 'createAsync', enoent)
    failed(r.enoent, 'delete', enoent)
    failed(r.enoent, 'probeOffloads', enoent)
    t.like(step(r.enoent, 'probeFeatures'), { ok: true, value: { raw: null } })

    t.deepEqual(
      r.stillThere,
      ['rown0', 'rgrp0', 'roth0', 'rroot1', 'rdef0'],
      'persistent devices survive failed attempts (rroot0 was deleted by uid 65534 above)',
    )
    t.deepEqual(r.linksAfter, ['lo', 'rkbr1'])
  },
)

rootTest(
  'use after close: every method throws ERR_VMTAP_CLOSED without reaching the addon; closing again is a no-op; handOff refuses',
  async (t) => {
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'useAfterClose'))
    t.true(r.gone, 'the device went with its fds')
    const results = r.results as Record<string, { name: string; code: string; message: string } | 'returned'>
    t.true(Object.keys(results).length >= 17)
    for (const [call, res] of Object.entries(results)) {
      t.not(res, 'returned', `${call} returned on a closed device`)
      if (res === 'returned') continue
      t.like(res, { name: 'Error', code: 'ERR_VMTAP_CLOSED' }, call)
      t.regex(res.message, /The TAP device ruac0 is closed; its fd numbers may belong to something else now/, call)
    }
    t.deepEqual(r.calls, [], 'no call reached the addon')
    t.is(r.closeTwice, 'ok', 'close() and Symbol.dispose again are no-ops')
    t.is(r.closeAsync, 'resolved')
    t.is(r.asyncDispose, 'resolved')
    t.is(r.closeAll, 'resolved', 'closeAll skips it')
    t.like(r.handOff, { isTypeError: true, code: 'ERR_INVALID_ARG_VALUE' })
    t.regex(r.handOff.message, /closed \(ruac0\)/)
    t.true(
      r.strangerIntact,
      `a file that got the old fd number (${r.strangerReusesFd ? 'it did' : 'it did not this time'}) was never touched`,
    )
    t.is(r.duringCloseAsync, 'ERR_VMTAP_CLOSED', 'closed as soon as closeAsync() is called')
    t.is(r.duringCloseAll, 'ERR_VMTAP_CLOSED', 'closed as soon as closeAll() is called')
    t.deepEqual(r.linksAfter, ['lo', 'rubr0'])
  },
)

rootTest(
  'GC backstop: an unclosed TapDevice that is collected warns (VMTAP_UNCLOSED_DEVICE, naming it) and releases its fds and the device',
  async (t) => {
    const count = 8
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'gcBackstop', [count], withGc))
    t.deepEqual(r.whileAlive, { links: count, fds: count * 8 }, 'alive until collected: 4 tap + 4 vhost fds each')
    const ours = (r.warnings as { name: string; code: string; message: string }[]).filter(
      (w) => w.code === 'VMTAP_UNCLOSED_DEVICE',
    )
    t.is(ours.length, count, 'one warning per device')
    for (const name of r.names as string[]) {
      const w = ours.find((x) => x.message.includes(`TAP device ${name} `))
      t.truthy(w, `a warning names ${name}`)
      t.is(w?.name, 'Warning')
      t.regex(w?.message ?? '', /on garbage collection; close it with tap\.close\(\) or closeAsync\(\)/)
    }
    t.false(
      ours.some((w) => w.message.includes('rgcc0')),
      'a device closed properly never warns',
    )
    t.deepEqual(r.left, { links: [], tapFds: [], fds: 0 }, 'every fd and every link released')
    t.deepEqual(r.nullFdsLeft, [])
    t.deepEqual(r.linksAfter, r.links0)
    t.is(r.fdsAfter, r.fds0)
    t.log(`warned after ${r.warnedAfterMs} ms, released after ${r.releasedAfterMs} ms`)
  },
)

rootTest(
  'concurrency: 8 worker threads x 200 open/close and the main thread async at once: no crash, unique names, nothing left',
  async (t) => {
    t.timeout(120_000)
    const workers = 8
    const perWorker = 200
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'concurrency', [workers, perWorker]))
    t.deepEqual(r.errors, [])
    t.deepEqual(r.perWorkerCounts, Array(workers).fill(perWorker))
    t.true(r.mainCount > 0, 'the main thread opened devices meanwhile')
    t.is(r.total, workers * perWorker + r.mainCount)
    t.is(r.unique, r.total, 'every name in the process was new (the uniqueName counter is process-wide)')
    t.deepEqual(r.badNames, [])
    t.is(r.fdsAfter, r.fds0, 'fd count back to the start')
    t.deepEqual(r.linksAfter, r.links0, 'links back to the start')
    t.log(`${r.total} devices (${r.mainCount} from the main thread in ${r.rounds} rounds) in ${r.ms} ms`)
  },
)

type FdEntry = { fd: number; target: string; iff: string | null; cloexec: boolean | null }

rootTest(
  'fd hygiene: children (spawn, exec, execFile, fork, spawnSync, execSync, shell) see none of our fds; handOff gives exactly the advertised ones',
  async (t) => {
    t.true(existsSync(join(fixtures, 'fd-report.sh')))
    const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'fdHygiene', [fixtures]))
    const ours = (f: FdEntry) =>
      f.iff !== null || f.target === '/dev/net/tun' || f.target === r.standIn || f.target.startsWith('/dev/vhost')
    for (const [how, rep] of Object.entries(r.without as Record<string, { fds: FdEntry[] }>)) {
      t.true(rep.fds.length >= 3, `${how}: the child reported its fds`)
      t.deepEqual(rep.fds.filter(ours), [], `${how}: the child has none of our tap or vhost fds`)
    }
    t.deepEqual(
      (r.concurrent.fds as FdEntry[]).filter(ours),
      [],
      'a child spawned while another holds handed fds sees none',
    )

    const h = r.handOff as {
      devices: { ifname: string; tapFds: number[]; vhostFds: number[] }[]
      fds: number[]
      stdioLength: number
    }
    t.deepEqual(h.devices, [
      { ifname: 'rfd0', tapFds: [3, 4, 5], vhostFds: [6, 7, 8] },
      { ifname: 'rfd1', tapFds: [9], vhostFds: [] },
    ])
    t.deepEqual(h.fds, [3, 4, 5, 6, 7, 8, 9])
    t.is(h.stdioLength, 10)
    for (const [who, rep] of [
      ['a shell child', r.handed],
      ['a node child', r.handedNode],
    ] as const) {
      const fds = rep.fds as FdEntry[]
      const at = (n: number) => fds.find((f) => f.fd === n)
      for (const d of h.devices) {
        for (const fd of d.tapFds)
          t.like(at(fd), { target: '/dev/net/tun', iff: d.ifname }, `${who}: fd ${fd} is a queue of ${d.ifname}`)
        for (const fd of d.vhostFds)
          t.like(at(fd), { target: r.standIn, iff: null }, `${who}: fd ${fd} is a vhost fd of ${d.ifname}`)
      }
      t.deepEqual(
        fds.filter(ours).map((f) => f.fd),
        h.fds,
        `${who}: exactly the handed fds and nothing else of ours (rfd2 was not handed)`,
      )
    }
    // Node marks fds 0-15 close-on-exec at startup; the shell shows them as inherited: usable by what it execs (QEMU).
    for (const fd of h.fds)
      t.is(
        (r.handed.fds as FdEntry[]).find((f) => f.fd === fd)?.cloexec,
        false,
        `fd ${fd} is inherited without FD_CLOEXEC`,
      )
    t.true(r.parentStillCloexec, "the parent's fds stay close-on-exec after the hand-off")
    t.deepEqual(
      r.whileChildHolds,
      ['rfd0', 'rfd1'],
      'the devices live while the child holds them, after the parent closed its own',
    )
    t.is(r.exitCode, 0)
    t.deepEqual(r.afterChildExit, [], 'and go when it exits')
  },
)
