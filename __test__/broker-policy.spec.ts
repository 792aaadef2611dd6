// The broker's pure parts, without root: the policy (every field, every
// refusal naming its field, user and group names from given files, the
// decision), the protocol (framing, requests, responses, option checks) and
// the open options a grant becomes.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import test from 'ava'

import { authorize, loadPolicy, parsePolicy, PolicyError, type Requester } from '../lib/broker/policy'
import {
  encodeFrame,
  FrameReader,
  MAX_MESSAGE_BYTES,
  normalizeRemoteOptions,
  ProtocolError,
  parseRequest,
  parseResponse,
} from '../lib/broker/protocol'
import { openOptionsFor } from '../lib/broker/server'

const who = (uid: number, gid = uid, groups: number[] | null = []): Requester => ({ uid, gid, groups })

test('a policy with every field; defaults for the rest', (t) => {
  const p = parsePolicy({
    version: 1,
    allow: [
      {
        name: 'vms',
        uid: 107,
        bridges: ['br0', 'br1'],
        maxQueues: 8,
        vhost: true,
        namePrefix: 'vm',
        mtu: { min: 1280, max: 9000 },
        persist: true,
        owner: 'none',
        netns: ['blue', '/var/run/netns/red'],
      },
      { gid: 106, bridges: [], unbridged: true },
    ],
  })
  t.like(p.rules[0], {
    label: 'vms',
    who: 'uid 107',
    uid: 107,
    gid: null,
    bridges: ['br0', 'br1'],
    unbridged: false,
    maxQueues: 8,
    vhost: true,
    namePrefix: 'vm',
    mtu: { min: 1280, max: 9000 },
    persist: true,
    owner: 'none',
    netns: ['/run/netns/blue', '/var/run/netns/red'],
  })
  t.like(p.rules[1], {
    label: 'allow[1]',
    who: 'gid 106',
    uid: null,
    gid: 106,
    unbridged: true,
    maxQueues: 1,
    vhost: false,
    namePrefix: null,
    mtu: null,
    persist: false,
    owner: 'client',
    netns: [],
  })
  t.true(Object.isFrozen(p) && Object.isFrozen(p.rules) && Object.isFrozen(p.rules[0]))
  t.deepEqual(parsePolicy({ allow: [] }).rules, [])
})

test('an invalid policy is refused with a PolicyError naming the field', (t) => {
  const rule = { uid: 1, bridges: ['br0'] }
  const cases: [unknown, string, RegExp][] = [
    [null, '(top level)', /must be a JSON object/],
    [[], '(top level)', /must be a JSON object/],
    [{}, 'allow', /must be a list of rules/],
    [{ allow: [], rules: [] }, 'rules', /is not a known field \(known: version, allow\)/],
    [{ version: 2, allow: [] }, 'version', /must be 1, got 2/],
    [{ allow: [7] }, 'allow[0]', /must be an object/],
    [{ allow: [{ ...rule, maxQueue: 2 }] }, 'allow[0].maxQueue', /is not a known field/],
    [{ allow: [{ bridges: ['br0'] }] }, 'allow[0]', /one of uid, user, gid, group/],
    [{ allow: [{ ...rule, gid: 2 }] }, 'allow[0]', /only one of uid, user, gid, group \(has uid, gid\)/],
    [{ allow: [{ uid: -1, bridges: ['br0'] }] }, 'allow[0].uid', /integer from 0 to 4294967294, got -1/],
    [{ allow: [{ uid: '1', bridges: ['br0'] }] }, 'allow[0].uid', /got "1"/],
    [{ allow: [{ user: '', bridges: ['br0'] }] }, 'allow[0].user', /must be a name/],
    [{ allow: [{ uid: 1 }] }, 'allow[0].bridges', /must be a list of bridge names/],
    [{ allow: [{ uid: 1, bridges: [] }] }, 'allow[0].bridges', /is empty and unbridged is not true/],
    [{ allow: [{ uid: 1, bridges: ['br0', 'a/b'] }] }, 'allow[0].bridges[1]', /is not an interface name/],
    [{ allow: [{ uid: 1, bridges: ['br%d'] }] }, 'allow[0].bridges[0]', /is not an interface name/],
    [{ allow: [{ ...rule, unbridged: 'yes' }] }, 'allow[0].unbridged', /must be true or false/],
    [{ allow: [rule, { ...rule, maxQueues: 0 }] }, 'allow[1].maxQueues', /from 1 to 256, got 0/],
    [{ allow: [{ ...rule, maxQueues: 257 }] }, 'allow[0].maxQueues', /from 1 to 256/],
    [{ allow: [{ ...rule, vhost: 1 }] }, 'allow[0].vhost', /must be true or false/],
    [{ allow: [{ ...rule, namePrefix: 'vm%' }] }, 'allow[0].namePrefix', /without '\/', ':', '%'/],
    [{ allow: [{ ...rule, namePrefix: 'abcdefghijklm' }] }, 'allow[0].namePrefix', /1-12 bytes/],
    [{ allow: [{ ...rule, mtu: 1500 }] }, 'allow[0].mtu', /must be an object/],
    [{ allow: [{ ...rule, mtu: { min: 1500 } }] }, 'allow[0].mtu.max', /integer from 68 to 65521/],
    [{ allow: [{ ...rule, mtu: { min: 60, max: 1500 } }] }, 'allow[0].mtu.min', /from 68 to 65521, got 60/],
    [{ allow: [{ ...rule, mtu: { min: 68, max: 1500, step: 2 } }] }, 'allow[0].mtu.step', /is not a known field/],
    [{ allow: [{ ...rule, mtu: { min: 9000, max: 1500 } }] }, 'allow[0].mtu', /has min 9000 above max 1500/],
    [{ allow: [{ ...rule, persist: null }] }, 'allow[0].persist', /must be true or false/],
    [{ allow: [{ ...rule, owner: 'root' }] }, 'allow[0].owner', /must be "client" or "none"/],
    [{ allow: [{ ...rule, netns: 'blue' }] }, 'allow[0].netns', /must be a list/],
    [
      { allow: [{ ...rule, netns: ['blue', '../x'] }] },
      'allow[0].netns[1]',
      /is not a namespace name or absolute path/,
    ],
    [{ allow: [{ ...rule, netns: ['/run/netns/../x'] }] }, 'allow[0].netns[0]', /is not a namespace name/],
    [{ allow: [{ ...rule, name: '' }] }, 'allow[0].name', /1-64 printable ASCII/],
  ]
  for (const [input, field, message] of cases) {
    const e = t.throws(() => parsePolicy(input), { instanceOf: PolicyError }, JSON.stringify(input))
    t.is(e?.field, field, JSON.stringify(input))
    t.is(e?.code, 'ERR_VMTAP_POLICY')
    t.regex(e?.message ?? '', message)
    t.true(e?.message.startsWith(`policy: ${field} `), e?.message)
  }
})

test('user and group names are resolved from the local files when the policy is loaded', (t) => {
  const dir = mkdtempSync('/tmp/vmtap-policy-')
  try {
    const passwd = join(dir, 'passwd')
    const group = join(dir, 'group')
    writeFileSync(passwd, 'root:x:0:0::/root:/bin/sh\n# a comment\nqemu:x:107:107::/:/bin/false\nbroken-line\n')
    writeFileSync(group, 'root:x:0:\nkvm:x:106:qemu,alice\n')
    const names = { passwdFile: passwd, groupFile: group }
    const p = parsePolicy(
      {
        allow: [
          { user: 'qemu', bridges: ['br0'] },
          { group: 'kvm', bridges: ['br1'] },
        ],
      },
      names,
    )
    t.like(p.rules[0], { uid: 107, who: 'user qemu (uid 107)' })
    t.like(p.rules[1], { gid: 106, who: 'group kvm (gid 106)' })
    t.throws(() => parsePolicy({ allow: [{ user: 'alice', bridges: ['br0'] }] }, names), {
      message: `policy: allow[0].user names no user in ${passwd}: "alice" (vmtap reads the local file only; give uid instead)`,
    })
    t.throws(() => parsePolicy({ allow: [{ group: 'qemu', bridges: ['br0'] }] }, names), {
      message: /allow\[0\]\.group names no group in .*: "qemu" .*give gid instead/,
    })
    t.throws(() => parsePolicy({ allow: [{ user: 'qemu', bridges: ['br0'] }] }, { passwdFile: join(dir, 'none') }), {
      message: /allow\[0\]\.user cannot be resolved: .*none: ENOENT/,
    })
    // loadPolicy: the file's own problems are named by its path.
    const file = join(dir, 'policy.json')
    writeFileSync(file, '{"allow": [')
    t.throws(() => loadPolicy(file), { message: new RegExp(`^policy: ${file} is not JSON`) })
    t.throws(() => loadPolicy(join(dir, 'missing.json')), { message: /cannot be read: ENOENT/ })
    writeFileSync(file, JSON.stringify({ allow: [{ user: 'qemu', bridges: ['br0'], maxQueues: 4 }] }))
    t.is(loadPolicy(file, names).rules[0].maxQueues, 4)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('authorize: the first rule that selects the client and allows the request grants it; refusals say which rules and why', (t) => {
  const p = parsePolicy({
    allow: [
      { name: 'one', uid: 1000, bridges: ['br0'], maxQueues: 2 },
      {
        name: 'kvm',
        gid: 106,
        bridges: ['br1'],
        maxQueues: 4,
        vhost: true,
        namePrefix: 'vmk',
        mtu: { min: 1280, max: 9000 },
      },
      { name: 'ns', uid: 1001, bridges: [], unbridged: true, persist: true, netns: ['blue'] },
    ],
  })
  const grant = (w: Requester, req: object) => {
    const d = authorize(p, w, req)
    if (!d.granted) throw new Error(d.message)
    return d
  }
  const refuse = (w: Requester, req: object) => {
    const d = authorize(p, w, req)
    if (d.granted) throw new Error(`granted by ${d.rule.label}`)
    return d
  }
  t.is(grant(who(1000), { bridge: 'br0', queues: 2 }).rule.label, 'one')
  // uid 1000 in group 106 (supplementary): the kvm rule takes what the first refuses.
  t.is(grant(who(1000, 1000, [106]), { bridge: 'br1', queues: 4 }).rule.label, 'kvm')
  t.is(grant(who(5, 106, null), { bridge: 'br1' }).rule.label, 'kvm', 'the primary gid selects too')
  t.regex(
    refuse(who(5, 5, null), { bridge: 'br1' }).message,
    /no rule of the policy selects uid 5 \(gid 5, groups unknown\)/,
  )
  const both = refuse(who(1000, 1000, [106]), { bridge: 'br1', queues: 8 })
  t.is(both.rule?.label, 'one', 'the first rule that selected the client')
  t.is(
    both.message,
    'refused by rule "one" (uid 1000): bridge br1 is not in its bridges (br0); rule "kvm" (gid 106): 8 queues exceed its maxQueues 4',
  )
  const k = who(7, 106)
  t.is(grant(k, { bridge: 'br1', vhost: true }).options.vhost, true)
  t.is(
    grant(who(1000), { bridge: 'br0', vhost: 'auto' }).options.vhost,
    false,
    "'auto' under a rule without vhost: none",
  )
  t.regex(refuse(who(1000), { bridge: 'br0', vhost: true }).message, /vhost is not allowed \(vhost: false\)/)
  t.regex(
    refuse(who(1000), { bridge: 'br0', name: 'x0' }).message,
    /clients may not name devices \(no namePrefix\); asked for x0/,
  )
  t.is(grant(k, { bridge: 'br1', name: 'vmk%d' }).rule.label, 'kvm')
  t.regex(refuse(k, { bridge: 'br1', name: 'vm0' }).message, /name vm0 does not start with its namePrefix vmk/)
  t.regex(refuse(who(1000), { bridge: 'br0', mtu: 1500 }).message, /mtu 1500 is not allowed \(no mtu range\)/)
  t.regex(refuse(k, { bridge: 'br1', mtu: 1279 }).message, /mtu 1279 is outside its mtu range 1280-9000/)
  t.is(grant(k, { bridge: 'br1', mtu: 9000 }).rule.label, 'kvm')
  t.regex(refuse(k, { bridge: 'br1', persist: true }).message, /persistent devices are not allowed/)
  t.regex(refuse(k, {}).message, /a device without a bridge needs unbridged: true \(its bridges: br1\)/)
  const n = who(1001)
  t.is(grant(n, { persist: true }).rule.label, 'ns')
  t.regex(refuse(n, { bridge: 'br0' }).message, /bridge br0 is not in its bridges \(none\)/)
  t.is(grant(n, { netns: 'blue' }).rule.label, 'ns')
  t.is(grant(n, { netns: '/run/netns/blue' }).rule.label, 'ns', 'a name and its /run/netns path are the same')
  t.regex(refuse(n, { netns: 'red' }).message, /netns red is not in its netns \(\/run\/netns\/blue\)/)
  t.regex(refuse(who(1000), { bridge: 'br0', netns: 'blue' }).message, /netns blue is not in its netns \(none\)/)
})

test('frames: length-prefixed, refused above the limit before the payload is read, one per connection', (t) => {
  const f = encodeFrame({ v: 1, op: 'open' })
  t.is(f.readUInt32BE(0), f.length - 4)
  // Any split of the bytes gives the same payload.
  for (let cut = 0; cut <= f.length; cut++) {
    const r = new FrameReader()
    const first = r.push(f.subarray(0, cut))
    const second = cut < f.length ? r.push(f.subarray(cut)) : first
    t.deepEqual(JSON.parse(String(second)), { v: 1, op: 'open' })
  }
  const r = new FrameReader()
  t.is(r.missing, 4)
  t.is(r.push(f.subarray(0, 2)), null)
  t.is(r.missing, 2)
  t.is(r.push(f.subarray(2, 5)), null)
  t.is(r.missing, f.length - 5)
  const huge = Buffer.alloc(4)
  huge.writeUInt32BE(MAX_MESSAGE_BYTES + 1)
  t.throws(() => new FrameReader().push(huge), { instanceOf: ProtocolError, message: /4097 bytes exceeds 4096/ })
  t.is((t.throws(() => new FrameReader().push(huge)) as ProtocolError).code, 'EMSGSIZE')
  t.is((t.throws(() => new FrameReader().push(Buffer.alloc(4))) as ProtocolError).code, 'EPROTO')
  t.throws(() => new FrameReader().push(Buffer.concat([f, Buffer.from('x')])), { message: /bytes after the message/ })
  t.throws(() => encodeFrame({ s: 'x'.repeat(MAX_MESSAGE_BYTES) }), { instanceOf: ProtocolError })
})

test('requests: the envelope is a ProtocolError, the options the argument errors openTap would give', (t) => {
  const req = (o: unknown) => Buffer.from(JSON.stringify(o))
  t.deepEqual(parseRequest(req({ v: 1, op: 'open', options: { queues: 2, bridge: 'br0' } })), {
    v: 1,
    op: 'open',
    options: { queues: 2, bridge: 'br0' },
  })
  t.deepEqual(parseRequest(req({ v: 1, op: 'open' })).options, {})
  const proto = (payload: Buffer, code: ProtocolError['code'], message: RegExp) => {
    const e = t.throws(() => parseRequest(payload), { instanceOf: ProtocolError, message })
    t.is(e?.code, code)
  }
  proto(Buffer.from('{'), 'EPROTO', /not UTF-8 JSON/)
  proto(Buffer.from([0x7b, 0xff, 0x7d]), 'EPROTO', /not UTF-8 JSON/)
  proto(req([1]), 'EPROTO', /not a JSON object/)
  proto(req({ op: 'open' }), 'EPROTONOSUPPORT', /protocol version undefined is not spoken here \(this side speaks 1\)/)
  proto(req({ v: 2, op: 'open' }), 'EPROTONOSUPPORT', /version 2/)
  proto(req({ v: 1, op: 'close' }), 'EPROTO', /unknown op "close" \(known: open\)/)
  proto(req({ v: 1, op: 'open', uid: 0 }), 'EPROTO', /unknown request field "uid"/)
  t.throws(() => parseRequest(req({ v: 1, op: 'open', options: { queues: 0 } })), {
    instanceOf: RangeError,
    code: 'ERR_OUT_OF_RANGE',
  })
  t.throws(() => parseRequest(req({ v: 1, op: 'open', options: { tunPath: '/dev/null' } })), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /options\.tunPath' is not a known option/,
  })
  t.throws(() => parseRequest(req({ v: 1, op: 'open', options: { owner: 0 } })), { message: /options\.owner/ })
  t.throws(() => parseRequest(req({ v: 1, op: 'open', options: { exclusive: false } })), { message: /exclusive/ })
  t.throws(() => parseRequest(req({ v: 1, op: 'open', options: [] })), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => parseRequest(req({ v: 1, op: 'open', options: { __proto__: { queues: 9 }, up: 'yes' } })), {
    code: 'ERR_INVALID_ARG_TYPE',
  })
})

test("remote options: openTap's checks, a host MAC that cannot become the bridge's, namespaces by name or path", (t) => {
  t.deepEqual(
    normalizeRemoteOptions({
      name: 'vm%d',
      queues: 4,
      vnetHdr: true,
      vhost: 'auto',
      vnetHdrSize: 12,
      offloads: { csum: true, tso4: true },
      persist: false,
      mtu: 9000,
      mac: 'FE:54:00:12:34:56',
      bridge: 'br0',
      up: true,
      netns: 'blue',
    }),
    {
      name: 'vm%d',
      queues: 4,
      vnetHdr: true,
      vhost: 'auto',
      vnetHdrSize: 12,
      offloads: { csum: true, tso4: true, tso6: false, ecn: false, ufo: false, uso4: false, uso6: false },
      persist: false,
      mtu: 9000,
      mac: 'fe:54:00:12:34:56',
      bridge: 'br0',
      up: true,
      netns: 'blue',
    },
  )
  t.deepEqual(normalizeRemoteOptions({ name: '' }), {}, "'' is the broker's choice")
  t.notThrows(() => normalizeRemoteOptions({ mac: 'fa:00:00:00:00:01' }))
  t.throws(() => normalizeRemoteOptions({ mac: '52:54:00:12:34:56' }), { message: /must start with fe: or fa:/ })
  t.throws(() => normalizeRemoteOptions({ mac: 'ff:54:00:12:34:56' }), { message: /unicast/ })
  t.throws(() => normalizeRemoteOptions({ vnetHdr: false, vnetHdrSize: 12 }), { message: /must not be false/ })
  t.throws(() => normalizeRemoteOptions({ vnetHdr: false, offloads: { csum: true } }), { message: /must not be false/ })
  t.throws(() => normalizeRemoteOptions({ netns: 5 }), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => normalizeRemoteOptions({ netns: 'a/b' }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => normalizeRemoteOptions({ netns: '/run/netns/../../etc' }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.notThrows(() => normalizeRemoteOptions({ netns: '/proc/1/ns/net' }))
  t.throws(() => normalizeRemoteOptions({ bridge: 'br%d' }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => normalizeRemoteOptions({ queues: 257 }), { code: 'ERR_OUT_OF_RANGE' })
})

test('responses: grants and errors are checked before anything is trusted', (t) => {
  const res = (o: unknown) => Buffer.from(JSON.stringify(o))
  const grant = { v: 1, ok: true, ifname: 'tap0', tapFds: 2, vhostFds: 2, rule: 'r' }
  t.deepEqual(parseResponse(res(grant)), grant)
  for (const bad of [
    { ...grant, tapFds: 0 },
    { ...grant, tapFds: 257 },
    { ...grant, vhostFds: 1 },
    { ...grant, ifname: 'a-name-too-long-for-linux' },
    { ...grant, rule: 1 },
    { ...grant, tapFds: 1.5 },
    { v: 1, ok: false, code: 'eacces', message: 'x' },
    { v: 1, ok: false, code: 'EACCES' },
    { v: 1, ok: false, code: 'EACCES', message: 'x', rule: 3 },
    { v: 1, ok: 'yes' },
  ]) {
    t.throws(() => parseResponse(res(bad)), { instanceOf: ProtocolError }, JSON.stringify(bad))
  }
  t.like(parseResponse(res({ v: 1, ok: false, code: 'EACCES', message: 'no', rule: 'r' })), {
    ok: false,
    code: 'EACCES',
  })
})

test('a grant opens a new device: exclusive for an exact name, vmtap-numbered otherwise, owned by the client unless owner is none', (t) => {
  const [client, none] = parsePolicy({
    allow: [
      { uid: 1, bridges: ['br0'], namePrefix: 'vm' },
      { uid: 2, bridges: ['br0'], owner: 'none' },
    ],
  }).rules
  const o = openOptionsFor(client, 1000, { bridge: 'br0', name: 'vm7', queues: 2, persist: true })
  t.like(o, {
    name: 'vm7',
    exclusive: true,
    queues: 2,
    bridge: 'br0',
    persist: true,
    owner: 1000,
    vnetHdr: 'auto',
    vhost: false,
    up: false,
  })
  t.is(o.uniqueName, undefined)
  t.regex(o.mac ?? '', /^fe(:[0-9a-f]{2}){5}$/)
  t.not(openOptionsFor(client, 1000, {}).mac, openOptionsFor(client, 1000, {}).mac, 'a random MAC each time')
  t.like(openOptionsFor(client, 1000, {}), { name: 'vm%d', uniqueName: true })
  t.like(openOptionsFor(client, 1000, { name: 'vmx%d' }), { name: 'vmx%d', uniqueName: true })
  t.like(openOptionsFor(none, 1000, {}), { name: 'tap%d', uniqueName: true })
  t.is(openOptionsFor(client, 1000, { netns: 'blue' }).netns, '/run/netns/blue', 'a namespace name as its path')
  t.is(openOptionsFor(client, 1000, { netns: '/proc/1/ns/net' }).netns, '/proc/1/ns/net')
  t.is(openOptionsFor(client, 1000, {}).netns, undefined, "the broker's own namespace")
  t.is(openOptionsFor(none, 1000, {}).owner, undefined)
  t.is(openOptionsFor(client, 1000, { mac: 'fe:00:00:00:00:01' }).mac, 'fe:00:00:00:00:01')
  t.deepEqual(openOptionsFor(client, 1, { offloads: { csum: true } }).offloads, { csum: true })
  t.is(openOptionsFor(client, 1, { offloads: {} }).offloads, undefined)
})
