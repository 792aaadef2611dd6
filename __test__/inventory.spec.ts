// listTaps, tapHolders, tags, getStats and gcTaps (the API and the CLI's
// list/holders/gc), against what the kernel reports (ip -j, /proc), inside
// network namespaces the tests create.
import test from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'

import { checkOpenTapOptions, gcTaps, limits, listTaps, openTap, TapError, type TapInfo, tapHolders } from '../index'
import { makeError } from '../lib/errors'
import { native } from '../lib/native'
import { ensureDistBuilt, rootTest, uniqueName } from './helpers'
import { runIn, withNetns } from './netns'

const scenario = 'scenarios/inventory.ts'

test.serial('bad arguments are refused before any syscall', async (t) => {
  // The addon must not be reached: its functions throw while this runs.
  const n = native() as unknown as Record<string, unknown>
  const saved = { ...n }
  for (const k of ['open', 'listTaps', 'tapHolders', 'gcTaps', 'setTag']) {
    n[k] = () => {
      throw new Error(`${k} reached the addon`)
    }
  }
  t.teardown(() => Object.assign(n, saved))
  t.throws(() => listTaps({ nope: 'x' } as never), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => listTaps({ netns: 'a/b' }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => listTaps({ netns: {} } as never), { code: 'ERR_INVALID_ARG_TYPE' })
  await t.throwsAsync(gcTaps({ netns: '..' }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => tapHolders(5 as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => tapHolders('vm%d'), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => tapHolders('a/b'), { code: 'ERR_INVALID_ARG_VALUE' })
  for (const tag of ['', 'a b', 'a=b', 'é', 't'.repeat(limits.maxTagBytes + 1), 7]) {
    t.throws(() => openTap({ tag } as never), {
      code: typeof tag === 'string' ? 'ERR_INVALID_ARG_VALUE' : 'ERR_INVALID_ARG_TYPE',
    })
    await t.throwsAsync(gcTaps({ tag } as never), {
      code: typeof tag === 'string' ? 'ERR_INVALID_ARG_VALUE' : 'ERR_INVALID_ARG_TYPE',
    })
  }
  await t.throwsAsync(gcTaps({ dryRun: 'yes' } as never), { code: 'ERR_INVALID_ARG_TYPE' })
  await t.throwsAsync(gcTaps({ force: true } as never), { code: 'ERR_INVALID_ARG_VALUE' })
  t.notThrows(() => checkOpenTapOptions({ tag: `a-Z_0.9:@/${'t'.repeat(limits.maxTagBytes - 10)}` }))
})

test.serial('an EBUSY from the addon becomes a TapError with holders', (t) => {
  const holders = [{ pid: 42, command: 'qemu-system-x86', fds: [3, 4] }]
  const e = makeError({ code: 'EBUSY', errno: -16, syscall: 'ioctl(TUNSETIFF)', ifname: 'vm0', message: 'm', holders })
  t.true(e instanceof TapError)
  t.deepEqual((e as TapError).holders, holders)
  t.false('holders' in makeError({ code: 'EPERM', errno: -1, syscall: 'open', message: 'm' }))
})

type Row = Record<string, any>

/** The CLI, without a device (what is refused is refused before any syscall). */
function runCli(...args: string[]) {
  const r = spawnSync(process.execPath, [ensureDistBuilt(), ...args], { encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('CLI: list/holders/gc help, and bad values refused as usage errors', (t) => {
  for (const c of ['list', 'holders', 'gc']) {
    const r = runCli(c, '--help')
    t.is(r.status, 0, c)
    t.regex(r.stdout, new RegExp(`^Usage: vmtap ${c}`))
    t.regex(r.stdout, /\nExamples?:\n/)
  }
  t.regex(runCli('--help').stdout, /^ {2}gc\b/m)
  t.regex(runCli('list', '--help').stdout, /"tap"\|"tun"/, 'the --json schema')
  const usage: [string[], RegExp][] = [
    [['holders'], /missing required argument 'name'/],
    [['holders', 'a/b'], /The argument NAME must be/],
    [['gc', '--tag', 'a b'], /'--tag' must be 1 to 64 bytes/],
    [['create', '--persist', '--name', 'x0', '--tag', ''], /'--tag'/],
    [['exec', '--net', 'tag=a;b', '--', 'true'], /--net\[0\] tag/],
    [['list', 'extra'], /too many arguments/],
  ]
  for (const [args, re] of usage) {
    const r = runCli(...args)
    t.is(r.status, 2, args.join(' '))
    t.regex(r.stderr, re, args.join(' '))
  }
})

/** ip prints a user or group by name when it has one: its number, as listTaps gives it. */
function numericId(v: number | string | undefined, db: 'passwd' | 'group'): number | null {
  if (v === undefined) return null
  if (typeof v === 'number') return v
  return Number(execFileSync('getent', [db, v], { encoding: 'utf8' }).split(':')[2])
}

rootTest('listTaps equals ip -d -j link show type tun, field by field', async (t) => {
  const r = await withNetns((ns) =>
    runIn<{ ours: TapInfo[]; ip: Row[]; heldSingleQueue: string[] }>(ns, scenario, 'listMatchesIp'),
  )
  t.deepEqual(
    r.ours.map((x) => x.ifname),
    r.ip.map((j) => j.ifname),
    'the same devices, in the same (ifindex) order',
  )
  t.deepEqual(r.ours.map((x) => x.ifname).sort(), ['low0', 'lmq0', 'lnv0', 'lp0', 'lsl0', 'lsq0', 'ltn0'].sort())
  for (const [i, j] of r.ip.entries()) {
    const o = r.ours[i]
    const d = j.linkinfo.info_data
    const n = o.ifname
    t.is(o.ifindex, j.ifindex, `${n} ifindex`)
    t.is(o.type, d.type, `${n} type`)
    t.is(o.vnetHdr, d.vnet_hdr, `${n} vnet_hdr`)
    t.is(o.multiQueue, d.multi_queue, `${n} multi_queue`)
    t.is(o.persist, d.persist, `${n} persist`)
    t.is(o.owner, numericId(d.user, 'passwd'), `${n} owner`)
    t.is(o.group, numericId(d.group, 'group'), `${n} group`)
    if (o.multiQueue) {
      t.is(o.queues, d.numqueues, `${n} numqueues`)
      t.is(o.disabledQueues, d.numdisabled, `${n} numdisabled`)
    } else {
      t.is(o.queues, r.heldSingleQueue.includes(n) ? 1 : 0, `${n} queues`)
      t.is(o.disabledQueues, 0)
    }
    t.is(o.mtu, j.mtu, `${n} mtu`)
    t.is(o.mac, j.address ?? null, `${n} mac`)
    t.is(o.up, j.flags.includes('UP'), `${n} up`)
    t.is(o.master, j.master ?? null, `${n} master`)
    const alias: string | undefined = j.ifalias
    t.is(o.tag, alias?.startsWith('vmtap:tag=') ? alias.slice(10) : null, `${n} tag`)
  }
  const by = Object.fromEntries(r.ours.map((x) => [x.ifname, x]))
  t.like(by.lmq0, { queues: 3, disabledQueues: 1, multiQueue: true, persist: false })
  t.like(by.lsq0, { queues: 1, vnetHdr: true, persist: false })
  t.like(by.lnv0, { vnetHdr: false, up: true, mtu: 9000 })
  t.like(by.low0, { owner: 4242, group: 4343, persist: true, queues: 0, multiQueue: true })
  t.like(by.lsl0, { master: 'lbr0', tag: 'ci-7', up: true, mac: 'fe:54:00:00:00:07' })
  t.like(by.lp0, { tag: null, persist: true, queues: 0 })
  t.like(by.ltn0, { type: 'tun', mac: null })
})

rootTest(
  'a child holds a single-queue tap: openTap fails with EBUSY naming its pid; tapHolders lists it',
  async (t) => {
    const cli = ensureDistBuilt()
    // A name of this run's: the holders walk matches names in every namespace of the machine.
    const name = uniqueName('bsq')
    const r = await withNetns((ns) => runIn<Row>(ns, scenario, 'busyByChild', [cli, name]))
    t.like(r.busy, { code: 'EBUSY', isTapError: true })
    t.true(r.busy.message.includes(`held by pid ${r.pid} (${r.comm})`), r.busy.message)
    const expected = [{ pid: r.pid, command: r.comm, fds: [3] }]
    t.deepEqual(r.busy.holders, expected)
    t.deepEqual(r.holders, expected)
    // The same through the CLI.
    t.is(r.cliHolders.status, 0)
    t.deepEqual(JSON.parse(r.cliHolders.stdout), { schema: 1, ifname: name, holders: expected })
    const [w1, w2] = [Math.max(3, String(r.pid).length), Math.max(7, r.comm.length)]
    const line = (a: string, b: string, c: string) => `${a.padEnd(w1)}  ${b.padEnd(w2)}  ${c}\n`
    t.is(r.cliHoldersText.stdout, line('PID', 'COMMAND', 'FDS') + line(String(r.pid), r.comm, '3'))

    t.deepEqual(JSON.parse(r.cliList.stdout), { schema: 1, taps: r.list })
    t.like(r.cliMissing, { status: 1 })
    t.regex(r.cliMissing.stderr, /^vmtap: there is no TUN\/TAP device nope0 in this network namespace \(ENODEV\)\n$/)
    t.deepEqual(r.after, [], 'no holder once the child exited')
    t.true(r.gone, 'and the device (not persistent) went with it')
  },
)

rootTest(
  'vmtap gc --tag T: unheld tagged goes, held/untagged/other tag stay; the held one goes once released',
  async (t) => {
    const cli = ensureDistBuilt()
    // Names of this run's: gc names the holders of what it keeps, found by name in every namespace.
    const p = uniqueName('i')
    const r = await withNetns((ns) => runIn<Row>(ns, scenario, 'gcByCli', [cli, p]))
    const all = [`${p}gfree0:T`, `${p}gfreem0:T`, `${p}gheld0:T`, `${p}gother0:U`, `${p}guntag0:-`]
    t.is(r.dry.status, 0)
    const dry = JSON.parse(r.dry.stdout)
    t.true(dry.dryRun)
    t.deepEqual(
      dry.removed.map((e: Row) => e.ifname),
      [`${p}gfree0`, `${p}gfreem0`],
    )
    t.deepEqual(r.afterDry, all, 'a dry run removes nothing')
    t.is(r.first.status, 0, r.first.stderr)
    const first = JSON.parse(r.first.stdout)
    t.like(first, { schema: 1, dryRun: false, failed: [] })
    t.deepEqual(
      first.removed.map((e: Row) => `${e.ifname}:${e.tag}`),
      [`${p}gfree0:T`, `${p}gfreem0:T`],
    )
    t.is(first.kept.length, 1)
    t.like(first.kept[0], { ifname: `${p}gheld0`, tag: 'T' })
    t.deepEqual(first.kept[0].holders, [{ pid: r.pid, command: r.comm, fds: [3] }])
    t.deepEqual(r.afterFirst, [`${p}gheld0:T`, `${p}gother0:U`, `${p}guntag0:-`])
    t.is(r.second.status, 0)
    t.is(r.second.stdout, `removed ${p}gheld0 (tag T)\n`)
    t.deepEqual(r.afterSecond, [`${p}gother0:U`, `${p}guntag0:-`])
    t.deepEqual(r.api, { dryRun: false, removed: [], kept: [], failed: [] })
  },
)

rootTest('frames written to a tap fd show in getStats() exactly as in ip -s -j link', async (t) => {
  const frames = 37
  const r = await withNetns((ns) => runIn<Row>(ns, scenario, 'statsMatchIp', [frames]))
  const { rx, tx } = r.ip
  t.deepEqual(r.ours, {
    rxPackets: rx.packets,
    rxBytes: rx.bytes,
    rxErrors: rx.errors,
    rxDropped: rx.dropped,
    txPackets: tx.packets,
    txBytes: tx.bytes,
    txErrors: tx.errors,
    txDropped: tx.dropped,
  })
  t.is(r.ours.rxPackets, frames)
  t.is(r.ours.rxBytes, frames * r.frameBytes)
})

rootTest('a 1,000-device namespace: listTaps returns all of them', async (t) => {
  const n = 1000
  const r = await withNetns((ns) => runIn<Row>(ns, scenario, 'many', [n]))
  t.is(r.count, n)
  t.is(r.ip, n)
  t.deepEqual(new Set(r.names), new Set(Array.from({ length: n }, (_, i) => `k${i}`)))
  t.true(r.allPersistentUnheld)
})
