// The QMP client's robustness: no rejection escapes the caller's promise, a
// peer cannot make it buffer or rescan without bound, and a failed connect
// leaves no socket open.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { connectQmp, QmpError } from '../index'
import { LineReader } from '../lib/qmp'

test('a command whose write never completes, or whose monitor goes away, rejects to its caller; the process survives', (t) => {
  const r = spawnSync(process.execPath, ['--import=tsx', join(__dirname, 'fixtures', 'qmp', 'unhandled.ts')], {
    encoding: 'utf8',
    timeout: 60_000,
  })
  t.is(r.status, 0, `exit ${r.status} ${r.signal ?? ''}\n${r.stderr}`)
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, string>
  t.is(out.stuck, 'ETIMEDOUT')
  t.true(['ERR_VMTAP_QMP_CLOSED', 'EPIPE', 'ECONNRESET'].includes(out.gone), out.gone)
})

test('LineReader examines each byte once however the line is split, and refuses a line over the limit', (t) => {
  const r = new LineReader(16 << 20)
  const chunk = Buffer.alloc(4096, 0x61)
  let pushed = 0
  for (let i = 0; i < 2560; i++) {
    t.deepEqual(r.push(chunk), [])
    pushed += chunk.length
  }
  t.is(r.scanned, pushed, 'a 10 MiB line in 4 KiB chunks is scanned once')
  const lines = r.push(Buffer.from('b\r\n{"x":1}\nrest'))
  t.is(lines.length, 2)
  t.is(lines[0].length, pushed + 1)
  t.is(lines[1], '{"x":1}')
  t.deepEqual(r.push(Buffer.from('!\n')), ['rest!'])
  const small = new LineReader(1024)
  small.push(Buffer.alloc(1000, 0x61))
  t.throws(() => small.push(Buffer.alloc(100, 0x61)), { code: 'ERR_VMTAP_QMP_PROTOCOL', message: /longer than 1024/ })
})

/** A monitor on a fresh socket path: greeting, then `onLine` for every line it reads. */
async function monitor(onLine: (s: Socket, req: { execute: string; id: number }) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-qmp-'))
  const path = join(dir, 'qmp.sock')
  let conn: Socket | undefined
  let closed: Promise<void> = new Promise(() => {})
  const srv: Server = createServer((s) => {
    conn = s
    closed = new Promise((r) => s.once('close', () => r()))
    s.on('error', () => undefined)
    s.write('{"QMP": {"version": {}, "capabilities": []}}\r\n')
    let buf = ''
    s.on('data', (d) => {
      buf += d.toString()
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        onLine(s, JSON.parse(buf.slice(0, nl)))
        buf = buf.slice(nl + 1)
      }
    })
  })
  await new Promise<void>((r) => srv.listen(path, r))
  return {
    path,
    /** Resolves when the client's connection is closed on the monitor's side. */
    clientClosed: () => closed,
    conn: () => conn,
    close() {
      srv.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** `p` settles within `ms`, or the test fails (instead of hanging until ava's timeout). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`${what} within ${ms} ms`)), ms))])
}

test('a peer streaming an endless line gets ERR_VMTAP_QMP_PROTOCOL and the connection is closed', async (t) => {
  const m = await monitor((s, req) => {
    if (req.execute === 'qmp_capabilities') s.write(`${JSON.stringify({ return: {}, id: req.id })}\r\n`)
    else {
      // One line that never ends: 2 MiB in 16 KiB pieces, over a 1 MiB limit.
      const piece = Buffer.alloc(16 << 10, 0x61)
      for (let i = 0; i < 128; i++) s.write(piece)
    }
  })
  try {
    const qmp = await connectQmp(m.path, { timeoutMs: 20_000, maxLineBytes: 1 << 20 })
    const closed = new Promise<void>((r) => qmp.once('close', () => r()))
    await t.throwsAsync(qmp.execute('query-status'), { code: 'ERR_VMTAP_QMP_PROTOCOL', message: /maxLineBytes/ })
    await closed
    await within(m.clientClosed(), 10_000, 'the monitor saw the connection close')
  } finally {
    m.close()
  }
})

test('connectQmp closes its socket when qmp_capabilities fails', async (t) => {
  const m = await monitor((s, req) =>
    s.write(`${JSON.stringify({ error: { class: 'CommandNotFound', desc: 'no' }, id: req.id })}\r\n`),
  )
  try {
    await t.throwsAsync(connectQmp(m.path, { timeoutMs: 10_000 }), { instanceOf: QmpError })
    await within(m.clientClosed(), 10_000, 'the monitor saw the connection close')
    t.pass()
  } finally {
    m.close()
  }
})

test('connectQmp closes its socket when qmp_capabilities gets no reply', async (t) => {
  const m = await monitor(() => undefined)
  try {
    await t.throwsAsync(connectQmp(m.path, { timeoutMs: 300 }), { code: 'ETIMEDOUT' })
    await within(m.clientClosed(), 10_000, 'the monitor saw the connection close')
    t.pass()
  } finally {
    m.close()
  }
})
