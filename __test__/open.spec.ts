// openTap: what the kernel sees, the errors users get, and that nothing leaks.
import test from 'ava'
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'

import { constants, getTunFeatures, openTap, probeFeatures, TapDevice, TapError, type OpenTapOptions } from '../index'
import { native } from '../lib/native'
import {
  fdCount,
  fdFlags,
  fdIface,
  ipLink,
  linkExists,
  links,
  O_CLOEXEC,
  rootTest,
  tunFlags,
  uniqueName,
} from './helpers'

const { IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE } = constants

/** Count calls into the native addon while `fn` runs. */
function nativeCalls(fn: () => void): number {
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
    fn()
  } finally {
    Object.assign(n, saved)
  }
  return calls
}

rootTest('default open: a kernel-named tap with one fd and vnet_hdr, gone after close', (t) => {
  const tap = openTap()
  try {
    t.true(tap instanceof TapDevice)
    t.regex(tap.ifname, /^tap\d+$/)
    t.is(tap.tapFds.length, 1)
    t.deepEqual(tap.vhostFds, [])
    t.true(tap.vnetHdr)
    t.false(tap.multiQueue)
    t.false(tap.closed)
    t.is(tunFlags(tap.ifname), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
    t.is(fdIface(tap.tapFds[0]), tap.ifname)
  } finally {
    tap.close()
  }
  t.true(tap.closed)
  t.false(linkExists(tap.ifname))
  t.notThrows(() => tap.close(), 'close is idempotent')
})

rootTest('an exact name and a %d template', (t) => {
  const name = uniqueName('vmtn')
  const exact = openTap({ name })
  const tmpl = openTap({ name: 'vmtpl%d' })
  try {
    t.is(exact.ifname, name)
    t.true(linkExists(name))
    t.regex(tmpl.ifname, /^vmtpl\d+$/)
    t.true(linkExists(tmpl.ifname))
  } finally {
    exact.close()
    tmpl.close()
  }
  t.false(linkExists(name))
})

rootTest('4 queues: 4 distinct fds on one multi-queue device', (t) => {
  const tap = openTap({ queues: 4, name: uniqueName('vmtmq') })
  try {
    t.is(tap.tapFds.length, 4)
    t.is(new Set(tap.tapFds).size, 4)
    t.true(tap.multiQueue)
    for (const fd of tap.tapFds) t.is(fdIface(fd), tap.ifname)
    t.is(tunFlags(tap.ifname), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE)
    const info = ipLink(tap.ifname)?.linkinfo?.info_data
    t.is(info?.multi_queue, true)
    t.is(info?.numqueues, 4)
    t.is(info?.numdisabled, 0)
  } finally {
    tap.close()
  }
})

rootTest('256 queues open; 257 is a RangeError before any syscall', (t) => {
  const tap = openTap({ queues: 256 })
  try {
    t.is(tap.tapFds.length, 256)
    t.is(ipLink(tap.ifname)?.linkinfo?.info_data?.numqueues, 256)
  } finally {
    tap.close()
  }
  const calls = nativeCalls(() => {
    const e = t.throws(() => openTap({ queues: 257 }), { instanceOf: RangeError })
    t.is((e as NodeJS.ErrnoException).code, 'ERR_OUT_OF_RANGE')
  })
  t.is(calls, 0)
})

rootTest('vnetHdr: false leaves IFF_VNET_HDR off; vnetHdr: true sets it', (t) => {
  const off = openTap({ vnetHdr: false })
  const on = openTap({ vnetHdr: true })
  try {
    t.false(off.vnetHdr)
    t.is(tunFlags(off.ifname) & IFF_VNET_HDR, 0)
    t.true(on.vnetHdr)
    t.is(tunFlags(on.ifname) & IFF_VNET_HDR, IFF_VNET_HDR)
  } finally {
    off.close()
    on.close()
  }
})

rootTest('every fd is close-on-exec', (t) => {
  const tap = openTap({ queues: 3, vhost: 'auto' })
  try {
    for (const fd of [...tap.tapFds, ...tap.vhostFds]) t.is(fdFlags(fd) & O_CLOEXEC, O_CLOEXEC, `fd ${fd}`)
  } finally {
    tap.close()
  }
})

const hasVhost = probeFeaturesSafe().vhostNet
function probeFeaturesSafe() {
  try {
    return probeFeatures()
  } catch {
    return { vhostNet: false }
  }
}

rootTest('vhost: true without /dev/vhost-net is ENOENT and leaves nothing', (t) => {
  if (hasVhost) return t.pass('this host has vhost-net; the missing-device case is covered with vhostPath below')
  const fds = fdCount()
  const before = links()
  const e = t.throws(() => openTap({ vhost: true, queues: 2 }), { instanceOf: TapError }) as TapError
  t.is(e.code, 'ENOENT')
  t.is(e.errno, -2)
  t.is(e.syscall, 'open')
  t.is(e.path, '/dev/vhost-net')
  t.regex(e.message, /vhost_net/)
  t.is(fdCount(), fds)
  t.deepEqual(links(), before)
})

rootTest('vhost: true with a missing vhostPath fails cleanly, even after the tap fds would open', (t) => {
  const fds = fdCount()
  const before = links()
  const e = t.throws(() => openTap({ vhost: true, queues: 4, vhostPath: '/nonexistent/vhost-net' }), {
    instanceOf: TapError,
  }) as TapError
  t.is(e.code, 'ENOENT')
  t.is(e.path, '/nonexistent/vhost-net')
  t.is(fdCount(), fds)
  t.deepEqual(links(), before)
})

rootTest("vhost: 'auto' without vhost-net opens the tap with no vhost fds", (t) => {
  const tap = openTap({ vhost: 'auto', queues: 2, vhostPath: '/nonexistent/vhost-net' })
  try {
    t.deepEqual(tap.vhostFds, [])
    t.is(tap.tapFds.length, 2)
  } finally {
    tap.close()
  }
  if (!hasVhost) {
    const tap2 = openTap({ vhost: 'auto' })
    t.deepEqual(tap2.vhostFds, [])
    tap2.close()
  }
})

rootTest('a persistent single-queue tap opened with queues: 2 is EINVAL with the hint, nothing leaks', (t) => {
  const name = uniqueName('vmtsq')
  execFileSync('ip', ['tuntap', 'add', 'dev', name, 'mode', 'tap'])
  try {
    const fds = fdCount()
    const e = t.throws(() => openTap({ name, queues: 2 }), { instanceOf: TapError }) as TapError
    t.is(e.code, 'EINVAL')
    t.is(e.errno, -22)
    t.is(e.syscall, 'ioctl(TUNSETIFF)')
    t.is(e.ifname, name)
    t.true(
      e.message.includes(`${name} already exists without multi_queue; delete it or open it with queues: 1`),
      e.message,
    )
    t.is(fdCount(), fds)
    t.true(linkExists(name), 'the existing device is not touched')
  } finally {
    execFileSync('ip', ['tuntap', 'del', 'dev', name, 'mode', 'tap'])
  }
})

rootTest('opening the name of a single-queue tap we hold is EBUSY', (t) => {
  const name = uniqueName('vmtbz')
  const held = openTap({ name })
  try {
    const fds = fdCount()
    const e = t.throws(() => openTap({ name }), { instanceOf: TapError }) as TapError
    t.is(e.code, 'EBUSY')
    t.is(e.syscall, 'ioctl(TUNSETIFF)')
    t.regex(e.message, /already attached/)
    t.is(fdCount(), fds)
    t.true(linkExists(name))
  } finally {
    held.close()
  }
})

rootTest('a name taken by a non-TAP device (a bridge) is EINVAL saying so', (t) => {
  const name = uniqueName('vmtbr')
  execFileSync('ip', ['link', 'add', name, 'type', 'bridge'])
  try {
    const e = t.throws(() => openTap({ name }), { instanceOf: TapError }) as TapError
    t.is(e.code, 'EINVAL')
    t.regex(e.message, /not a TUN\/TAP device \(it is a bridge\)/)
  } finally {
    execFileSync('ip', ['link', 'del', name])
  }
})

rootTest('200 open/close cycles leave the fd count and the link count unchanged', (t) => {
  const fds = fdCount()
  const before = links()
  for (let i = 0; i < 200; i++) {
    const tap = openTap({ queues: 2 })
    tap.close()
  }
  t.is(fdCount(), fds)
  t.deepEqual(links(), before)
})

rootTest('loads and opens a tap inside a worker thread', async (t) => {
  const dist = join(__dirname, '..', 'dist', 'index.js')
  const code = `
    const { parentPort } = require('node:worker_threads')
    const { openTap } = require(${JSON.stringify(dist)})
    const tap = openTap({ queues: 2 })
    const r = { ifname: tap.ifname, fds: tap.tapFds.length, flags: require('node:fs').readFileSync('/sys/class/net/' + tap.ifname + '/tun_flags', 'utf8').trim() }
    tap.close()
    r.gone = !require('node:fs').existsSync('/sys/class/net/' + tap.ifname)
    parentPort.postMessage(r)`
  const w = new Worker(code, { eval: true, execArgv: [] })
  const msg = await new Promise<{ ifname: string; fds: number; flags: string; gone: boolean }>((resolve, reject) => {
    w.once('message', resolve)
    w.once('error', reject)
  })
  await w.terminate()
  t.regex(msg.ifname, /^tap\d+$/)
  t.is(msg.fds, 2)
  t.is(parseInt(msg.flags, 16) & IFF_MULTI_QUEUE, IFF_MULTI_QUEUE)
  t.true(msg.gone)
})

rootTest('probeFeatures and getTunFeatures agree with the kernel', (t) => {
  const f = probeFeatures()
  t.is(typeof f.raw, 'number')
  t.true(f.tap && f.noPi && f.vnetHdr && f.multiQueue)
  t.is(f.vhostNet, hasVhost)
  const tap = openTap()
  try {
    t.is(getTunFeatures(tap.tapFds[0]), f.raw)
  } finally {
    tap.close()
  }
})

test('getTunFeatures of a regular file is null', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-'))
  const file = join(dir, 'f')
  writeFileSync(file, 'x')
  const fd = openSync(file, 'r')
  try {
    t.is(getTunFeatures(fd), null)
  } finally {
    closeSync(fd)
    rmSync(dir, { recursive: true })
  }
})

test('constants are the values of <linux/if_tun.h>, identical to the native ones', (t) => {
  t.like(constants, {
    TUNSETIFF: 0x400454ca,
    TUNGETIFF: 0x800454d2,
    TUNGETFEATURES: 0x800454cf,
    IFF_TAP: 0x0002,
    IFF_NO_PI: 0x1000,
    IFF_ONE_QUEUE: 0x2000,
    IFF_VNET_HDR: 0x4000,
    IFF_MULTI_QUEUE: 0x0100,
  })
  t.deepEqual({ ...native().constants }, { ...constants })
  t.true(Object.isFrozen(constants))
})

type Bad = [string, unknown, new (...a: never[]) => Error, string]
const badOpen: Bad[] = [
  ['null options', null, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ['a number', 5, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ['a string', 'vm0', TypeError, 'ERR_INVALID_ARG_TYPE'],
  ['an array', [], TypeError, 'ERR_INVALID_ARG_TYPE'],
  ['unknown key queue', { queue: 4 }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['queues as a string', { queues: '4' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ['queues 0', { queues: 0 }, RangeError, 'ERR_OUT_OF_RANGE'],
  ['queues 257', { queues: 257 }, RangeError, 'ERR_OUT_OF_RANGE'],
  ['queues -1', { queues: -1 }, RangeError, 'ERR_OUT_OF_RANGE'],
  ['queues 1.5', { queues: 1.5 }, RangeError, 'ERR_OUT_OF_RANGE'],
  ['queues NaN', { queues: NaN }, RangeError, 'ERR_OUT_OF_RANGE'],
  ['queues Infinity', { queues: Infinity }, RangeError, 'ERR_OUT_OF_RANGE'],
  ['queues -0', { queues: -0 }, RangeError, 'ERR_OUT_OF_RANGE'],
  ['queues 2**53', { queues: 2 ** 53 }, RangeError, 'ERR_OUT_OF_RANGE'],
  ['name as a number', { name: 5 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ['a 16-byte name', { name: 'abcdefghijklmnop' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['a name of 8 two-byte chars', { name: 'éééééééé' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['a name with /', { name: 'a/b' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['a name with :', { name: 'a:b' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['a name with a space', { name: 'a b' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['a name with a NUL', { name: 'a\0b' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['a name with %s', { name: 'vm%s' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['a name with two %d', { name: 'v%d%d' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['the name .', { name: '.' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ["vnetHdr 'yes'", { vnetHdr: 'yes' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['vnetHdr 1', { vnetHdr: 1 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ["vhost 'on'", { vhost: 'on' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  ['vhost null', { vhost: null }, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ['a relative tunPath', { tunPath: 'dev/net/tun' }, TypeError, 'ERR_INVALID_ARG_VALUE'],
  [
    'a getter that throws',
    {
      get queues(): number {
        throw new Error('boom')
      },
    },
    TypeError,
    'ERR_INVALID_ARG_VALUE',
  ],
]

for (const [what, options, Ctor, code] of badOpen) {
  test(`openTap refuses ${what} with ${Ctor.name} ${code} before any syscall`, (t) => {
    const calls = nativeCalls(() => {
      const e = t.throws(() => openTap(options as OpenTapOptions), { instanceOf: Ctor }) as NodeJS.ErrnoException
      t.is(e.code, code)
      t.true(e.message.length > 20)
    })
    t.is(calls, 0)
  })
}

test('prototype pollution does not become an option', (t) => {
  const proto = Object.prototype as Record<string, unknown>
  proto.queues = 'polluted'
  try {
    const calls = nativeCalls(() => {
      // With the polluted value read, this would be a TypeError; it must be ignored.
      t.throws(() => openTap({ vnetHdr: 'x' as never }), { code: 'ERR_INVALID_ARG_VALUE', message: /vnetHdr/ })
    })
    t.is(calls, 0)
  } finally {
    delete proto.queues
  }
})

test('getTunFeatures refuses a bad fd before any syscall', (t) => {
  const calls = nativeCalls(() => {
    t.throws(() => getTunFeatures(-1), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
    t.throws(() => getTunFeatures('3' as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.throws(() => getTunFeatures(1.5), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  })
  t.is(calls, 0)
})

test('TapDevice cannot be constructed directly', (t) => {
  t.throws(() => new (TapDevice as unknown as new (...a: unknown[]) => unknown)(Symbol('x'), {}), {
    instanceOf: TypeError,
  })
})
