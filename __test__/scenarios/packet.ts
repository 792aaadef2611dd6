// Scenarios for packet.spec.ts: frames from Node on real devices. Each runs
// as root in a network namespace the test created (../netns.ts) and returns
// what it saw. The responders below are small on purpose: an ARP and ICMP
// echo responder for an address "behind" a TAP device, and the ICMP part
// alone for a TUN device's peer.
import { execFileSync, spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { readdirSync, readFileSync } from 'node:fs'

import { handOff, openTap, type TapDevice, TapError } from '../../index'

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' })
const fdCount = () => readdirSync('/proc/self/fd').length
const links = () =>
  readFileSync('/proc/self/net/dev', 'utf8')
    .split('\n')
    .slice(2)
    .map((l) => l.split(':')[0].trim())
    .filter(Boolean)
    .sort()
const stat = (dev: string, name: string) => Number(readFileSync(`/sys/class/net/${dev}/statistics/${name}`, 'utf8'))
/** The `flags:` of an fd (octal), as /proc shows them. */
const fdFlags = (fd: number) =>
  parseInt(/^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8)
const O_NONBLOCK = 0o4000

const ip4 = (s: string) => Buffer.from(s.split('.').map(Number))

/** The Internet checksum of `b`. */
function checksum(b: Buffer): number {
  let sum = 0
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i)
  if (b.length % 2) sum += b[b.length - 1] << 8
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

/** An ICMP echo reply to the IPv4 echo request `pkt` sent to `me`, or null. */
function echoReply(pkt: Buffer, me: Buffer): Buffer | null {
  if (pkt.length < 20 || pkt[0] >> 4 !== 4 || pkt[9] !== 1) return null
  const ihl = (pkt[0] & 15) * 4
  const total = pkt.readUInt16BE(2)
  if (!pkt.subarray(16, 20).equals(me) || pkt[ihl] !== 8) return null
  const r = Buffer.from(pkt.subarray(0, total))
  pkt.copy(r, 12, 16, 20) // source: me
  pkt.copy(r, 16, 12, 16) // destination: the sender
  r[8] = 64
  r.writeUInt16BE(0, 10)
  r.writeUInt16BE(checksum(r.subarray(0, ihl)), 10)
  r[ihl] = 0 // echo reply
  r.writeUInt16BE(0, ihl + 2)
  r.writeUInt16BE(checksum(r.subarray(ihl)), ihl + 2)
  return r
}

/** ARP and ICMP echo for `me` at `mac` behind the TAP device: what a DHCP or metadata responder builds on. */
async function respond(tap: TapDevice, me: Buffer, mac: Buffer, seen: Record<string, number>) {
  for await (const f of tap.frames()) {
    const type = f.readUInt16BE(12)
    if (type === 0x0806 && f.readUInt16BE(20) === 1 && f.subarray(38, 42).equals(me)) {
      seen.arp = (seen.arp ?? 0) + 1
      const r = Buffer.alloc(42)
      f.copy(r, 0, 6, 12) // to the asker
      mac.copy(r, 6)
      r.writeUInt16BE(0x0806, 12)
      r.writeUInt16BE(1, 14) // Ethernet
      r.writeUInt16BE(0x0800, 16) // IPv4
      r[18] = 6
      r[19] = 4
      r.writeUInt16BE(2, 20) // reply
      mac.copy(r, 22)
      me.copy(r, 28)
      f.copy(r, 32, 22, 32) // the asker's MAC and IP
      await tap.writeFrame(r)
    } else if (type === 0x0800) {
      const reply = echoReply(f.subarray(14), me)
      if (!reply) continue
      seen.echo = (seen.echo ?? 0) + 1
      const eth = Buffer.alloc(14)
      f.copy(eth, 0, 6, 12)
      mac.copy(eth, 6)
      eth.writeUInt16BE(0x0800, 12)
      await tap.writeFrame(Buffer.concat([eth, reply]))
    }
  }
}

/** `busybox ping -c N ADDR` in this namespace, while the responder runs on this event loop. */
function ping(addr: string, n = 3): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const c = spawn('busybox', ['ping', '-c', String(n), '-W', '5', addr], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    c.stdout.on('data', (d) => (out += d))
    c.stderr.on('data', (d) => (out += d))
    c.on('close', (code) => resolve({ code, out }))
  })
}

/** The kernel pings 10.77.0.2, which only the responder on frames()/writeFrame() answers. */
export async function tapResponder() {
  const tap = openTap({ name: 'evp0', up: true })
  try {
    sh('ip', 'addr', 'add', '10.77.0.1/24', 'dev', 'evp0')
    const seen: Record<string, number> = {}
    const responding = respond(tap, ip4('10.77.0.2'), Buffer.from([2, 0, 0, 0, 0, 2]), seen)
    const r = await ping('10.77.0.2')
    const neigh = sh('ip', 'neigh', 'show', '10.77.0.2', 'dev', 'evp0')
    tap.close()
    await responding
    return { code: r.code, received: /(\d+) packets received/.exec(r.out)?.[1], seen, neigh, vnetHdr: tap.vnetHdr }
  } finally {
    tap.close()
  }
}

/** A TUN device's peer 10.78.0.2 answers ping through frames()/writeFrame() (IP packets, no link layer). */
export async function tunResponder() {
  const tun = openTap({ mode: 'tun', name: 'evt0', up: true })
  try {
    sh('ip', 'addr', 'add', '10.78.0.1', 'peer', '10.78.0.2', 'dev', 'evt0')
    const info = JSON.parse(sh('ip', '-d', '-j', 'link', 'show', 'dev', 'evt0'))[0]
    const seen = { echo: 0 }
    const me = ip4('10.78.0.2')
    const responding = (async () => {
      for await (const p of tun.frames()) {
        const reply = echoReply(p, me)
        if (reply) {
          seen.echo++
          await tun.writeFrame(reply)
        }
      }
    })()
    const r = await ping('10.78.0.2')
    tun.close()
    await responding
    return {
      code: r.code,
      received: /(\d+) packets received/.exec(r.out)?.[1],
      seen,
      mode: tun.mode,
      vnetHdr: tun.vnetHdr,
      type: info.linkinfo?.info_data?.type,
      linkType: info.link_type,
    }
  } finally {
    tun.close()
  }
}

/**
 * A sender floods the tap (UDP to a neighbour behind it) while the consumer
 * takes nothing: the reader stops at its high-water mark, the kernel drops
 * the rest, and memory stays flat; then the consumer reads on.
 */
export async function backPressure() {
  const tap = openTap({ name: 'evbp0', up: true, vnetHdr: false })
  const sock = createSocket('udp4')
  try {
    sh('ip', 'addr', 'add', '10.79.0.1/24', 'dev', 'evbp0')
    sh('ip', 'neigh', 'replace', '10.79.0.2', 'lladdr', '02:00:00:00:00:02', 'dev', 'evbp0', 'nud', 'permanent')
    const hwm = 16
    const it = tap.frames(0, { highWaterMark: hwm })
    const payload = Buffer.alloc(1400, 0x55)
    payload.writeUInt32BE(0, 0)
    await new Promise<void>((r) => sock.bind(0, '10.79.0.1', r))
    // The first frame proves the reader runs; then the consumer stops.
    await new Promise<void>((r, j) => sock.send(payload, 9, '10.79.0.2', (e) => (e ? j(e) : r())))
    const first = await it.next()
    const external0 = process.memoryUsage().arrayBuffers
    const dropped0 = stat('evbp0', 'tx_dropped')
    const sent = 20000
    for (let i = 1; i <= sent; i++) {
      payload.writeUInt32BE(i, 0)
      await new Promise<void>((r, j) => sock.send(payload, 9, '10.79.0.2', (e) => (e ? j(e) : r())))
    }
    // Let the loop run a few turns, so the reader would read on if it were not paused.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
    const buffered = it.buffered
    const grown = process.memoryUsage().arrayBuffers - external0
    const dropped = stat('evbp0', 'tx_dropped') - dropped0
    // The consumer reads on: the frames waiting in Node, then the kernel's queue.
    const seq: number[] = []
    for (let i = 0; i < buffered + 100; i++) {
      const r = await it.next()
      if (r.done) break
      // Our datagrams only (the kernel sends IPv6 neighbour discovery too).
      if (r.value.readUInt16BE(12) === 0x0800 && r.value[23] === 17) seq.push(r.value.readUInt32BE(42))
    }
    await it.return()
    const ordered = seq.every((v, i) => i === 0 || v > seq[i - 1])
    return { first: first.done === false, hwm, buffered, grown, dropped, sent, read: seq.length, ordered }
  } finally {
    sock.close()
    tap.close()
  }
}

/** close() during a pending read: the iterator and a stream end, nothing stays open. */
export async function closeWhileReading() {
  const fds0 = fdCount()
  const links0 = links()
  const tap = openTap({ name: 'evcl0', queues: 2 })
  const it = tap.frames(0)
  const pending = it.next()
  const stream = tap.frameStream(1)
  const ended = new Promise<string>((r) => {
    stream.on('end', () => r('end'))
    stream.on('error', (e) => r(`error ${e}`))
  })
  stream.resume()
  const fdsOpen = fdCount()
  tap.close()
  const result = await pending
  const how = await ended
  await new Promise((r) => setImmediate(r))
  const afterNext = await it.next()
  let reopen: string | null = null
  try {
    tap.frames(0)
  } catch (e) {
    reopen = (e as { code?: string }).code ?? String(e)
  }
  return {
    result,
    how,
    afterNext,
    reopen,
    fdsWhileReading: fdsOpen > fds0,
    fdsBack: fdCount() === fds0,
    linksBack: JSON.stringify(links()) === JSON.stringify(links0),
  }
}

/** read(2)'s number, as /proc/<pid>/syscall shows it. */
const READ_SYSCALL: Partial<Record<string, number>> = { x64: 0, arm64: 63 }

/** The state letter of /proc/<pid>/stat (after the parenthesised command, which may hold a parenthesis). */
const procState = (pid: number) => {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return st[st.lastIndexOf(')') + 2]
}

/**
 * `head -c 1` with `fd` as its stdin, watched until it sleeps in read(0, ...)
 * (bounded), then killed. /proc/<pid>/syscall shows the syscall a task that
 * is not running is in ("running" while it runs); it must show read on fd 0
 * on both sides of a look at /proc/<pid>/stat saying S (asleep), so a task
 * merely preempted in a read that would not block is not taken for blocked.
 * A non-blocking fd would end the read at once (EAGAIN) and head with it.
 */
async function blockedInRead(fd: number) {
  const nr = READ_SYSCALL[process.arch]
  if (nr === undefined) throw new Error(`read(2)'s syscall number on ${process.arch} is not known here`)
  const c = spawn('head', ['-c', '1'], { stdio: [fd, 'ignore', 'ignore'] })
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    c.on('close', (code, signal) => resolve({ code, signal })),
  )
  let exited = false
  c.once('exit', () => {
    exited = true
  })
  const inRead = (pid: number) => {
    const line = readFileSync(`/proc/${pid}/syscall`, 'utf8').trim()
    const [n, arg0] = line.split(' ')
    return { line, yes: Number(n) === nr && Number(arg0) === 0 }
  }
  let syscall = ''
  let blocked = false
  const until = Date.now() + 30_000
  while (c.pid !== undefined && !exited && Date.now() < until) {
    try {
      const before = inRead(c.pid)
      syscall = before.line
      blocked = before.yes && procState(c.pid) === 'S' && inRead(c.pid).yes
    } catch {
      // not started yet, or gone: the exit event tells
    }
    if (blocked) break
    await new Promise((r) => setTimeout(r, 10))
  }
  c.kill('SIGKILL')
  return { blocked: { inRead: blocked, ...(await closed) }, syscall }
}

/**
 * A queue read and written by vmtap keeps its blocking flags: what a VMM
 * handed the same queue sees. A child given queue 0 by handOff blocks in
 * read(2) until it is killed, while vmtap waits on it too.
 */
export async function flagsStayBlocking() {
  const tap = openTap({ name: 'evfl0', queues: 2 })
  try {
    const it = tap.frames(0)
    const pending = it.next()
    const writeErr = await tap.writeFrame(Buffer.alloc(60), 1).then(
      () => null,
      (e: TapError) => ({ code: e.code, tapError: e instanceof TapError, syscall: e.syscall }),
    )
    const flags = tap.tapFds.map((fd) => fdFlags(fd) & O_NONBLOCK)
    const h = handOff(tap, { stdio: ['ignore', 'pipe', 'pipe'] })
    const childFlags = execFileSync('sh', ['-c', 'grep ^flags: /proc/self/fdinfo/3'], {
      stdio: h.stdio as never,
      encoding: 'utf8',
    })
    // The child reads queue 0 with its own blocking read: the link is down, no frame comes.
    const { blocked, syscall } = await blockedInRead(tap.tapFds[0])
    tap.close()
    const ended = await pending
    return {
      flags,
      childNonblock: (parseInt(/flags:\s+([0-7]+)/.exec(childFlags)![1], 8) & O_NONBLOCK) !== 0,
      blocked,
      syscall,
      writeErr,
      ended: ended.done,
    }
  } finally {
    tap.close()
  }
}

/** Frame checks before the syscall, the MTU kept up to date, headers on a vnetHdr device, two queues. */
export async function frameChecks() {
  const tap = openTap({ name: 'evck0', queues: 2, up: true, vnetHdr: true })
  const out: Record<string, unknown> = {}
  const code = async (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: NodeJS.ErrnoException) => `${e.constructor.name} ${e.code}`,
    )
  try {
    sh('ip', 'addr', 'add', '10.80.0.1/24', 'dev', 'evck0')
    out.short = await code(tap.writeFrame(Buffer.alloc(13)))
    out.huge = await code(tap.writeFrame(Buffer.alloc(70000)))
    out.overMtu = await code(tap.writeFrame(Buffer.alloc(1519)))
    out.atMtu = await code(tap.writeFrame(Buffer.alloc(1518)))
    tap.setMtu(9000)
    out.jumbo = await code(tap.writeFrame(Buffer.alloc(9018)))
    out.badQueue = await code(tap.writeFrame(Buffer.alloc(60), 2))
    out.notFrame = await code(tap.writeFrame('x' as never))
    out.gso = await code(
      tap.writeFrame({
        header: { flags: 0, gsoType: 1, hdrLen: 54, gsoSize: 1448, csumStart: 0, csumOffset: 0 },
        frame: Buffer.alloc(20000),
      }),
    )
    out.badHeader = await code(tap.writeFrame({ header: { flags: 256 } as never, frame: Buffer.alloc(60) }))
    out.hdrSize = tap.getVnetHdrSize()
    // A frame the kernel sends, read on queue 1 with its header: ping the neighbour behind it.
    sh('ip', 'neigh', 'replace', '10.80.0.2', 'lladdr', '02:00:00:00:00:03', 'dev', 'evck0', 'nud', 'permanent')
    tap.setQueueEnabled(0, false)
    const it = tap.frames(1, { header: true })
    const sock = createSocket('udp4')
    await new Promise<void>((r, j) => sock.send(Buffer.from('hello'), 9, '10.80.0.2', (e) => (e ? j(e) : r())))
    let got: { header: unknown; frame: Buffer } | null = null
    for (;;) {
      const r = await it.next()
      if (r.done) break
      if (r.value.frame.readUInt16BE(12) === 0x0800 && r.value.frame[23] === 17) {
        got = r.value
        break
      }
    }
    sock.close()
    await it.return()
    out.header = got?.header
    out.udpPayload = got?.frame.subarray(42).toString()
    out.secondReader = (() => {
      const a = tap.frames(1)
      try {
        tap.frames(1)
        return 'allowed'
      } catch (e) {
        return (e as { code?: string }).code
      } finally {
        a.return()
      }
    })()
    tap.setLinkUp(false)
    const down = await tap.writeFrame(Buffer.alloc(60), 1).then(
      () => null,
      (e: TapError) => ({ code: e.code, tapError: e instanceof TapError, hint: /setLinkUp/.test(e.message) }),
    )
    out.down = down
    return out
  } finally {
    tap.close()
  }
}

/** TUN devices: what they take and refuse, checked by TypeScript and by the core. */
export async function tunOptions() {
  const tun = openTap({ mode: 'tun', name: 'evtn%d', queues: 2 })
  try {
    const tunFlags = parseInt(readFileSync(`/sys/class/net/${tun.ifname}/tun_flags`, 'utf8'), 16)
    const info = JSON.parse(sh('ip', '-d', '-j', 'link', 'show', 'dev', tun.ifname))[0].linkinfo.info_data
    tun.setLinkUp(true)
    const badVersion = await tun.writeFrame(Buffer.alloc(40)).then(
      () => null,
      (e: TapError) => ({ code: e.code, hint: /IPv4 or IPv6/.test(e.message) }),
    )
    let tapOnTun: string | null = null
    try {
      openTap({ name: tun.ifname })
    } catch (e) {
      tapOnTun = (e as TapError).message
    }
    return {
      ifname: tun.ifname,
      mode: tun.mode,
      tunFlags,
      type: info.type,
      multiQueue: info.multi_queue,
      pi: info.pi,
      badVersion,
      tapOnTun,
    }
  } finally {
    tun.close()
  }
}
