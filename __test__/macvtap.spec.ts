// macvtap: openMacvtap's argument checks, the guest MAC carried through
// handOff to the formatters and hotplugNic, and (as root, in namespaces the
// tests create) real macvtaps on a veth: what they are, frames through their
// queues, options, refusals, a /dev without device nodes, and the CLI.
import test from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import {
  checkOpenMacvtapOptions,
  cloudHypervisorNet,
  connectQmp,
  handOff,
  hotplugNic,
  openMacvtap,
  openMacvtapAsync,
  qemuArgs,
  qemuDevice,
} from '../index'
import { native } from '../lib/native'
import { ensureDistBuilt, rootTest } from './helpers'
import { runIn, withNetns } from './netns'

const scenario = 'scenarios/macvtap.ts'

/** Count calls into the native addon while `fn` runs. */
async function nativeCalls(fn: () => unknown): Promise<number> {
  const n = native() as unknown as Record<string, unknown>
  let calls = 0
  const saved: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(n)) {
    if (typeof v !== 'function') continue
    saved[k] = v
    n[k] = (...args: unknown[]) => {
      calls++
      return (v as (...a: unknown[]) => unknown)(...args)
    }
  }
  try {
    await fn()
  } finally {
    Object.assign(n, saved)
  }
  return calls
}

const BAD: [unknown, string, RegExp][] = [
  [undefined, 'ERR_INVALID_ARG_TYPE', /options/],
  [{}, 'ERR_INVALID_ARG_TYPE', /options\.link/],
  [{ link: '' }, 'ERR_INVALID_ARG_VALUE', /lower device/],
  [{ link: 'eth%d' }, 'ERR_INVALID_ARG_VALUE', /lower device/],
  [{ link: 'a/b' }, 'ERR_INVALID_ARG_VALUE', /lower device/],
  [{ link: 'eth0', mode: 'source' }, 'ERR_INVALID_ARG_VALUE', /bridge, vepa, private, passthru/],
  [{ link: 'eth0', mode: 4 }, 'ERR_INVALID_ARG_TYPE', /options\.mode/],
  [{ link: 'eth0', name: 'eth0' }, 'ERR_INVALID_ARG_VALUE', /lower link/],
  [{ link: 'eth0', name: 'a b' }, 'ERR_INVALID_ARG_VALUE', /macvtap%d/],
  [{ link: 'eth0', queues: 0 }, 'ERR_OUT_OF_RANGE', /options\.queues/],
  [{ link: 'eth0', queues: 257 }, 'ERR_OUT_OF_RANGE', /options\.queues/],
  [{ link: 'eth0', mac: '01:00:00:00:00:01' }, 'ERR_INVALID_ARG_VALUE', /unicast/],
  [{ link: 'eth0', mtu: 67 }, 'ERR_OUT_OF_RANGE', /options\.mtu/],
  [{ link: 'eth0', tag: 'a b' }, 'ERR_INVALID_ARG_VALUE', /options\.tag/],
  [{ link: 'eth0', owner: 0 }, 'ERR_INVALID_ARG_VALUE', /not a known option/],
  [{ link: 'eth0', bridge: 'br0' }, 'ERR_INVALID_ARG_VALUE', /not a known option/],
  [{ link: 'eth0', netns: '' }, 'ERR_INVALID_ARG_VALUE', /options\.netns/],
  [{ link: 'eth0', vhostPath: 'dev/vhost-net' }, 'ERR_INVALID_ARG_VALUE', /absolute path/],
]

// Serial: the count must not see other tests' calls across the awaits.
test.serial('openMacvtap and openMacvtapAsync refuse bad options before the addon', async (t) => {
  for (const [o, code, message] of BAD) {
    const calls = await nativeCalls(async () => {
      t.throws(() => openMacvtap(o as never), { code, message }, JSON.stringify(o))
      t.throws(() => checkOpenMacvtapOptions(o as never), { code, message })
      await t.throwsAsync(openMacvtapAsync(o as never), { code, message }, JSON.stringify(o))
    })
    t.is(calls, 0, `no native call for ${JSON.stringify(o)}`)
  }
})

test('the core refuses what TypeScript would, on its own', (t) => {
  const n = native()
  const base = ['eth0', 'bridge', '', 1, 'auto', false, null, null] as const
  const call = (i: number, v: unknown) => {
    const args = [...base] as unknown[]
    args[i] = v
    return () => (n.openMacvtap as (...a: unknown[]) => unknown)(...args)
  }
  t.throws(call(0, ''), { code: 'ERR_INVALID_ARG_VALUE', message: /lower interface/ })
  t.throws(call(1, 'source'), { code: 'ERR_INVALID_ARG_VALUE', message: /bridge, vepa, private or passthru/ })
  t.throws(call(2, 'eth0'), { code: 'ERR_INVALID_ARG_VALUE', message: /name of its lower link/ })
  t.throws(call(3, 300), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(call(6, { mtu: 20 }), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(call(6, { tag: 'x y' }), { code: 'ERR_INVALID_ARG_VALUE' })
})

const MAC = '52:54:00:aa:bb:cc'

test("handOff carries a macvtap's MAC; the QEMU and cloud-hypervisor formatters use it unless told otherwise", (t) => {
  const macvtap = { ifname: 'macvtap0', tapFds: [40, 41], vhostFds: [], closed: false, mac: MAC }
  const tap = { ifname: 'tap0', tapFds: [42], vhostFds: [], closed: false, mac: null }
  const h = handOff([macvtap, tap])
  t.deepEqual(h.devices[0], { ifname: 'macvtap0', tapFds: [3, 4], vhostFds: [], mac: MAC })
  t.false('mac' in h.devices[1], 'a TAP device dictates no MAC')
  t.deepEqual(qemuArgs(h.devices[0], { id: 'n0' }), [
    '-netdev',
    'tap,id=n0,fds=3:4',
    '-device',
    `virtio-net-pci,netdev=n0,mac=${MAC},mq=on,vectors=6`,
  ])
  t.is(
    qemuDevice(h.devices[0], { id: 'n0', mac: '52:54:00:00:00:01' }),
    'virtio-net-pci,netdev=n0,mac=52:54:00:00:00:01,mq=on,vectors=6',
  )
  t.is(qemuDevice(h.devices[1], { id: 'n1' }), 'virtio-net-pci,netdev=n1')
  t.is(cloudHypervisorNet(h.devices[0]), `fd=[3,4],num_queues=4,mac=${MAC}`)
  t.is(cloudHypervisorNet(h.devices[0], { mac: '52:54:00:00:00:02' }), 'fd=[3,4],num_queues=4,mac=52:54:00:00:00:02')
  t.is(cloudHypervisorNet(h.devices[1]), 'fd=[5],num_queues=2')
  // A device built by hand may name its MAC too; a bad one is refused.
  t.is(
    qemuDevice({ ifname: 'x', tapFds: [3], vhostFds: [], mac: MAC }, { id: 'n0' }),
    `virtio-net-pci,netdev=n0,mac=${MAC}`,
  )
  t.throws(() => handOff({ ...macvtap, mac: 'nope' }), { code: 'ERR_INVALID_ARG_VALUE', message: /devices\[0\]\.mac/ })
  t.throws(() => qemuArgs({ ifname: 'x', tapFds: [3], vhostFds: [], mac: '01:00:00:00:00:00' }, { id: 'n0' }), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /device\.mac/,
  })
})

test.serial('a polluted Object.prototype.mac puts no MAC on a guest NIC and refuses nothing', (t) => {
  const proto = Object.prototype as Record<string, unknown>
  const plain = { ifname: 'tap0', tapFds: [40], vhostFds: [], closed: false }
  const clean = () => {
    const h = handOff(plain)
    return [h.devices[0], qemuDevice(h.devices[0], { id: 'n0' }), cloudHypervisorNet(h.devices[0])]
  }
  const before = clean()
  for (const poison of ['01:00:00:00:00:00', '52:54:00:00:00:66']) {
    proto.mac = poison
    try {
      t.deepEqual(clean(), before, poison)
    } finally {
      delete proto.mac
    }
  }
  // A class's getter counts (a TapDevice's is one); a hostile Proxy's traps do not break the hand-off.
  class Nic {
    ifname = 'x'
    tapFds = [41]
    vhostFds = []
    closed = false
    get mac() {
      return MAC
    }
  }
  t.is(handOff(new Nic()).devices[0].mac, MAC)
  const hostile = new Proxy(plain, {
    getOwnPropertyDescriptor() {
      throw new Error('no')
    },
  })
  t.deepEqual(handOff(hostile).devices[0], before[0])
})

test("hotplugNic puts a macvtap's MAC on the device unless told otherwise", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-mvt-qmp-'))
  const path = join(dir, 'qmp.sock')
  const added: Record<string, unknown>[] = []
  const srv = createServer((s: Socket) => {
    s.on('error', () => undefined)
    s.write('{"QMP": {"version": {}, "capabilities": []}}\r\n')
    let buf = ''
    s.on('data', (d) => {
      buf += d.toString()
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const req = JSON.parse(buf.slice(0, nl)) as { execute: string; arguments?: Record<string, unknown>; id: number }
        buf = buf.slice(nl + 1)
        if (req.execute === 'device_add') added.push(req.arguments ?? {})
        s.write(`${JSON.stringify({ return: {}, id: req.id })}\r\n`)
      }
    })
  })
  await new Promise<void>((r) => srv.listen(path, r))
  const fds = [openSync('/dev/null', 'r'), openSync('/dev/null', 'r')]
  try {
    const qmp = await connectQmp(path, { timeoutMs: 20_000 })
    const dev = { ifname: 'macvtap0', tapFds: fds, vhostFds: [], closed: false, mac: MAC }
    await hotplugNic(qmp, dev, { id: 'hp0' })
    await hotplugNic(qmp, dev, { id: 'hp1', mac: '52:54:00:00:00:09' })
    await hotplugNic(qmp, { ...dev, mac: null }, { id: 'hp2' })
    qmp.close()
    t.is(added[0].mac, MAC)
    t.is(added[1].mac, '52:54:00:00:00:09')
    t.false('mac' in added[2])
  } finally {
    for (const fd of fds) closeSync(fd)
    srv.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

rootTest(
  'a 2-queue macvtap on a veth: kind, MAC and mode as ip shows them, a frame out of each queue, gone after close',
  async (t) => {
    const r = await withNetns((ns) => runIn<any>(ns, scenario, 'basics'))
    t.regex(r.ifname, /^macvtap\d+$/)
    t.is(r.kind, 'macvtap')
    t.regex(r.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/)
    t.is(r.ipAddress, r.mac, 'TapDevice.mac is the link’s')
    t.is(r.ipKind, 'macvtap')
    t.is(r.ipMode, 'bridge')
    t.is(r.ipLink, 'vb0')
    t.true(r.up)
    t.is(r.queues, 2)
    t.true(r.multiQueue)
    t.false(r.vnetHdr)
    t.is(r.netns, null)
    t.is(r.frames, 2, 'one frame from each queue reached vb1')
    t.like(r.info, { ifname: r.ifname, mac: r.mac, up: true })
    t.is(r.setOwner, 'ERR_INVALID_ARG_VALUE', 'a macvtap has no owner')
    t.true(r.gone, 'close() deleted the link')
    t.is(r.fdsLeft, 0)
  },
)

rootTest(
  'openMacvtapAsync with mode, MAC, MTU, tag and persist; deleteTap removes it; setMac moves TapDevice.mac',
  async (t) => {
    const r = await withNetns((ns) => runIn<any>(ns, scenario, 'options'))
    t.is(r.ifname, 'mvo0')
    t.is(r.mac, '52:54:00:77:00:02')
    t.deepEqual(r.ip, { address: '52:54:00:77:00:02', mtu: 1400, mode: 'vepa', alias: 'vmtap:tag=mvt-spec' })
    t.true(r.vnetHdr, 'vnet_hdr by default')
    t.true(r.keptAfterClose, 'a persistent macvtap outlives close()')
    t.true(r.deleted)
    t.is(r.macAfterSet, '52:54:00:77:00:03')
    t.true(r.notPersistentAnyMore)
  },
)

rootTest('refusals are TapErrors that say what is wrong, and leave nothing', async (t) => {
  const other = `vmtap-mvt-o-${process.pid}`
  execFileSync('ip', ['netns', 'add', other])
  try {
    const r = await withNetns((ns) => runIn<any>(ns, scenario, 'refusals', [other]))
    t.like(r.out['missing link'], { tap: true, code: 'ENODEV', syscall: 'netlink(RTM_GETLINK)', ifname: 'nope0' })
    t.regex(r.out['missing link'].message, /no interface nope0 in this network namespace to put the macvtap on/)
    t.like(r.out['macvtap link'], { tap: true, code: 'EINVAL', ifname: 'mvx' })
    t.regex(r.out['macvtap link'].message, /mvx is itself a macvtap/)
    t.like(r.out['loopback link'], { tap: true, code: 'EINVAL' })
    t.regex(r.out['loopback link'].message, /loopback/)
    t.like(r.out['existing name'], { tap: true, code: 'EEXIST', ifname: 'vb1' })
    t.like(r.out['link elsewhere'], { tap: true, code: 'ENODEV' })
    t.regex(r.out['link elsewhere'].message, /vb0 is in this process's network namespace, not in \/run\/netns\//)
    t.true(r.same, 'no link left')
    t.true(r.otherEmpty)
    t.is(r.fdsLeft, 0)
    t.true(r.homeUnchanged)
  } finally {
    execFileSync('ip', ['netns', 'del', other])
  }
})

// An empty tmpfs over /dev in a mount namespace of the child's own, with the
// few nodes node needs: no /dev/tap<ifindex> will appear there.
const EMPTY_DEV = [
  'unshare',
  '--mount',
  '--propagation',
  'private',
  'sh',
  '-c',
  'mount -t tmpfs -o mode=0755 vmtap-empty-dev /dev && mknod -m 666 /dev/null c 1 3 && ' +
    'mknod -m 666 /dev/urandom c 1 9 && exec "$@"',
  'sh',
]

rootTest(
  'with /dev/tap<N> absent (an empty /dev), openMacvtap makes its own node, removes it, and works',
  async (t) => {
    const r = await withNetns((ns) => runIn<any>(ns, scenario, 'withoutDevNodes', [], { wrap: EMPTY_DEV }))
    t.deepEqual(r.devBefore, ['null', 'urandom'])
    t.deepEqual(r.devAfter, r.devBefore, 'no node or directory left in /dev')
    for (const from of r.openedFrom) t.regex(from, new RegExp(`^/dev/\\.vmtap-[^/]+/tap${r.ifindex} \\(deleted\\)$`))
    t.is(r.frames, 2, 'both queues carry frames out through vb0')
    t.true(r.gone)
  },
)

rootTest('vmtap create --macvtap and vmtap exec --macvtap (kept while COMMAND runs, deleted after)', async (t) => {
  ensureDistBuilt()
  const cli = join(__dirname, '..', 'dist', 'cli.js')
  await withNetns(async (ns) => {
    const ip = (...a: string[]) => execFileSync('ip', ['-n', ns, ...a], { encoding: 'utf8' })
    const run = (...a: string[]) =>
      spawnSync('ip', ['netns', 'exec', ns, process.execPath, cli, ...a], { encoding: 'utf8' })
    ip('link', 'add', 'vb0', 'type', 'veth', 'peer', 'name', 'vb1')
    const created = run('create', '--macvtap', 'vb0', '--name', 'mvc0', '--macvtap-mode', 'private', '--up')
    t.is(created.status, 0, created.stderr)
    t.is(created.stdout, 'mvc0\n')
    const j = JSON.parse(ip('-d', '-j', 'link', 'show', 'dev', 'mvc0'))[0]
    t.is(j.linkinfo.info_data.mode, 'private')
    t.true(j.flags.includes('UP'))
    t.is(run('delete', 'mvc0').status, 0)
    t.false(ip('-j', 'link', 'show').includes('"mvc0"'))

    const ex = run(
      'exec',
      '--macvtap',
      'vb0',
      '--queues',
      '2',
      '--vhost',
      'off',
      '--',
      'sh',
      '-c',
      'ip -d -j link show dev {ifname}; echo "{fds} {device}"',
    )
    t.is(ex.status, 0, ex.stderr)
    const [json, line] = ex.stdout.trim().split('\n')
    const during = JSON.parse(json)[0]
    t.is(during.linkinfo.info_kind, 'macvtap', 'the macvtap exists while COMMAND runs')
    t.is(line, `3:4 virtio-net-pci,netdev=net0,mac=${during.address},mq=on,vectors=6`, "{device} has the macvtap's MAC")
    t.false(ip('-j', 'link', 'show').includes(`"${during.ifname}"`), 'deleted after COMMAND exited')

    const bad = run('create', '--macvtap', 'vb0', '--owner', '0')
    t.is(bad.status, 2)
    t.regex(bad.stderr, /--owner cannot be combined with --macvtap/)
    const bridged = run('exec', '--net', 'macvtap=vb0,bridge=br0', '--', 'true')
    t.is(bridged.status, 2)
    t.regex(bridged.stderr, /--net\[0\] bridge cannot be combined with --net\[0\] macvtap/)
  })
})
