// sendFds / recvFds (SCM_RIGHTS over Unix stream sockets) and the QMP
// helper against a fake QMP server.
import test from 'ava'
import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'

import { connectQmp, hotplugNic, openTap, QmpError, recvFds, sendFds, TapError, unplugNic } from '../index'
import { native } from '../lib/native'
import { fdCount, fdFlags, fdIface, O_CLOEXEC, rootTest } from './helpers'
import { runIn, withNetns } from './netns'
import { fill, socketPair } from './socketpair'

const scenario = 'scenarios/fdpass.ts'

rootTest('tap fds sent over a net.Socket arrive as the same devices, close-on-exec', async (t) => {
  const p = await socketPair()
  const tap = openTap({ queues: 3 })
  try {
    const n = await sendFds(p.client, '{"execute":"getfd"}', tap.tapFds)
    t.is(n, 19)
    const got = await recvFds(p.server, { timeoutMs: 5000 })
    t.is(got.data.toString(), '{"execute":"getfd"}')
    t.false(got.truncated)
    t.is(got.fds.length, 3)
    for (const fd of got.fds) {
      t.false(tap.tapFds.includes(fd), 'new fd numbers')
      t.is(fdIface(fd), tap.ifname)
      t.is(fdFlags(fd) & O_CLOEXEC, O_CLOEXEC)
      closeSync(fd)
    }
  } finally {
    tap.close()
    p.close()
  }
})

test('253 fds travel in one message; 254 is refused before any syscall', async (t) => {
  const p = await socketPair()
  const fd = openSync('/dev/null', 'r')
  try {
    await sendFds(p.client, 'x', Array(253).fill(fd))
    const got = await recvFds(p.server, { timeoutMs: 5000 })
    t.is(got.fds.length, 253)
    for (const f of got.fds) closeSync(f)
    const n = native() as unknown as Record<string, unknown>
    const orig = n.sendFds
    let calls = 0
    n.sendFds = () => {
      calls++
      return Promise.resolve(0)
    }
    try {
      await t.throwsAsync(sendFds(p.client, 'x', Array(254).fill(fd)), {
        instanceOf: RangeError,
        code: 'ERR_OUT_OF_RANGE',
      })
      await t.throwsAsync(sendFds(p.client, '', [fd]), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
      await t.throwsAsync(sendFds(p.client, 'x', [-1]), { instanceOf: RangeError, code: 'ERR_OUT_OF_RANGE' })
      await t.throwsAsync(sendFds({} as Socket, 'x', [fd]), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
      await t.throwsAsync(sendFds(p.client, 42 as never, [fd]), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' })
    } finally {
      n.sendFds = orig
    }
    t.is(calls, 0)
  } finally {
    closeSync(fd)
    p.close()
  }
})

test('the socket is duplicated at the call: closing it right after sendFds cannot redirect the message', async (t) => {
  const p = await socketPair()
  const fd = openSync('/dev/null', 'r')
  try {
    const sending = sendFds(p.client, 'still-mine', [fd])
    // Node closes the client's fd at once; the send runs later on the pool.
    p.client.destroy()
    t.is(await sending, 10)
    const got = await recvFds(p.server, { timeoutMs: 5000 })
    t.is(got.data.toString(), 'still-mine')
    t.is(got.fds.length, 1)
    for (const f of got.fds) closeSync(f)
  } finally {
    closeSync(fd)
    p.close()
  }
})

test('extra fds beyond maxFds are closed and reported as truncated', async (t) => {
  const p = await socketPair()
  const fd = openSync('/dev/null', 'r')
  try {
    await sendFds(p.client, 'x', [fd, fd, fd, fd])
    const got = await recvFds(p.server, { maxFds: 1, timeoutMs: 5000 })
    t.true(got.truncated)
    t.is(got.fds.length, 1)
    closeSync(got.fds[0])
  } finally {
    closeSync(fd)
    p.close()
  }
})

test('a large message over a non-blocking socket is sent whole (partial writes), fds once', async (t) => {
  const p = await socketPair()
  const fd = openSync('/dev/null', 'r')
  try {
    const big = Buffer.alloc(8 << 20)
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE(i, i)
    const sending = sendFds(p.client, big, [fd], { timeoutMs: 20000 })
    const first = await recvFds(p.server, { maxBytes: 1 << 16, timeoutMs: 20000 })
    t.is(first.fds.length, 1)
    closeSync(first.fds[0])
    const rest: Buffer[] = [first.data]
    let total = first.data.length
    const done = new Promise<void>((resolve) => {
      p.server.on('data', (c: Buffer) => {
        rest.push(c)
        total += c.length
        if (total >= big.length) resolve()
      })
    })
    p.server.resume()
    t.is(await sending, big.length)
    await done
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
    t.is(sha(Buffer.concat(rest)), sha(big))
  } finally {
    closeSync(fd)
    p.close()
  }
})

/**
 * CPU time of this process's JS (main) thread so far, in ms: the scheduler's
 * own count (schedstat, ns) where the kernel has it, else utime + stime
 * (clock ticks of 10 ms).
 */
function jsThreadCpuMs(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6
  } catch {
    const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(f[11]) + Number(f[12])) * 10
  }
}

// Serial: it measures this thread and this loop, which concurrent tests would use too.
test.serial('a full socket is waited for on the event loop, the JS thread asleep, up to the timeout', async (t) => {
  const p = await socketPair()
  try {
    await fill(p.client, sendFds)
    const timeoutMs = 1000
    const elu0 = performance.eventLoopUtilization()
    const cpu0 = jsThreadCpuMs()
    const t0 = performance.now()
    const e = (await t.throwsAsync(sendFds(p.client, Buffer.alloc(1 << 20), [], { timeoutMs }), {
      instanceOf: TapError,
    })) as TapError
    const wall = performance.now() - t0
    const cpuMs = jsThreadCpuMs() - cpu0
    const elu = performance.eventLoopUtilization(elu0)
    t.is(e.code, 'ETIMEDOUT')
    t.is(e.syscall, 'sendmsg')
    // The timeout counts from the call (libuv's clock is refreshed): never early.
    t.true(wall >= timeoutMs - 2, `settled after ${wall.toFixed(1)} ms`)
    // A waiting loop sits in epoll_wait: idle. One that retries the syscall
    // (in the binding, or through the loop) is busy for the whole wait, however
    // much CPU a loaded machine leaves it.
    t.true(elu.utilization < 0.5, `event loop utilization ${elu.utilization.toFixed(3)}`)
    // And the JS thread itself burns next to nothing: a spinning one gets at
    // least a third of a core even with both cores busy elsewhere.
    t.true(cpuMs < timeoutMs / 10, `JS thread: ${cpuMs.toFixed(1)} ms CPU over ${wall.toFixed(0)} ms`)
  } finally {
    p.close()
  }
})

// Serial (as every test that counts this process's fds): concurrent tests open and close fds.
test.serial(
  'an AbortSignal cancels a waiting recvFds or sendFds: AbortError with the reason, duplicates closed',
  async (t) => {
    const p = await socketPair()
    const f = openSync('/dev/null', 'r')
    try {
      const before = fdCount()
      const ac = new AbortController()
      const receiving = recvFds(p.server, { signal: ac.signal })
      t.true(fdCount() > before, 'the socket duplicate is open while it waits')
      const reason = new Error('enough')
      ac.abort(reason)
      const e = (await t.throwsAsync(receiving, { name: 'AbortError', code: 'ABORT_ERR' })) as Error
      t.is(e.cause, reason)
      t.is(e.message, 'The operation was aborted')
      t.is(fdCount(), before, 'every duplicate is closed once it rejected')

      await fill(p.client, sendFds)
      const before2 = fdCount()
      const ac2 = new AbortController()
      const sending = sendFds(p.client, 'x', [f, f], { signal: ac2.signal })
      t.true(fdCount() >= before2 + 3, 'the socket and both fds to send are duplicated')
      ac2.abort()
      await t.throwsAsync(sending, { name: 'AbortError', code: 'ABORT_ERR' })
      t.is(fdCount(), before2)

      // Aborted before the call: rejects before any syscall; settled calls ignore a later abort.
      const n = native() as unknown as Record<string, unknown>
      const orig = n.recvFds
      let calls = 0
      n.recvFds = () => {
        calls++
        return Promise.resolve({ data: Buffer.alloc(0), fds: [], truncated: false })
      }
      try {
        await t.throwsAsync(recvFds(p.server, { signal: AbortSignal.abort() }), { code: 'ABORT_ERR' })
        await t.throwsAsync(recvFds(p.server, { signal: {} as AbortSignal }), { code: 'ERR_INVALID_ARG_TYPE' })
      } finally {
        n.recvFds = orig
      }
      t.is(calls, 0)
      const ac3 = new AbortController()
      const q = await socketPair()
      try {
        q.client.write('now')
        const got = await recvFds(q.server, { signal: ac3.signal, timeoutMs: 5000 })
        ac3.abort()
        t.is(got.data.toString(), 'now')
      } finally {
        q.close()
      }
    } finally {
      closeSync(f)
      p.close()
    }
  },
)

test.serial('a Worker waiting in recvFds terminates, and the wait leaves no fd behind', async (t) => {
  const p = await socketPair()
  try {
    const sock = (p.server as unknown as { _handle: { fd: number } })._handle.fd
    // The fds of this process that are the socket (the server's own and any
    // duplicate), and the epoll instances (libuv's, and vmtap's watchers').
    const target = readlinkSync(`/proc/self/fd/${sock}`)
    const count = (what: string) =>
      readdirSync('/proc/self/fd').filter((f) => {
        try {
          return readlinkSync(`/proc/self/fd/${f}`) === what
        } catch {
          return false
        }
      }).length
    const before = [count(target), count('anon_inode:[eventpoll]')]
    const tsx = require.resolve('tsx/cjs')
    const file = join(__dirname, 'scenarios', 'fdpass-worker.ts')
    const w = new Worker(`require(${JSON.stringify(tsx)}); require(${JSON.stringify(file)})`, {
      eval: true,
      workerData: { fd: sock },
    })
    const first = await new Promise((resolve, reject) => {
      w.once('message', resolve)
      w.once('error', reject)
    })
    t.is(first, 'waiting')
    t.is(count(target), before[0] + 1, 'the worker waits on its own duplicate of the socket')
    let timer: NodeJS.Timeout | undefined
    const stuck = new Promise<'stuck'>((r) => {
      timer = setTimeout(() => r('stuck'), 15000)
    })
    const outcome = await Promise.race([w.terminate().then(() => 'terminated'), stuck])
    clearTimeout(timer)
    if (outcome === 'stuck') {
      // Let a build whose wait blocks a pool thread finish, so this process can exit.
      p.client.write('x')
      await w.terminate()
    }
    t.is(outcome, 'terminated')
    t.deepEqual([count(target), count('anon_inode:[eventpoll]')], before)
  } finally {
    p.close()
  }
})

test('process.exit() with a recvFds waiting exits at once', async (t) => {
  const child = spawn(process.execPath, ['--import=tsx', join(__dirname, 'scenarios', 'fdpass-exit.ts')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  let timer: NodeJS.Timeout | undefined
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  // Stuck: no exit within 15 s of "exiting" (the clock starts there, not at
  // the spawn: starting node with tsx on a busy machine takes what it takes),
  // or no "exiting" within ava's timeout.
  const stuck = new Promise<'stuck'>((r) => {
    child.stdout.on('data', (d) => {
      out += d
      if (timer === undefined && out.includes('exiting\n')) timer = setTimeout(() => r('stuck'), 15000)
    })
  })
  const outcome = await Promise.race([exited, stuck])
  clearTimeout(timer)
  if (outcome === 'stuck') child.kill('SIGKILL')
  t.is(outcome, 0, out)
  t.regex(out, /^waiting\nexiting\n$/)
})

rootTest(
  'the pool is not used while waiting: eight idle recvFds, then fs, dns and openTapAsync in a namespace',
  async (t) => {
    const r = await withNetns((ns) => runIn<{ done: unknown; got: string[] }>(ns, scenario, 'poolStaysFree'))
    t.deepEqual(r.done, [true, true, 'evpool0'])
    t.deepEqual(
      r.got,
      Array.from({ length: 8 }, (_, i) => `m${i}`),
    )
  },
)

rootTest('sendFds sends the fds it was given even if their numbers are closed and reused while it waits', async (t) => {
  const r = await withNetns((ns) =>
    runIn<{ reused: boolean; attached: string | null; sent: number; failed: string | null }>(
      ns,
      scenario,
      'sendFdsNumberReuse',
    ),
  )
  t.true(r.reused, "the second device got the first one's fd number")
  t.is(r.failed, null)
  t.is(r.attached, 'evreuse0')
  t.is(r.sent, 1)
})

rootTest('hotplugNic sends the device it was given even if it is closed and its numbers reused midway', async (t) => {
  const r = await withNetns((ns) => runIn<Record<string, unknown>>(ns, scenario, 'hotplugNumberReuse'))
  t.true(r.reused, "the second device got the first one's fd numbers")
  t.deepEqual(r.getfd, [['evhot0'], ['evhot0']])
  t.deepEqual(r.commands, ['qmp_capabilities', 'getfd', 'getfd', 'netdev_add', 'device_add'])
  t.true(r.fdsBackToBefore, 'the duplicates are closed when it returns')
})

test('a huge argument is an error, never an abort or a silent undefined', (t) => {
  const n = native() as unknown as Record<string, (...a: unknown[]) => unknown>
  // A 300 MB name whose quoted form (\u{1} per byte) could never be a JS string.
  const huge = '\u0001'.repeat(300e6)
  const e = t.throws(() => n.deleteTap(huge, '/dev/net/tun'), { code: 'ERR_INVALID_ARG_VALUE' })
  t.true(e.message.length < 1000, `${e.message.length} characters`)
  t.true(e.message.includes('\\u{1}\\u{1}'), e.message.slice(0, 100))
  t.true(e.message.includes('300000000 bytes'), e.message.slice(0, 300))
  // closeAll with an array claiming 2**32 - 1 elements: refused at the first one that is no handle.
  const many: unknown[] = []
  many.length = 2 ** 32 - 1
  t.throws(() => n.closeAll(many, 1), { code: 'ERR_INVALID_ARG_TYPE' })
  // sendFds / dupFds: the length is checked before any element is read.
  t.throws(() => n.sendFds(0, Buffer.from('x'), many, null, null), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => n.dupFds(many), { code: 'ERR_OUT_OF_RANGE' })
})

test('recvFds with maxBytes 2**30 allocates what arrives: it works under a memory limit that has no GiB left', async (t) => {
  const child = spawn(process.execPath, ['--import=tsx', join(__dirname, 'scenarios', 'fdpass-memlimit.ts')], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stderr.on('data', (d) => (err += d))
  const vmKiB = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d
      const m = out.match(/^vmsize (\d+)$/m)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', () => reject(new Error(`child exited early: ${out}${err}`)))
  })
  // 256 MiB above what it has mapped now: plenty for the rest, not a GiB.
  execFileSync('prlimit', ['--pid', String(child.pid), `--as=${(vmKiB + 256 * 1024) * 1024}`])
  child.stdin.end('go\n')
  const [code, signal] = await new Promise<[number | null, string | null]>((r) =>
    child.once('exit', (c, s) => r([c, s])),
  )
  t.is(signal, null, `the child died of ${signal}: ${err.slice(-500)}`)
  t.is(code, 0, out + err)
  t.regex(out, /^received hello$/m)
})

test('kernel refusals are TapErrors: not a socket, peer gone, bad fd to send', async (t) => {
  const f = openSync('/dev/null', 'r')
  try {
    const e1 = (await t.throwsAsync(sendFds(f, 'x', []), { instanceOf: TapError })) as TapError
    t.is(e1.code, 'ENOTSOCK')
    const p = await socketPair()
    const e2 = (await t.throwsAsync(sendFds(p.client, 'x', [987654]), { instanceOf: TapError })) as TapError
    t.is(e2.code, 'EBADF')
    p.server.destroy()
    await new Promise<void>((r) => p.client.once('end', () => r()).resume())
    const e3 = (await t.throwsAsync(sendFds(p.client, 'x', []), { instanceOf: TapError })) as TapError
    t.true(['EPIPE', 'ECONNRESET'].includes(e3.code), e3.code)
    t.is(e3.syscall, 'sendmsg')
    p.close()
  } finally {
    closeSync(f)
  }
})

/** A fake QEMU monitor: greeting, capabilities, getfd with fds, netdev/device commands, events. */
async function fakeQemu(t: { log: (...a: unknown[]) => void }, opts: { deferListen?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-qmp-'))
  const path = join(dir, 'qmp.sock')
  const log: { cmd: string; args?: Record<string, unknown>; fds: number[] }[] = []
  const held = new Map<string, number>()
  let stale: string | null = null
  const srv = createServer({ pauseOnConnect: true }, async (s) => {
    s.write('{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}\r\n')
    let buf = ''
    for (;;) {
      const m = await recvFds(s, { timeoutMs: 10000 }).catch(() => null)
      if (!m || m.data.length === 0) break
      buf += m.data.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const req = JSON.parse(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        log.push({ cmd: req.execute, args: req.arguments, fds: m.fds })
        const reply = (o: object) => s.write(`${JSON.stringify({ ...o, id: req.id })}\r\n`)
        // A slow command is answered only when the next one arrives, after the client gave up on it.
        if (stale) {
          s.write(stale)
          stale = null
        }
        if (req.execute === 'slow-command') {
          stale = `${JSON.stringify({ return: { answer: 'slow-command' }, id: req.id })}\r\n`
          continue
        }
        if (req.execute === 'query-name') {
          reply({ return: { answer: 'query-name' } })
          continue
        }
        if (req.execute === 'getfd') {
          held.set(req.arguments.fdname, m.fds[0])
          reply({ return: {} })
        } else if (req.execute === 'netdev_add') {
          const names = String(req.arguments.fds ?? req.arguments.fd).split(':')
          if (names.some((n) => !held.has(n)))
            reply({ error: { class: 'GenericError', desc: 'File descriptor named x not found' } })
          else {
            for (const n of names) held.delete(n)
            reply({ return: {} })
          }
        } else if (req.execute === 'device_add' && req.arguments.driver === 'broken-nic') {
          reply({ error: { class: 'GenericError', desc: "'broken-nic' is not a valid device model name" } })
        } else if (req.execute === 'device_del') {
          reply({ return: {} })
          s.write(
            `${JSON.stringify({ event: 'DEVICE_DELETED', data: { path: '/machine/peripheral/x/virtio-backend' } })}\r\n`,
          )
          s.write(`${JSON.stringify({ event: 'DEVICE_DELETED', data: { device: req.arguments.id, path: '/x' } })}\r\n`)
        } else if (req.execute === 'closefd') {
          if (held.has(req.arguments.fdname)) {
            closeSync(held.get(req.arguments.fdname)!)
            held.delete(req.arguments.fdname)
            reply({ return: {} })
          } else reply({ error: { class: 'GenericError', desc: 'File descriptor named not found' } })
        } else reply({ return: {} })
      }
    }
    s.destroy()
  })
  const listen = () => new Promise<void>((r) => srv.listen(path, r))
  if (!opts.deferListen) await listen()
  return {
    path,
    listen,
    log,
    held,
    close() {
      for (const fd of held.values()) closeSync(fd)
      srv.close()
      rmSync(dir, { recursive: true, force: true })
      t.log(`fake QMP saw: ${log.map((l) => l.cmd).join(', ')}`)
    },
  }
}

rootTest(
  'hotplugNic sends getfd per fd with SCM_RIGHTS, then netdev_add and device_add; unplugNic reverses',
  async (t) => {
    const q = await fakeQemu(t)
    const tap = openTap({ queues: 2 })
    const qmp = await connectQmp(q.path, { timeoutMs: 10000 })
    try {
      const nic = await hotplugNic(qmp, tap, { id: 'net1', mac: '52:54:00:00:00:02' })
      t.deepEqual(nic, { id: 'net1', deviceId: 'net1-dev', fdNames: ['net1-0', 'net1-1'], vhostFdNames: [] })
      const cmds = q.log.map((l) => l.cmd)
      t.deepEqual(cmds, ['qmp_capabilities', 'getfd', 'getfd', 'netdev_add', 'device_add'])
      t.deepEqual(q.log[1].args, { fdname: 'net1-0' })
      t.is(q.log[1].fds.length, 1)
      t.deepEqual(q.log[3].args, { type: 'tap', id: 'net1', fds: 'net1-0:net1-1' })
      t.deepEqual(q.log[4].args, {
        driver: 'virtio-net-pci',
        id: 'net1-dev',
        netdev: 'net1',
        mac: '52:54:00:00:00:02',
        mq: true,
        vectors: 6,
      })
      await unplugNic(qmp, nic)
      t.deepEqual(
        q.log.slice(5).map((l) => l.cmd),
        ['device_del', 'netdev_del', 'closefd', 'closefd'],
      )
    } finally {
      qmp.close()
      tap.close()
      q.close()
    }
  },
)

rootTest('a QMP error is a typed QmpError and hotplugNic undoes what it did', async (t) => {
  const q = await fakeQemu(t)
  const tap = openTap()
  const qmp = await connectQmp(q.path, { timeoutMs: 10000 })
  try {
    const e = (await t.throwsAsync(hotplugNic(qmp, tap, { id: 'net2', driver: 'broken-nic' }), {
      instanceOf: QmpError,
    })) as QmpError
    t.is(e.code, 'ERR_VMTAP_QMP')
    t.is(e.command, 'device_add')
    t.is(e.errorClass, 'GenericError')
    t.regex(e.desc, /not a valid device model/)
    t.deepEqual(
      q.log.map((l) => l.cmd),
      ['qmp_capabilities', 'getfd', 'netdev_add', 'device_add', 'netdev_del', 'closefd'],
    )
    t.is(q.held.size, 0, 'no fd left registered in QEMU')
    await t.throwsAsync(hotplugNic(qmp, tap, { id: '9bad' }), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_VALUE' })
  } finally {
    qmp.close()
    tap.close()
    q.close()
  }
})

test('a reply that comes after its command timed out is never taken for the next command', async (t) => {
  const q = await fakeQemu(t)
  // The timeout also bounds the handshake and query-name's reply: generous,
  // as a busy machine needs; slow-command is never answered in time anyway.
  const qmp = await connectQmp(q.path, { timeoutMs: 3000 })
  try {
    const e = (await t.throwsAsync(qmp.execute('slow-command'))) as NodeJS.ErrnoException
    t.is(e.code, 'ETIMEDOUT')
    t.deepEqual(await qmp.execute('query-name'), { answer: 'query-name' })
  } finally {
    qmp.close()
    q.close()
  }
})

test('connectQmp waits for a socket QEMU has not created yet', async (t) => {
  const q = await fakeQemu(t, { deferListen: true })
  const connecting = connectQmp(q.path, { timeoutMs: 10000 })
  await q.listen()
  const qmp = await connecting
  try {
    t.deepEqual(await qmp.execute('query-name'), { answer: 'query-name' })
  } finally {
    qmp.close()
    q.close()
  }
  await t.throwsAsync(connectQmp('/nonexistent/qmp.sock', { timeoutMs: 200 }), { code: 'ENOENT' })
})
