// Scenarios for fdpass.spec.ts that need devices: each runs as root in a
// network namespace the test created (../netns.ts) and returns what it saw.
import { promises as dns } from 'node:dns'
import { closeSync, promises as fsp, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { connectQmp, hotplugNic, openTap, openTapAsync, recvFds, sendFds } from '../../index'
import { fill, socketPair } from '../socketpair'

const iffOf = (fd: number) => readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^iff:\s+(\S+)$/m)?.[1] ?? null
const fdCount = () => readdirSync('/proc/self/fd').length

/**
 * Run `open` so that what it opens gets the fd numbers `numbers` (free now):
 * every lower free number is taken by /dev/null first (and released after).
 */
function onNumbers<T>(numbers: readonly number[], open: () => T): T {
  const wanted = new Set(numbers)
  const top = Math.max(...numbers)
  const fillers: number[] = []
  const mine: number[] = []
  for (;;) {
    const f = openSync('/dev/null', 'r')
    if (f > top) {
      closeSync(f)
      break
    }
    ;(wanted.has(f) ? mine : fillers).push(f)
  }
  for (const f of mine) closeSync(f)
  try {
    return open()
  } finally {
    for (const f of fillers) closeSync(f)
  }
}

/** `p`, or `stuck` when it has not settled within `ms` (a liveness bound, so a broken build fails instead of hanging). */
function bounded<T>(p: Promise<T>, ms: number): Promise<T | 'stuck'> {
  let timer: NodeJS.Timeout | undefined
  const guard = new Promise<'stuck'>((r) => {
    timer = setTimeout(() => r('stuck'), ms)
  })
  return Promise.race([p, guard]).finally(() => clearTimeout(timer))
}

/**
 * Eight recvFds with no timeout wait for peers that send nothing; meanwhile
 * the libuv pool must serve fs, dns.lookup and openTapAsync. Then the peers
 * send and every recvFds completes (also on a build whose recvFds held pool
 * threads, so the process can exit either way).
 */
export async function poolStaysFree() {
  const pairs = await Promise.all(Array.from({ length: 8 }, () => socketPair()))
  try {
    const pending = pairs.map((p) =>
      recvFds(p.server).then(
        (r) => r.data.toString(),
        (e: NodeJS.ErrnoException) => `error ${e.code}`,
      ),
    )
    const work = Promise.all([
      fsp.readFile('/proc/self/status', 'utf8').then((s) => s.startsWith('Name:')),
      dns.lookup('localhost').then((a) => typeof a.address === 'string'),
      openTapAsync({ name: 'evpool0' }).then(async (tap) => {
        const name = tap.ifname
        await tap.closeAsync()
        return name
      }),
    ])
    const done = await bounded(work, 10000)
    for (const [i, p] of pairs.entries()) p.client.write(`m${i}`)
    const got = await Promise.all(pending)
    return { done, got }
  } finally {
    for (const p of pairs) p.close()
  }
}

/**
 * sendFds of a device's fd waits on a full socket; the device is closed and
 * another one opened, which gets the same fd number; the socket is drained.
 * What the peer receives must be attached to the first device.
 */
export async function sendFdsNumberReuse() {
  const p = await socketPair()
  try {
    await fill(p.client, sendFds)
    const a = openTap({ name: 'evreuse0' })
    const num = a.tapFds[0]
    let failed: string | null = null
    const sending = sendFds(p.client, 'X', a.tapFds).catch((e: NodeJS.ErrnoException) => {
      failed = e.code ?? String(e)
      return -1
    })
    a.close()
    const b = onNumbers([num], () => openTap({ name: 'evreuse1' }))
    const reused = b.tapFds[0] === num
    let attached: string | null = null
    let bytes = 0
    while (attached === null && failed === null) {
      const m = await recvFds(p.server, { maxBytes: 1 << 20, timeoutMs: 10000 })
      if (m.data.length === 0) break
      bytes += m.data.length
      for (const fd of m.fds) {
        attached = iffOf(fd)
        closeSync(fd)
      }
    }
    const sent = await sending
    b.close()
    return { reused, attached, sent, failed, bytes: bytes > 0 }
  } finally {
    p.close()
  }
}

/**
 * hotplugNic on a 2-queue device against a monitor that holds its reply to
 * the first getfd; meanwhile the device is closed and another 2-queue device
 * opened on the same fd numbers. Every fd the monitor receives must be
 * attached to the first device.
 */
export async function hotplugNumberReuse() {
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-qmp-'))
  const path = join(dir, 'qmp.sock')
  const received: { cmd: string; iff: (string | null)[] }[] = []
  let release!: () => void
  const gate = new Promise<void>((r) => {
    release = r
  })
  let firstGetfd!: () => void
  const sawFirstGetfd = new Promise<void>((r) => {
    firstGetfd = r
  })
  const srv = createServer({ pauseOnConnect: true }, async (s) => {
    s.write('{"QMP": {"version": {}, "capabilities": []}}\r\n')
    let buf = ''
    for (;;) {
      const m = await recvFds(s, { timeoutMs: 10000 }).catch(() => null)
      if (!m || m.data.length === 0) break
      buf += m.data.toString()
      const iff = m.fds.map((fd) => {
        const i = iffOf(fd)
        closeSync(fd)
        return i
      })
      let nl: number
      while ((nl = buf.indexOf('\n')) >= 0) {
        const req = JSON.parse(buf.slice(0, nl))
        buf = buf.slice(nl + 1)
        received.push({ cmd: req.execute, iff })
        if (req.execute === 'getfd' && received.filter((r) => r.cmd === 'getfd').length === 1) {
          firstGetfd()
          await gate
        }
        s.write(`${JSON.stringify({ return: {}, id: req.id })}\r\n`)
      }
    }
    s.destroy()
  })
  await new Promise<void>((r) => srv.listen(path, r))
  const qmp = await connectQmp(path, { timeoutMs: 10000 })
  try {
    const a = openTap({ name: 'evhot0', queues: 2 })
    const numbers = [...a.tapFds]
    const fds0 = fdCount()
    const plugging = hotplugNic(qmp, a, { id: 'n1' })
    await sawFirstGetfd
    a.close()
    const b = onNumbers(numbers, () => openTap({ name: 'evhot1', queues: 2 }))
    const reused = numbers.every((n, i) => b.tapFds[i] === n)
    release()
    const nic = await plugging
    const fds1 = fdCount()
    b.close()
    return {
      reused,
      nic: nic.fdNames,
      getfd: received.filter((r) => r.cmd === 'getfd').map((r) => r.iff),
      commands: received.map((r) => r.cmd),
      fdsBackToBefore: fds1 === fds0,
    }
  } finally {
    qmp.close()
    srv.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
