// Valid options on real devices (properties.spec.ts): random valid option
// objects, within what this namespace can satisfy (a bridge rbr0 exists, no
// vhost-net: vhost fds come from a stand-in node), must be accepted by the
// addon and the kernel, and the device must be what was asked for, as sysfs
// and the fds report it; closing (and deleteTap for a persistent one) leaves
// no fd and no link. Runs as root inside a network namespace the test made.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { strict as assert } from 'node:assert'
import fc from 'fast-check'

import { constants, deleteTap, openTap, type OpenTapOptions } from '../../index'

const fdCount = () => readdirSync('/proc/self/fd').length
const links = () => readdirSync('/sys/class/net').sort()
const sysfs = (name: string, attr: string) => readFileSync(`/sys/class/net/${name}/${attr}`, 'utf8').trim()
const iff = (fd: number) => readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^iff:\s+(\S+)$/m)?.[1]

export function validOptionsOnRealDevices(runs: number, seed: number | null) {
  execFileSync('ip', ['link', 'add', 'rbr0', 'type', 'bridge'])
  execFileSync('ip', ['link', 'set', 'rbr0', 'up'])
  const baseLinks = links()
  const baseFds = fdCount()
  let exact = 0
  let opened = 0
  const names: string[] = []
  const hexByte = fc.integer({ min: 0, max: 255 }).map((n) => n.toString(16).padStart(2, '0'))
  const mac = fc
    .tuple(
      fc.integer({ min: 0, max: 127 }).map((n) => (n * 2).toString(16).padStart(2, '0')),
      fc.array(hexByte, { minLength: 5, maxLength: 5 }),
      fc.boolean(),
    )
    .map(([first, rest, upper]) => {
      const s = [first, ...rest].join(':')
      return upper ? s.toUpperCase() : s
    })
    .filter((s) => s !== '00:00:00:00:00:00')
  const options = fc
    .record(
      {
        name: fc.constantFrom<string | undefined>(undefined, '', 'rv%d', 'v%dx', 'exact'),
        queues: fc.oneof(
          { weight: 8, arbitrary: fc.integer({ min: 1, max: 8 }) },
          { weight: 1, arbitrary: fc.constantFrom(16, 64, 256) },
        ),
        vnetHdr: fc.constantFrom<boolean | 'auto'>(true, false, 'auto'),
        vhost: fc.constantFrom<boolean | 'auto'>(false, 'auto', true),
        exclusive: fc.boolean(),
        uniqueName: fc.boolean(),
        persist: fc.boolean(),
        owner: fc.integer({ min: 0, max: 2 ** 32 - 2 }),
        group: fc.integer({ min: 0, max: 2 ** 32 - 2 }),
        vnetHdrSize: fc.constantFrom<10 | 12 | 20>(10, 12, 20),
        offloads: fc.record(
          {
            csum: fc.boolean(),
            tso4: fc.boolean(),
            tso6: fc.boolean(),
            ecn: fc.boolean(),
            ufo: fc.boolean(),
            uso4: fc.boolean(),
            uso6: fc.boolean(),
          },
          { requiredKeys: [] },
        ),
        mtu: fc.integer({ min: 68, max: 65521 }),
        mac,
        bridge: fc.constant('rbr0'),
        up: fc.boolean(),
      },
      { requiredKeys: [] },
    )
    .map((o): OpenTapOptions => {
      const r = { ...o } as OpenTapOptions & { name?: string }
      if (r.name === 'exact') r.name = `rvx${exact++}`
      if (r.uniqueName && r.name && !r.name.includes('%d')) delete r.uniqueName
      const off = r.offloads ? { ...r.offloads } : undefined // never mutate a generated value
      r.offloads = off
      // What the kernel's set_offload() takes: ECN only with TSO, USO4 and USO6 together
      // (vmtap does not refuse the others up front; see the test of them below).
      if (off?.ecn && !off.tso4 && !off.tso6) off.tso4 = true
      if (off && Boolean(off.uso4) !== Boolean(off.uso6)) off.uso4 = off.uso6 = true
      if (off && Object.values(off).some(Boolean)) off.csum = true
      if (r.vnetHdr === false && (r.vnetHdrSize !== undefined || off?.csum)) r.vnetHdr = 'auto'
      // No vhost-net here: 'auto' finds none; true opens a stand-in node (its fds are what is checked).
      if (r.vhost === true) r.vhostPath = '/dev/null'
      return r
    })

  fc.assert(
    fc.property(options, (o) => {
      const fds = fdCount()
      const tap = openTap(o)
      opened++
      names.push(tap.ifname)
      const name = tap.ifname
      try {
        const template = o.name === undefined || o.name === '' ? 'tap%d' : o.name
        assert.match(name, new RegExp(`^${template.replace('%d', '[0-9]+')}$`), 'the name follows the request')
        const queues = o.queues ?? 1
        assert.equal(tap.tapFds.length, queues)
        for (const fd of tap.tapFds) assert.equal(iff(fd), name, `fd ${fd} is attached to ${name}`)
        assert.equal(tap.vhostFds.length, o.vhost === true ? queues : 0)
        const flags = parseInt(sysfs(name, 'tun_flags'), 16)
        assert.equal((flags & constants.IFF_MULTI_QUEUE) !== 0, queues > 1, 'multi_queue')
        assert.equal((flags & constants.IFF_VNET_HDR) !== 0, o.vnetHdr !== false, 'vnet_hdr (the kernel offers it)')
        assert.equal(tap.vnetHdr, o.vnetHdr !== false)
        assert.equal((flags & constants.IFF_PERSIST) !== 0, o.persist === true, 'persist')
        // A device vmtap creates without owner/group is the creator's (root here).
        const owner = o.owner ?? (o.group === undefined ? process.geteuid!() : -1)
        assert.equal(Number(sysfs(name, 'owner')), owner, 'owner')
        assert.equal(Number(sysfs(name, 'group')), o.group ?? -1, 'group')
        if (o.vnetHdrSize !== undefined) assert.equal(tap.getVnetHdrSize(), o.vnetHdrSize)
        if (o.mtu !== undefined) assert.equal(Number(sysfs(name, 'mtu')), o.mtu)
        if (o.mac !== undefined) assert.equal(sysfs(name, 'address'), o.mac.toLowerCase())
        if (o.bridge !== undefined) assert.ok(readdirSync('/sys/class/net/rbr0/brif').includes(name), 'a port of rbr0')
        assert.equal((parseInt(sysfs(name, 'flags'), 16) & 1) === 1, o.up === true, 'IFF_UP')
      } finally {
        tap.close()
        if (o.persist) deleteTap(name)
      }
      assert.ok(!links().includes(name), `${name} is gone`)
      assert.equal(fdCount(), fds, 'no fd left')
    }),
    { numRuns: runs, includeErrorInReport: true, ...(seed === null ? {} : { seed }) },
  )
  assert.deepEqual(links(), baseLinks)
  assert.equal(fdCount(), baseFds)
  // Offload sets the kernel would refuse: refused before any syscall, nothing left.
  const refused: Record<string, unknown> = {}
  for (const [label, offloads] of Object.entries({
    ecnWithoutTso: { csum: true, ecn: true },
    persistEcn: { csum: true, ecn: true, tso6: false },
  })) {
    try {
      openTap({ name: 'rvoff0', offloads, persist: label === 'persistEcn', queues: 2 }).close()
      refused[label] = 'accepted'
    } catch (e) {
      const err = e as { name: string; code: string; syscall: string; ifname: string }
      refused[label] = { name: err.name, code: err.code, syscall: err.syscall, ifname: err.ifname }
    }
  }
  assert.deepEqual(links(), baseLinks, 'a refused offload set leaves no device (a persistent one included)')
  assert.equal(fdCount(), baseFds)
  return { runs, opened, names, refused }
}
