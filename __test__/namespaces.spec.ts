// Taps in other network namespaces, created and configured by a process that
// stays in its own: the same name in two namespaces, setters acting in the
// device's namespace, refusals, an fd given for the namespace, and
// concurrent opens. Every namespace is one the test creates.
import { execFileSync } from 'node:child_process'

import { rootTest } from './helpers'
import { runIn, withNetns } from './netns'

const scenario = 'scenarios/namespaces.ts'

/** Run `fn` with `n` extra named namespaces (beside runIn's), deleted afterwards. */
async function withNamespaces<T>(n: number, fn: (names: string[]) => Promise<T>): Promise<T> {
  const names = Array.from({ length: n }, (_, i) => `vmtap-ns-${process.pid}-${i}`)
  for (const name of names) execFileSync('ip', ['netns', 'add', name])
  try {
    return await fn(names)
  } finally {
    for (const name of names) execFileSync('ip', ['netns', 'del', name])
  }
}

rootTest(
  'one process creates vmt0 in namespaces A and B; each exists only in its own; setters act in A only',
  async (t) => {
    const r = await withNamespaces(2, ([a, b]) => withNetns((o) => runIn<any>(o, scenario, 'twoNamespaces', [a, b])))
    t.truthy(r.before.a, 'vmt0 exists in A')
    t.truthy(r.before.b, 'vmt0 exists in B')
    t.is(r.before.here, null, 'and not in the caller’s namespace')
    t.not(r.before.a.address, r.before.b.address, 'two devices')
    t.is(r.after.a.mtu, 1400)
    t.is(r.after.a.address, 'fe:00:00:00:0a:00')
    t.is(r.after.a.master, 'vmtbr')
    t.true(r.after.a.flags.includes('UP'))
    t.is(r.after.b.mtu, 1500, 'B’s device is untouched')
    t.is(r.after.b.address, r.before.b.address)
    t.is(r.after.b.master, undefined)
    t.like(r.info, { ifname: 'vmt0', mtu: 1400, mac: 'fe:00:00:00:0a:00', up: true, ifindex: r.after.a.ifindex })
    t.deepEqual(r.netns, [`/run/netns/${r.netns[0].split('/').pop()}`, r.netns[1]])
    t.regex(r.netns[0], /^\/run\/netns\/vmtap-ns-/)
    t.true(r.persisted)
    t.true(r.deleted, 'deleteTap(name, { netns }) removed the persistent device in A')
    t.true(r.features)
    t.true(r.homeUnchanged, 'the calling thread never changed namespace')
    t.is(r.fdsDuring, 2 * 2 + 2, 'two queues each, and each device’s namespace file')
  },
)

rootTest(
  'a missing namespace or a file that is not one is a TapError; an fd works and is vmtap’s own copy',
  async (t) => {
    const r = await withNamespaces(1, ([a]) => withNetns((o) => runIn<any>(o, scenario, 'refusals', [a])))
    t.like(r.out['missing name'], {
      code: 'ENOENT',
      errno: -2,
      syscall: 'open',
      path: '/run/netns/vmtap-no-such-ns',
      tap: true,
    })
    t.regex(r.out['missing name'].message, /there is no network namespace vmtap-no-such-ns/)
    t.like(r.out['missing path'], { code: 'ENOENT', syscall: 'open', path: '/run/netns/vmtap-no-such-ns' })
    t.like(r.out['regular file'], { code: 'EINVAL', syscall: 'setns', path: '/etc/hostname', tap: true })
    t.regex(r.out['regular file'].message, /is not a network namespace/)
    t.like(r.out['mount namespace'], { code: 'EINVAL', syscall: 'setns', path: '/proc/self/ns/mnt' })
    t.deepEqual(r.viaFd, { netns: true, mtu: 1300, here: false })
    t.is(r.fdsAfter, 0, 'no fd left')
    t.true(r.homeUnchanged)
    t.deepEqual(r.left, ['lo'], 'nothing left in the namespace')
  },
)

rootTest('openTapAsync with netns: 8 concurrent calls over 4 namespaces each land where asked', async (t) => {
  const r = await withNamespaces(4, (names) => withNetns((o) => runIn<any>(o, scenario, 'concurrent', [names])))
  t.is(r.placed.length, 8)
  for (const p of r.placed) {
    t.true(p.inOwn, `${p.name} is in ${p.ns}`)
    t.deepEqual(p.elsewhere, [], `${p.name} is nowhere else`)
  }
  t.true(r.homeUnchanged)
})

rootTest('listTaps, tags, getStats and gcTaps act in the namespace asked for', async (t) => {
  const r = await withNamespaces(1, ([a]) => withNetns((o) => runIn<any>(o, scenario, 'inventoryInNamespace', [a])))
  t.deepEqual(r.inA, [{ ifname: 'vmti0', tag: 'nsinv', queues: 2 }])
  t.false(r.here.includes('vmti0'), 'not listed where vmtap runs')
  t.is(r.retagged, 'nsinv2')
  t.true(r.statsOk)
  t.deepEqual(r.dry, ['vmtg0'])
  t.deepEqual(r.removed, ['vmtg0'])
  t.deepEqual(r.after, ['vmti0'], 'gc removed the tagged leftover in A and kept the held device')
})
