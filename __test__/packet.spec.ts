// Frames from Node: TapDevice.frames(), frameStream() and writeFrame() on
// real devices (TAP and TUN), and TUN mode. Everything that creates a device
// runs in a network namespace the test creates (scenarios/packet.ts).
import test from 'ava'
import { spawnSync } from 'node:child_process'

import { openTap } from '../index'
import { native } from '../lib/native'
import { ensureDistBuilt, rootTest } from './helpers'
import { NO_CONFIG } from './staging'
import { runIn, withNetns } from './netns'

const scenario = 'scenarios/packet.ts'
const run = <T = Record<string, unknown>>(name: string) => withNetns((ns) => runIn<T>(ns, scenario, name))

rootTest(
  'an ARP + ICMP echo responder on frames()/writeFrame() answers the kernel’s ping behind a TAP device',
  async (t) => {
    const r = await run('tapResponder')
    t.is(r.code, 0)
    t.is(r.received, '3')
    t.deepEqual(r.seen, { arp: 1, echo: 3 })
    t.regex(r.neigh as string, /lladdr 02:00:00:00:00:02/)
    t.true(r.vnetHdr, 'the default device has vnet headers: frames() strips them, writeFrame() adds them')
  },
)

rootTest('on a TUN device the responder answers ping to its peer (IP packets, no link layer)', async (t) => {
  const r = await run('tunResponder')
  t.is(r.code, 0)
  t.is(r.received, '3')
  t.deepEqual(r.seen, { echo: 3 })
  t.like(r, { mode: 'tun', vnetHdr: false, type: 'tun', linkType: 'none' })
})

rootTest(
  'back-pressure: a consumer that takes nothing stops the reader; the kernel drops, memory stays flat',
  async (t) => {
    const r = await run<{
      first: boolean
      hwm: number
      buffered: number
      grown: number
      dropped: number
      sent: number
      read: number
      ordered: boolean
    }>('backPressure')
    t.true(r.first)
    // At most one batch (highWaterMark frames) past the high-water mark, however much was sent.
    t.true(r.buffered >= r.hwm && r.buffered < 2 * r.hwm, `${r.buffered} frames buffered`)
    t.true(r.dropped > r.sent / 2, `the kernel dropped ${r.dropped} of ${r.sent}`)
    // 20000 frames of 1442 bytes would be 28 MB.
    t.true(r.grown < 4 << 20, `${r.grown} bytes of buffers grew`)
    t.true(r.read > 100, `the consumer read on: ${r.read}`)
    t.true(r.ordered, 'in order')
  },
)

rootTest('close() during a pending read ends the iterator and the stream; no fd or device is left', async (t) => {
  const r = await run('closeWhileReading')
  t.deepEqual(r.result, { done: true })
  t.is(r.how, 'end')
  t.deepEqual(r.afterNext, { done: true })
  t.is(r.reopen, 'ERR_VMTAP_CLOSED')
  t.true(r.fdsWhileReading)
  t.true(r.fdsBack)
  t.true(r.linksBack)
})

rootTest('reading and writing leave the queue blocking: a child handed it blocks in read(2)', async (t) => {
  const r = await run('flagsStayBlocking')
  t.deepEqual(r.flags, [0, 0], 'no O_NONBLOCK on the device fds while vmtap reads and writes')
  t.false(r.childNonblock)
  t.deepEqual(
    r.blocked,
    { inRead: true, code: null, signal: 'SIGKILL' },
    `asleep in read(2) on the queue (/proc/<pid>/syscall: ${r.syscall}) until killed`,
  )
  t.deepEqual(r.writeErr, { code: 'EIO', tapError: true, syscall: 'write' }, 'a down link refuses writes')
  t.true(r.ended)
})

rootTest('frames are checked before the syscall; headers, queues, the MTU and kernel refusals', async (t) => {
  const r = await run('frameChecks')
  t.like(r, {
    short: 'RangeError ERR_OUT_OF_RANGE',
    huge: 'RangeError ERR_OUT_OF_RANGE',
    overMtu: 'RangeError ERR_OUT_OF_RANGE',
    atMtu: 'ok',
    jumbo: 'ok',
    badQueue: 'RangeError ERR_OUT_OF_RANGE',
    notFrame: 'TypeError ERR_INVALID_ARG_TYPE',
    gso: 'ok',
    badHeader: 'RangeError ERR_OUT_OF_RANGE',
    hdrSize: 10,
    udpPayload: 'hello',
    secondReader: 'ERR_INVALID_ARG_VALUE',
  })
  t.deepEqual(r.header, { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 })
  t.deepEqual(r.down, { code: 'EIO', tapError: true, hint: true })
})

rootTest('TUN mode: IFF_TUN, multi-queue, no packet info; the kernel refuses a non-IP packet', async (t) => {
  const r = await run('tunOptions')
  t.regex(r.ifname as string, /^evtn\d+$/)
  t.is(r.mode, 'tun')
  t.is((r.tunFlags as number) & 0x000f, 0x0001)
  t.like(r, { type: 'tun', multiQueue: true, pi: false })
  t.deepEqual(r.badVersion, { code: 'EINVAL', hint: true })
  t.regex(r.tapOnTun as string, /is a TUN device, not TAP/)
})

test('TUN mode refuses what does not apply, in TypeScript and in the core, before any syscall', (t) => {
  const n = native() as unknown as Record<string, (...a: unknown[]) => unknown>
  const orig = n.open
  let calls = 0
  n.open = () => {
    calls++
    throw new Error('reached the addon')
  }
  try {
    for (const o of [
      { vnetHdr: true },
      { vnetHdrSize: 12 },
      { offloads: { csum: true } },
      { vhost: true },
      { vhost: 'auto' },
      { mac: '02:00:00:00:00:01' },
      { bridge: 'br0' },
    ]) {
      t.throws(() => openTap({ mode: 'tun', ...o } as never), { code: 'ERR_INVALID_ARG_VALUE' }, JSON.stringify(o))
    }
    t.throws(() => openTap({ mode: 'tan' } as never), { code: 'ERR_INVALID_ARG_VALUE' })
  } finally {
    n.open = orig
  }
  t.is(calls, 0)
  const config = NO_CONFIG
  // Straight to the addon: the core refuses too (nothing is opened: these fail before any syscall).
  const open = (vnetHdr: unknown, vhost: unknown, c: object | null) =>
    n.open('', 1, vnetHdr, vhost, '/nonexistent/tun', null, c, null, 'tun')
  t.throws(() => open(true, false, null), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => open('auto', 'auto', null), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => open('auto', false, { ...config, mac: '02:00:00:00:00:01' }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => open('auto', false, { ...config, bridge: 'br0' }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => open('auto', false, { ...config, vnetHdrSize: 12 }), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => n.open('', 1, 'auto', false, null, null, null, null, 'tan'), { code: 'ERR_INVALID_ARG_VALUE' })
  // vnetHdr 'auto' is fine for TUN (it means none): the open gets as far as the missing clone device.
  t.throws(() => open('auto', false, null), { code: 'ENOENT' })
})

test('the CLI takes --mode tap|tun; {netdev} and {device} refuse a TUN NIC before any device exists', (t) => {
  const cli = ensureDistBuilt()
  const r = spawnSync(process.execPath, [cli, 'exec', '--mode', 'tun', '--', 'true', '-netdev', '{netdev}'], {
    encoding: 'utf8',
  })
  t.is(r.status, 2)
  t.regex(r.stderr, /\{netdev\} needs a TAP device/)
  const bad = spawnSync(process.execPath, [cli, 'create', '--persist', '--name', 'x0', '--mode', 'tan'], {
    encoding: 'utf8',
  })
  t.is(bad.status, 2)
  t.regex(bad.stderr, /tap, tun/)
  const net = spawnSync(process.execPath, [cli, 'exec', '--net', 'mode=tin', '--', 'true'], { encoding: 'utf8' })
  t.is(net.status, 2)
  t.regex(net.stderr, /mode must be tap or tun/)
})

rootTest('vmtap create --mode tun makes a persistent TUN device; exec --mode tun hands one over', async (t) => {
  const cli = ensureDistBuilt()
  await withNetns(async (ns) => {
    const inNs = (...args: string[]) =>
      spawnSync('ip', ['netns', 'exec', ns, process.execPath, cli, ...args], { encoding: 'utf8' })
    const c = inNs('create', '--persist', '--mode', 'tun', '--name', 'evcli%d', '--up')
    t.is(c.status, 0, c.stderr)
    const name = c.stdout.trim()
    const link = JSON.parse(
      spawnSync('ip', ['-n', ns, '-d', '-j', 'link', 'show', 'dev', name], { encoding: 'utf8' }).stdout,
    )[0]
    t.is(link.linkinfo.info_data.type, 'tun')
    t.true(link.linkinfo.info_data.persist)
    t.is(inNs('delete', name).status, 0)
    const e = inNs(
      'exec',
      '--mode',
      'tun',
      '--name',
      'evcx0',
      '--',
      'sh',
      '-c',
      'echo {ifname} {fds}; cat /sys/class/net/{ifname}/tun_flags',
    )
    t.is(e.status, 0, e.stderr)
    const [line, flags] = e.stdout.trim().split('\n')
    t.is(line, 'evcx0 3')
    t.is(parseInt(flags, 16) & 0x000f, 0x0001)
  })
})
