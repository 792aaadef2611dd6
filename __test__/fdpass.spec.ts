// sendFds / recvFds (SCM_RIGHTS over Unix stream sockets) and the QMP
// helper against a fake QMP server.
import test from 'ava'
import { createHash } from 'node:crypto'
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { connectQmp, hotplugNic, openTap, QmpError, recvFds, sendFds, TapError, unplugNic } from '../index'
import { native } from '../lib/native'
import { fdFlags, fdIface, O_CLOEXEC, rootTest } from './helpers'

interface Pair {
  client: Socket
  server: Socket
  close(): void
}

/** A connected pair over a Unix socket; the server side is paused (Node does not read it). */
async function socketPair(): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-sock-'))
  const path = join(dir, 's')
  let srv!: Server
  const serverSide = new Promise<Socket>((resolve) => {
    srv = createServer({ pauseOnConnect: true }, resolve)
  })
  await new Promise<void>((r) => srv.listen(path, r))
  // allowHalfOpen: Node must not close the client by itself when the peer goes away (a test sends after that).
  const client = connect({ path, allowHalfOpen: true })
  await new Promise<void>((r) => client.once('connect', () => r()))
  const server = await serverSide
  return {
    client,
    server,
    close() {
      client.destroy()
      server.destroy()
      srv.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

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

test('a full socket is waited for in poll(2), not busy-looped, up to the timeout', async (t) => {
  const p = await socketPair()
  try {
    // 4 MiB is far more than a Unix socket buffers, so the sender must wait.
    const data = Buffer.alloc(4 << 20)
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    const e = (await t.throwsAsync(sendFds(p.client, data, [], { timeoutMs: 400 }), {
      instanceOf: TapError,
    })) as TapError
    const wall = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    t.is(e.code, 'ETIMEDOUT')
    t.true(wall >= 350, `waited ${wall} ms`)
    // A spinning sender would burn ~wall ms of CPU; poll(2) burns almost none.
    const cpuMs = (cpu.user + cpu.system) / 1000
    t.true(cpuMs < wall / 4, `${cpuMs.toFixed(1)} ms CPU over ${wall.toFixed(0)} ms`)
  } finally {
    p.close()
  }
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
  const qmp = await connectQmp(q.path, { timeoutMs: 300 })
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
