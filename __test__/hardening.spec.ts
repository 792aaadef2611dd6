// What an adversarial review broke, each with the test that failed before the
// fix: ownership of the devices vmtap creates, persistence by any path, link
// methods after a rename, uniqueName running out, and hints from another
// namespace's sysfs. Everything runs inside network namespaces the tests create.
import { join } from 'node:path'

import { ensureDistBuilt, rootTest } from './helpers'
import { runIn, withNetns } from './netns'

const scenario = 'scenarios/hardening.ts'
const repo = join(__dirname, '..')

type Result = { label: string; ok: boolean; err?: { code: string; syscall: string; message: string } }

rootTest(
  'a device vmtap creates is its creator’s: uid 65534 gets EPERM joining a held 2-queue tap; owner: null opts out; any path to persistence applies the rule',
  async (t) => {
    ensureDistBuilt()
    const r = await withNetns((ns) => runIn<any>(ns, scenario, 'ownership', [repo]))
    const step = (label: string) => (r.kid.results as Result[]).find((s) => s.label === label)!
    t.is(r.kid.uid, 65534)
    t.false(step('joinOwned').ok, 'a stranger cannot attach a queue to a device vmtap created')
    t.is(step('joinOwned').err?.code, 'EPERM')
    t.true(step('joinOwnerless').ok, 'owner: null leaves the kernel default (anyone may attach)')
    t.false(step('joinGrouped').ok)
    t.is(step('joinGrouped').err?.code, 'EPERM')
    t.deepEqual(r.owners.owned, ['0', '-1'], 'owned by the creator (root)')
    t.deepEqual(r.owners.ownerless, ['-1', '-1'])
    t.deepEqual(r.owners.grouped, ['-1', '65533'], 'a group alone: no default owner')
    t.is(r.afterSetPersist[0], '0', 'setPersist(true) on an unowned device sets the caller as owner first')
    t.is(Number.parseInt(r.afterSetPersist[1], 16) & 0x0800, 0x0800, 'and made it persistent')
    t.is(r.optOutPersistent, '-1', 'persist with owner: null stays unowned')
    t.is(r.execPersist.status, 0, r.execPersist.stderr)
    t.is(r.execPersist.owner, '0', 'vmtap exec --persist leaves a device owned by its creator')
  },
)

rootTest(
  'link methods act on the device through a rename, never on the interface that took its old name',
  async (t) => {
    const r = await withNetns((ns) => runIn<any>(ns, scenario, 'rename'))
    t.is(r.info.ifname, 'hren1', 'getLinkInfo reports the current name')
    t.is(r.info.ifindex, r.ifindex, 'and the device’s own ifindex')
    t.not(r.otherIndex, r.ifindex)
    t.is(r.renamed.mtu, 1300)
    t.is(r.renamed.address, 'fe:00:00:00:13:00')
    t.true(r.renamed.flags.includes('UP'))
    t.not(r.other.mtu, 1300, 'the bridge that took the old name is untouched')
    t.not(r.other.address, 'fe:00:00:00:13:00')
    t.false(r.other.flags.includes('UP'))
  },
)

rootTest(
  'uniqueName goes round its number space: 130 opens of a 100-name template all succeed; all taken says so',
  async (t) => {
    const r = await withNetns((ns) => runIn<any>(ns, scenario, 'uniqueNames'))
    t.is(r.names.length, 130)
    t.is(r.names[0], 'abcdefghijklm0')
    t.is(r.names[99], 'abcdefghijklm99')
    t.is(r.names[100], 'abcdefghijklm0', 'after the last number, the first again')
    t.is(new Set(r.names.slice(0, 100)).size, 100, 'a freed name comes back only after every other one')
    t.is(r.held, 100)
    t.like(r.exhausted, { code: 'ENFILE', syscall: 'ioctl(TUNSETIFF)', isTapError: true })
    t.regex(
      r.exhausted.message,
      /all 100 names of the template abcdefghijklm%d \(abcdefghijklm0 to abcdefghijklm99\) exist/,
    )
  },
)

rootTest('a device of the same name and ifindex in the parent’s sysfs is not taken for this namespace’s', async (t) => {
  ensureDistBuilt()
  const r = await withNetns((ns) => runIn<any>(ns, scenario, 'sysfsFromAnotherNamespace', [repo]))
  t.is(r.status, 0, r.stderr)
  const open = r.report.results[0] as Result
  t.false(open.ok)
  t.is(open.err?.code, 'EINVAL')
  t.regex(open.err!.message, /hsx0 exists and is not a TUN\/TAP device \(it is a bridge\)/)
  t.notRegex(open.err!.message, /multi_queue/, 'no hint from the other namespace’s device')
})
