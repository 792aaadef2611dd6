// The broker end to end: `vmtap serve` as root inside a network namespace the
// test creates, clients as uid 65534 (and others) without capabilities,
// running a copy of the built package staged under /tmp (the checkout may be
// unreadable to them). What a client gets is checked from the client
// (fdinfo), the namespace (ip -d -j link) and the broker (its log, its fds).
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, Socket, type Server } from 'node:net'
import { join } from 'node:path'

import test from 'ava'

import { recvFds, requestTap } from '../index'
import {
  asUser,
  BrokerProcess,
  type Client,
  type ClientResult,
  childEnv,
  ipIn,
  killClients,
  NOBODY,
  nsLinks,
  runClient,
  type Stage,
  stageVmtap,
} from './broker-harness'
import { ensureDistBuilt, rootTest, type T } from './helpers'
import { withNetns } from './netns'

const RULE = 'vm-users'
const POLICY = { allow: [{ name: RULE, uid: NOBODY, bridges: ['br0'], maxQueues: 2 }] }

/** A namespace with bridges br0 and br1 (both up), a staged package and a broker with `policy`. */
async function withBroker(
  t: T,
  policy: unknown,
  fn: (ctx: { ns: string; stage: Stage; broker: BrokerProcess }) => Promise<void>,
  flags: string[] = [],
): Promise<void> {
  const stage = stageVmtap()
  try {
    await withNetns(async (ns) => {
      for (const br of ['br0', 'br1']) {
        ipIn(ns, 'link', 'add', br, 'type', 'bridge')
        ipIn(ns, 'link', 'set', br, 'up')
      }
      const broker = await BrokerProcess.start(stage, ns, policy, flags)
      try {
        await fn({ ns, stage, broker })
      } finally {
        killClients()
        const exit = await broker.stop()
        if (exit.code !== 0) t.log(`broker stderr:\n${broker.stderr}`)
        t.deepEqual(exit, { code: 0, signal: null }, 'the broker stopped cleanly on SIGTERM')
        t.false(existsSync(stage.sock), 'and removed its socket')
      }
    })
  } finally {
    stage.cleanup()
  }
}

const taps = (ns: string) => nsLinks(ns).filter((l) => l.kind === 'tun')
const tunFdsOf = (pid: number) =>
  spawnSync('ls', ['-l', `/proc/${pid}/fd`], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => /\/dev\/(net\/tun|vhost-net)$/.test(l)).length

function refused(r: ClientResult | undefined): { code: string; errorClass: string; message: string } {
  if (!r || r.ok) throw new Error(`expected a refusal, got ${JSON.stringify(r)}`)
  return r
}

rootTest(
  'uid 65534 gets a 2-queue tap on an allowed bridge; another bridge, more queues than maxQueues, a uid no rule selects are refused with EACCES naming the rule; nothing is left behind',
  async (t) => {
    t.timeout(120_000)
    await withBroker(t, POLICY, async ({ ns, stage, broker }) => {
      const fdsBefore = broker.fdCount()
      const c = await runClient(stage, ns, [{ queues: 2, bridge: 'br0', up: true }])
      t.is(c.uid, NOBODY)
      const [r] = c.results
      if (!r.ok) throw new Error(`refused: ${r.message}`)
      t.like(r, { tapFds: 2, vhostFds: 0, multiQueue: true })
      t.deepEqual(r.iff, [r.ifname, r.ifname], "the client's two fds are attached to the device (fdinfo)")
      const dev = taps(ns)
      t.is(dev.length, 1)
      t.like(dev[0], {
        ifname: r.ifname,
        master: 'br0',
        up: true,
        tun: { multi_queue: true, numqueues: 2, persist: false, user: NOBODY },
      })
      t.regex(dev[0].address, /^fe:/, 'host-side MAC fe:..., so the bridge never takes it as its address')
      t.is(tunFdsOf(broker.pid), 0, 'the broker kept no fd of it')
      await broker.waitForLines(1)
      t.like(broker.lines[0], {
        event: 'grant',
        uid: NOBODY,
        gid: NOBODY,
        pid: c.pid,
        rule: RULE,
        result: r.ifname,
        request: { queues: 2, bridge: 'br0', up: true },
      })

      // Refusals: a bridge outside the rule (br1 exists), 3 queues, and uids no rule selects.
      const bad = await runClient(stage, ns, [
        { queues: 2, bridge: 'br1' },
        { queues: 3, bridge: 'br0' },
      ])
      const other = await runClient(stage, ns, [{ bridge: 'br0' }], { uid: 1000 })
      const root = await runClient(stage, ns, [{ bridge: 'br0' }], { uid: 'root' })
      const [br1, q3] = bad.results.map(refused)
      for (const e of [br1, q3, refused(other.results[0]), refused(root.results[0])]) {
        t.like(e, { code: 'EACCES', errorClass: 'TapError' })
      }
      t.regex(
        br1.message,
        /^broker: refused by rule "vm-users" \(uid 65534\): bridge br1 is not in its bridges \(br0\)$/,
      )
      t.regex(q3.message, /rule "vm-users" \(uid 65534\): 3 queues exceed its maxQueues 2/)
      t.regex(refused(other.results[0]).message, /no rule of the policy selects uid 1000 \(gid 1000, groups none\)/)
      t.regex(refused(root.results[0]).message, /no rule of the policy selects uid 0 /)
      t.is(taps(ns).length, 1, 'refusals created nothing')
      for (const x of [bad, other, root]) t.is(await x.release(), 0)

      t.is(await c.release(), 0)
      t.deepEqual(
        nsLinks(ns)
          .map((l) => l.ifname)
          .sort(),
        ['br0', 'br1', 'lo'],
        'the device went with the client',
      )
      await broker.waitForLines(5)
      t.deepEqual(
        broker.lines.map((l) => `${l.event} ${l.uid} ${l.rule}`).sort(),
        ['grant 65534 vm-users', 'refuse 0 null', 'refuse 1000 null', 'refuse 65534 vm-users', 'refuse 65534 vm-users'],
        'one log line per request, with the uid and the rule',
      )
      t.is(broker.lines.filter((l) => l.event === 'grant').length, 1)
      t.is(broker.lines.filter((l) => l.event === 'refuse' && l.result.startsWith('EACCES: ')).length, 4)
      t.is(broker.fdCount(), fdsBefore, 'the broker holds the fds it had before')
    })
  },
)

rootTest(
  'groups select by the primary gid or a supplementary one (SO_PEERGROUPS); vhost, names, MTU, persist and netns follow the rule',
  async (t) => {
    t.timeout(120_000)
    // A second namespace the rule allows devices in (a name, as ip netns has it).
    await withNetns(async (elsewhere) => {
      const policy = {
        allow: [
          { name: 'kvm', gid: 4242, bridges: ['br0'], namePrefix: 'vmk', mtu: { min: 1280, max: 9000 } },
          { name: 'persist', uid: 4343, bridges: ['br0'], unbridged: true, persist: true, netns: [elsewhere] },
        ],
      }
      await withBroker(t, policy, async ({ ns, stage, broker }) => {
        // uid 1000 with supplementary group 4242: selected by the kvm rule.
        const c = await runClient(
          stage,
          ns,
          [
            { bridge: 'br0', name: 'vmk7', mtu: 1400 },
            { bridge: 'br0', vhost: 'auto' },
            { bridge: 'br0', vhost: true },
            { bridge: 'br0', name: 'vm7' },
            { bridge: 'br0', mtu: 9100 },
            { bridge: 'br0', persist: true },
          ],
          { uid: 1000, groups: [4242] },
        )
        const [named, auto, vhost, badName, bigMtu, persist] = c.results
        if (!named.ok || !auto.ok) throw new Error(JSON.stringify(c.results))
        t.is(named.ifname, 'vmk7')
        t.is(auto.vhostFds, 0, "vhost: 'auto' under a rule without vhost gets none")
        t.regex(auto.ifname, /^vmk\d+$/, 'the broker names devices with the namePrefix')
        t.regex(refused(vhost).message, /vhost is not allowed/)
        t.regex(refused(badName).message, /name vm7 does not start with its namePrefix vmk/)
        t.regex(refused(bigMtu).message, /mtu 9100 is outside its mtu range 1280-9000/)
        t.regex(refused(persist).message, /persistent devices are not allowed/)
        const vmk7 = taps(ns).find((l) => l.ifname === 'vmk7')
        t.like(vmk7, { mtu: 1400, master: 'br0', tun: { user: 1000 } }, 'owned by the client uid')
        t.is(await c.release(), 0)
        t.is(taps(ns).length, 0)

        // Without the group: nothing selects uid 1000.
        const lone = await runClient(stage, ns, [{ bridge: 'br0' }], { uid: 1000 })
        t.regex(refused(lone.results[0]).message, /no rule of the policy selects uid 1000/)
        await lone.release()

        // A persistent device for the rule that allows it; a device in the namespace it allows.
        const p = await runClient(
          stage,
          ns,
          [{ bridge: 'br0', persist: true }, { netns: elsewhere, up: true }, { netns: 'other' }],
          { uid: 4343 },
        )
        const [kept, nsOk, nsBad] = p.results
        if (!kept.ok || !nsOk.ok) throw new Error(JSON.stringify(p.results))
        t.like(
          taps(elsewhere).find((l) => l.ifname === nsOk.ifname),
          { tun: { user: 4343 }, up: true },
          'made in the namespace asked for, owned by its client, up',
        )
        t.false(
          taps(ns).some((l) => l.ifname === nsOk.ifname),
          "nothing in the broker's namespace",
        )
        t.like(refused(nsBad), { code: 'EACCES' })
        t.regex(refused(nsBad).message, new RegExp(`netns other is not in its netns \\(/run/netns/${elsewhere}\\)`))
        t.is(await p.release(), 0)
        t.is(taps(elsewhere).length, 0, 'the device in the other namespace went with its client')
        t.like(
          taps(ns).find((l) => l.ifname === kept.ifname),
          { tun: { persist: true, user: 4343 } },
          'the persistent device stays, owned by its client',
        )
        ipIn(ns, 'link', 'del', kept.ifname)
        await broker.waitForLines(6 + 1 + 3)
      })
    })
  },
)

rootTest('32 clients at once all get their taps', async (t) => {
  t.timeout(180_000)
  const policy = { allow: [{ uid: NOBODY, bridges: ['br0'], maxQueues: 2 }] }
  await withBroker(t, policy, async ({ ns, stage, broker }) => {
    const fdsBefore = broker.fdCount()
    // 4 processes of 8 connections each, all started together.
    const clients: Client[] = await Promise.all(
      [0, 1, 2, 3].map(() => runClient(stage, ns, Array(8).fill({ queues: 2, bridge: 'br0', up: true }))),
    )
    const results = clients.flatMap((c) => c.results)
    const failed = results.filter((r) => !r.ok)
    t.deepEqual(failed, [], 'every request was granted')
    const names = results.map((r) => (r.ok ? r.ifname : ''))
    t.is(new Set(names).size, 32, '32 distinct devices')
    const ports = taps(ns).filter((l) => l.master === 'br0' && l.tun?.numqueues === 2)
    t.is(ports.length, 32, 'all 32 on br0 at the same time, 2 queues each')
    await broker.waitForLines(32)
    t.is(broker.lines.filter((l) => l.event === 'grant').length, 32)
    for (const c of clients) t.is(await c.release(), 0)
    t.is(taps(ns).length, 0, 'all gone with their clients')
    t.is(broker.fdCount(), fdsBefore)
  })
})

rootTest(
  'connection caps and the deadline: EAGAIN beyond maxConnectionsPerUid, ETIMEDOUT for a silent client',
  async (t) => {
    t.timeout(120_000)
    await withBroker(
      t,
      { allow: [{ uid: 0, bridges: ['br0'] }] },
      async ({ stage, broker }) => {
        // Two silent connections from root hold its quota.
        const silent = [new Socket(), new Socket()]
        for (const s of silent) {
          s.on('error', () => {})
          await new Promise<void>((r) => s.connect(stage.sock, r))
        }
        await t.throwsAsync(requestTap(stage.sock, { bridge: 'br0' }), {
          code: 'EAGAIN',
          message: /too many connections from uid 0 at once \(maxConnectionsPerUid 2\)/,
        })
        // Their deadline ends them (the broker answers ETIMEDOUT and closes).
        const answers = await Promise.all(
          silent.map(
            (s) =>
              new Promise<string>((r) => {
                let got = ''
                s.setEncoding('latin1').on('data', (d: string) => (got += d))
                s.once('close', () => r(got))
              }),
          ),
        )
        for (const a of answers) t.regex(a, /"code":"ETIMEDOUT","message":"no complete request within 5000 ms"/)
        const tap = await requestTap(stage.sock, { bridge: 'br0' })
        t.is(tap.tapFds.length, 1, 'served again once they are gone')
        await tap.closeAsync()
        await broker.waitForLines(4)
        t.deepEqual(
          broker.lines.map((l) => l.result.split(':')[0]).sort(),
          ['EAGAIN', 'ETIMEDOUT', 'ETIMEDOUT', 'tap0'].sort(),
        )
      },
      // The default deadline: the refused third connection must be accepted and
      // answered while the silent two still hold the quota, on a busy machine too.
      ['--max-connections-per-uid', '2', '--request-timeout', '5000'],
    )
  },
)

rootTest(
  'vmtap serve: the socket is 0666 (or --socket-mode); SIGHUP reloads the policy, keeps the old one when the new one is invalid; SIGTERM stops it and removes the socket',
  async (t) => {
    t.timeout(120_000)
    await withBroker(t, POLICY, async ({ ns, stage, broker }) => {
      t.is(lstatSync(stage.sock).mode & 0o777, 0o666)
      // An invalid policy: refused, the old one stays.
      writeFileSync(stage.policy, JSON.stringify({ allow: [{ uid: NOBODY, bridges: ['br0'], maxQueues: 300 }] }))
      broker.child.kill('SIGHUP')
      await broker.waitFor(() => /NOT reloaded/.test(broker.stderr), 'the refused reload')
      t.regex(
        broker.stderr,
        /policy NOT reloaded, the previous one stays in force: policy: allow\[0\]\.maxQueues must be an integer from 1 to 256, got 300/,
      )
      const still = await runClient(stage, ns, [{ queues: 2, bridge: 'br0' }])
      t.true(still.results[0].ok, 'the old policy still grants')
      await still.release()
      // A valid one: applies to the next request.
      writeFileSync(stage.policy, JSON.stringify({ allow: [{ name: 'strict', uid: NOBODY, bridges: ['br0'] }] }))
      broker.child.kill('SIGHUP')
      await broker.waitFor(() => /policy reloaded: 1 rule/.test(broker.stderr), 'the reload')
      const now = await runClient(stage, ns, [{ queues: 2, bridge: 'br0' }])
      t.regex(refused(now.results[0]).message, /rule "strict" \(uid 65534\): 2 queues exceed its maxQueues 1/)
      await now.release()
    })

    // --socket-mode, and what is already at the path.
    const stage = stageVmtap()
    try {
      await withNetns(async (ns) => {
        const b = await BrokerProcess.start(stage, ns, POLICY, ['--socket-mode', '0600'])
        t.is(lstatSync(stage.sock).mode & 0o777, 0o600)
        // A second broker on the same path is refused.
        const second = spawnSync(
          process.execPath,
          [stage.cli, 'serve', '--socket', stage.sock, '--policy', stage.policy],
          { encoding: 'utf8', env: childEnv() },
        )
        t.is(second.status, 1)
        t.regex(second.stderr, /^vmtap: another process is listening on .*broker\.sock \(EADDRINUSE\)\n$/)
        // A dead broker leaves a stale socket: the next one replaces it.
        b.child.kill('SIGKILL')
        await b.exit
        t.true(lstatSync(stage.sock).isSocket(), 'SIGKILL left the socket file')
        const next = await BrokerProcess.start(stage, ns, POLICY)
        t.deepEqual(await next.stop('SIGINT'), { code: 0, signal: null })
        t.false(existsSync(stage.sock))
        // A file that is not a socket is never replaced.
        writeFileSync(stage.sock, 'precious')
        const refusedStart = spawnSync(
          process.execPath,
          [stage.cli, 'serve', '--socket', stage.sock, '--policy', stage.policy],
          { encoding: 'utf8', env: childEnv() },
        )
        t.is(refusedStart.status, 1)
        t.regex(refusedStart.stderr, /exists and is not a socket; vmtap will not replace it \(EEXIST\)/)
        t.true(statSync(stage.sock).isFile())
      })
    } finally {
      stage.cleanup()
    }
  },
)

rootTest('vmtap serve refuses an invalid policy at start, naming the field', async (t) => {
  const dir = mkdtempSync('/tmp/vmtap-policy-')
  try {
    const cases: [unknown, RegExp][] = [
      [{ allow: [{ uid: 1, bridges: ['br0'], maxQueue: 4 }] }, /policy: allow\[0\]\.maxQueue is not a known field/],
      [
        { allow: [{ bridges: ['br0'] }] },
        /policy: allow\[0\] must select its clients with one of uid, user, gid, group/,
      ],
      [
        { allow: [{ user: 'no-such-user-vmtap', bridges: ['br0'] }] },
        /policy: allow\[0\]\.user names no user in \/etc\/passwd/,
      ],
      [{ allow: [{ uid: 1, bridges: ['br 0'] }] }, /policy: allow\[0\]\.bridges\[0\] is not an interface name/],
      [
        { allow: [{ uid: 1, bridges: ['br0'], mtu: { min: 9000, max: 1500 } }] },
        /policy: allow\[0\]\.mtu has min 9000 above max 1500/,
      ],
      [{ allow: {} }, /policy: allow must be a list of rules/],
    ]
    const cli = ensureDistBuilt()
    for (const [policy, message] of cases) {
      const file = join(dir, 'p.json')
      writeFileSync(file, JSON.stringify(policy))
      const r = spawnSync(process.execPath, [cli, 'serve', '--socket', join(dir, 's'), '--policy', file], {
        encoding: 'utf8',
      })
      t.is(r.status, 2, r.stderr)
      t.regex(r.stderr, message)
      t.regex(r.stderr, /\(ERR_VMTAP_POLICY\)\n$/)
      t.false(existsSync(join(dir, 's')), 'no socket was created')
    }
    writeFileSync(join(dir, 'p.json'), '{ "allow": [ }')
    const r = spawnSync(process.execPath, [cli, 'serve', '--socket', join(dir, 's'), '--policy', join(dir, 'p.json')], {
      encoding: 'utf8',
    })
    t.is(r.status, 2)
    t.regex(r.stderr, /p\.json is not JSON/)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('requestTap without a broker: the socket error (ENOENT, ECONNREFUSED); bad options before connecting', async (t) => {
  const dir = mkdtempSync('/tmp/vmtap-nobroker-')
  try {
    await t.throwsAsync(requestTap(join(dir, 'none.sock')), { code: 'ENOENT' })
    // A socket file nobody listens on (its process died without removing it).
    const stale = join(dir, 'stale.sock')
    const r = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ])
    t.is(r.signal, 'SIGKILL')
    await t.throwsAsync(requestTap(stale), { code: 'ECONNREFUSED' })
    await t.throwsAsync(requestTap(stale, { queues: 0 }), { code: 'ERR_OUT_OF_RANGE', instanceOf: RangeError })
    await t.throwsAsync(requestTap(stale, { bridge: 'a b' }), { code: 'ERR_INVALID_ARG_VALUE' })
    await t.throwsAsync(requestTap(stale, { mac: '52:54:00:12:34:56' }), {
      code: 'ERR_INVALID_ARG_VALUE',
      message: /must start with fe: or fa:/,
    })
    await t.throwsAsync(requestTap(stale, { owner: 1 } as never), {
      code: 'ERR_INVALID_ARG_VALUE',
      message: /options\.owner' is not a known option/,
    })
    await t.throwsAsync(requestTap(stale, { netns: 3 } as never), { code: 'ERR_INVALID_ARG_TYPE' })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

/**
 * Run `vmtap bridge-helper` the way QEMU does: `/bin/sh -c "<helper> --use-vnet
 * --fd=3 --br=BR"` with fd 3 one end of a connected Unix socket, as uid 65534;
 * receive what it sends on the other end.
 */
async function asQemuWould(stage: Stage, ns: string, br: string) {
  const dir = mkdtempSync('/tmp/vmtap-qemu-')
  const path = join(dir, 'pair.sock')
  const server: Server = createServer({ pauseOnConnect: true })
  await new Promise<void>((r) => server.listen(path, r))
  const accepted = new Promise<Socket>((r) => server.once('connection', r))
  const ours = new Socket()
  ours.pause()
  await new Promise<void>((r) => ours.connect(path, r))
  const theirs = await accepted
  const helper = `${process.execPath} ${stage.cli} bridge-helper --socket ${stage.sock}`
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, ...asUser(), '/bin/sh', '-c', `${helper} --use-vnet --fd=3 --br=${br}`],
    {
      stdio: ['ignore', 'pipe', 'pipe', ours],
      env: childEnv(),
      cwd: '/',
    },
  )
  ours.destroy() // the helper has its own copy
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s))
  const code = await new Promise<number | null>((r) => child.once('close', r))
  const got = await recvFds(theirs, { maxBytes: 16, maxFds: 4, timeoutMs: 5000 })
  theirs.destroy()
  server.close()
  rmSync(dir, { recursive: true, force: true })
  return { code, stderr, got }
}

rootTest(
  "vmtap bridge-helper speaks QEMU's helper protocol through /bin/sh -c as uid 65534: one tap fd on the bridge, up; a refusal exits 1 with one line on stderr",
  async (t) => {
    t.timeout(120_000)
    await withBroker(t, POLICY, async ({ ns, stage, broker }) => {
      const ok = await asQemuWould(stage, ns, 'br0')
      t.is(ok.code, 0, ok.stderr)
      t.is(ok.stderr, '')
      t.is(ok.got.data.length, 1, 'one byte')
      t.is(ok.got.fds.length, 1, 'one fd')
      const [fd] = ok.got.fds
      const iff = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^iff:\s+(\S+)$/m)?.[1]
      const dev = taps(ns).find((l) => l.ifname === iff)
      t.like(dev, { master: 'br0', up: true, tun: { multi_queue: false, vnet_hdr: true, user: NOBODY } })
      await broker.waitForLines(1)
      t.like(broker.lines[0], { event: 'grant', uid: NOBODY, result: iff, request: { bridge: 'br0', up: true } })
      closeSync(fd)
      t.is(taps(ns).length, 0, 'the device went with the last fd (QEMU exiting)')

      const no = await asQemuWould(stage, ns, 'br1')
      t.is(no.code, 1)
      t.regex(
        no.stderr,
        /^vmtap: broker: refused by rule "vm-users" \(uid 65534\): bridge br1 is not in its bridges \(br0\) \(EACCES\)\n$/,
      )
      t.is(no.got.fds.length, 0)
      t.is(taps(ns).length, 0)
      const noSocket = spawnSync(process.execPath, [stage.cli, 'bridge-helper', '--socket', stage.sock, '--br=br0'], {
        encoding: 'utf8',
      })
      t.is(noSocket.status, 2)
      t.regex(noSocket.stderr, /--fd=N is missing/)
    })
  },
)
