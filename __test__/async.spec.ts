// The asynchronous API: same devices and errors as the sync one,
// parallel teardown, no leaks.
import { closeSync } from 'node:fs'

import { closeAll, openTap, openTapAsync, TapDevice, TapError } from '../index'
import { fdCount, fdIface, linkExists, links, rootTest, tunFlags, uniqueName } from './helpers'
import { runIn, withNetns } from './netns'

rootTest('openTapAsync makes the same device as openTap; closeAsync removes it', async (t) => {
  const name = uniqueName('vmtas')
  const a = await openTapAsync({ name, queues: 4, vnetHdr: true })
  let syncFlags: number
  try {
    t.true(a instanceof TapDevice)
    t.is(a.ifname, name)
    t.is(a.tapFds.length, 4)
    for (const fd of a.tapFds) t.is(fdIface(fd), name)
    t.true(a.vnetHdr && a.multiQueue)
    syncFlags = tunFlags(name)
  } finally {
    await a.closeAsync()
  }
  t.true(a.closed)
  t.false(linkExists(name))
  const s = openTap({ name, queues: 4, vnetHdr: true })
  try {
    t.is(tunFlags(name), syncFlags)
    t.deepEqual(
      { v: s.vnetHdr, m: s.multiQueue, n: s.tapFds.length },
      { v: a.vnetHdr, m: a.multiQueue, n: a.tapFds.length },
    )
  } finally {
    s.close()
  }
})

rootTest('a rejected openTapAsync carries the same TapError fields as openTap throws', async (t) => {
  const name = uniqueName('vmtab')
  const held = openTap({ name })
  try {
    const fds = fdCount()
    let syncErr: TapError | undefined
    try {
      openTap({ name })
    } catch (e) {
      syncErr = e as TapError
    }
    const asyncErr = (await t.throwsAsync(openTapAsync({ name }), { instanceOf: TapError })) as TapError
    t.truthy(syncErr)
    for (const k of ['code', 'errno', 'syscall', 'path', 'ifname', 'message'] as const)
      t.is(asyncErr[k], syncErr![k], k)
    t.is(asyncErr.code, 'EBUSY')
    t.is(fdCount(), fds)
  } finally {
    held.close()
  }
  const vhost = (await t.throwsAsync(openTapAsync({ vhost: true, vhostPath: '/nonexistent/vhost-net' }), {
    instanceOf: TapError,
  })) as TapError
  t.like(vhost, { code: 'ENOENT', syscall: 'open', path: '/nonexistent/vhost-net', errno: -2 })
})

rootTest('openTapAsync rejects bad options with the sync errors, before any syscall', async (t) => {
  await t.throwsAsync(openTapAsync({ queues: 257 }), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
  await t.throwsAsync(openTapAsync({ queue: 4 } as never), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
})

rootTest('closeAll tears 64 devices down and leaves the links and fds as before', async (t) => {
  const fds = fdCount()
  const before = links()
  const devices = await Promise.all(Array.from({ length: 64 }, () => openTapAsync({ queues: 2 })))
  t.is(links().length, before.length + 64)
  const closing = closeAll(devices)
  t.true(
    devices.every((d) => d.closed),
    'marked closed at once',
  )
  await closing
  t.is(fdCount(), fds)
  t.deepEqual(links(), before)
  await t.notThrowsAsync(closeAll(devices), 'closing closed devices again is a no-op')
})

rootTest('closeAll with one failing device still closes the rest and reports which failed', async (t) => {
  const fds = fdCount()
  const devices = [openTap(), openTap({ queues: 3 }), openTap()]
  // Break the middle one: close one of its fds behind its back.
  closeSync(devices[1].tapFds[1])
  const err = (await t.throwsAsync(closeAll(devices), { instanceOf: AggregateError })) as AggregateError
  t.is(err.errors.length, 1)
  const e = err.errors[0] as TapError
  t.true(e instanceof TapError)
  t.is(e.code, 'EBADF')
  t.is(e.syscall, 'close')
  t.is(e.ifname, devices[1].ifname)
  t.regex(err.message, new RegExp(devices[1].ifname))
  for (const d of devices) t.false(linkExists(d.ifname), `${d.ifname} is gone`)
  t.is(fdCount(), fds)
})

rootTest('closeAll refuses a non-device before closing anything', async (t) => {
  const d = openTap()
  try {
    await t.throwsAsync(closeAll([d, {} as TapDevice]), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    t.false(d.closed)
    await t.throwsAsync(closeAll(null as never), { code: 'ERR_INVALID_ARG_TYPE' })
    await t.throwsAsync(closeAll([d], { maxThreads: 0 }), { code: 'ERR_OUT_OF_RANGE' })
    t.false(d.closed)
  } finally {
    d.close()
  }
})

rootTest('500 async open/close cycles leave no fd and no link behind', async (t) => {
  const fds = fdCount()
  const before = links()
  for (let i = 0; i < 500; i++) {
    const d = await openTapAsync({ queues: 2 })
    await d.closeAsync()
  }
  t.is(fdCount(), fds)
  t.deepEqual(links(), before)
})

rootTest('await using closes asynchronously; using closes synchronously', async (t) => {
  let name1 = ''
  let name2 = ''
  {
    await using d = await openTapAsync()
    name1 = d.ifname
    t.true(linkExists(name1))
  }
  t.false(linkExists(name1))
  {
    using d = openTap()
    name2 = d.ifname
  }
  t.false(linkExists(name2))
})

rootTest(
  'openTapAsync: calls made together reach the addon in batches of 16, one batch in flight; a refused open rejects alone',
  async (t) => {
    const r = await withNetns((ns) => runIn<Record<string, unknown>>(ns, 'scenarios/async.ts', 'batched'))
    t.deepEqual(r.sizes, [16, 16, 8], '40 calls: three round trips to the pool')
    t.is(r.maxInFlight, 1, 'one pool thread at a time: the rest of the pool stays free')
    t.deepEqual(r.refused, [{ i: 21, code: 'EBUSY', name: 'TapError' }], 'the held name alone is refused')
    t.is(r.openedCount, 39)
    t.true(r.right, 'every device has the fd it says')
    t.deepEqual(r.order, r.expectedOrder, 'each promise gets its own device')
    t.deepEqual(r.mixedOut, ['ERR_OUT_OF_RANGE', 'abok', 'ERR_INVALID_ARG_VALUE'])
    t.deepEqual(r.mixedSizes, [1], 'bad options never reach the addon')
    t.true(r.linksBack, 'nothing left')
  },
)
