// adoptTap (a TapDevice from received fds) and peerCredentials (who is at the
// other end of a Unix socket): argument checks before any syscall, the
// kernel's refusals with the fds left to the caller, and, as root inside a
// namespace, real devices whose fds crossed a socket.
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { createServer, Socket, connect as tcpConnect, createServer as createTcpServer } from 'node:net'
import { join } from 'node:path'

import test from 'ava'

import { adoptTap, peerCredentials, TapError } from '../index'
import { rootTest } from './helpers'
import { runIn, withNetns } from './netns'

test('adoptTap refuses bad fd lists before any syscall', (t) => {
  t.throws(() => adoptTap(undefined as never), {
    code: 'ERR_INVALID_ARG_TYPE',
    message: /"tapFds" argument must be an array/,
  })
  t.throws(() => adoptTap([]), { code: 'ERR_OUT_OF_RANGE', message: /tapFds\.length/ })
  t.throws(() => adoptTap(Array.from({ length: 257 }, (_, i) => 1000 + i)), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => adoptTap([-1]), { code: 'ERR_OUT_OF_RANGE', message: /tapFds\[0\]/ })
  t.throws(() => adoptTap([1.5]), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => adoptTap(['3'] as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => adoptTap([5, 5]), { code: 'ERR_INVALID_ARG_VALUE', message: /fd 5 twice/ })
  t.throws(() => adoptTap([5], [5]), { code: 'ERR_INVALID_ARG_VALUE', message: /fd 5 twice/ })
  t.throws(() => adoptTap([5, 6], [7]), { code: 'ERR_INVALID_ARG_VALUE', message: /one fd per tap fd \(2\)/ })
  t.throws(() => adoptTap([5], 7 as never), { code: 'ERR_INVALID_ARG_TYPE', message: /vhostFds/ })
})

test("adoptTap: fds that are not tap fds are refused by the kernel and stay open and the caller's", (t) => {
  const fd = openSync('/dev/null', 'r')
  try {
    const e = t.throws(() => adoptTap([fd]), { instanceOf: TapError })
    t.like(e, { code: 'ENOTTY', syscall: 'ioctl(TUNGETIFF)' })
    t.regex(e?.message ?? '', /tapFds\[0\] \(fd \d+\) is not a TUN\/TAP fd/)
    t.notThrows(() => fstatSync(fd), 'still open')
    const closed = t.throws(() => adoptTap([999_999]), { instanceOf: TapError })
    t.is(closed?.code, 'EBADF')
    t.regex(closed?.message ?? '', /tapFds\[0\] \(fd 999999\) is not open/)
  } finally {
    closeSync(fd)
  }
})

rootTest("adoptTap: an unattached /dev/net/tun fd is refused (EBADFD) and stays open and the caller's", (t) => {
  // As root /dev/net/tun always opens: a failure to open it fails the test.
  const tun = openSync('/dev/net/tun', 'r+')
  try {
    const unattached = t.throws(() => adoptTap([tun]), { instanceOf: TapError })
    t.is(unattached?.code, 'EBADFD')
    t.regex(unattached?.message ?? '', /is a \/dev\/net\/tun fd that is not attached to a device/)
    t.notThrows(() => fstatSync(tun), 'still open')
  } finally {
    closeSync(tun)
  }
})

test('peerCredentials: both ends of a Unix socket see this process, as the kernel recorded it at connect', async (t) => {
  const dir = mkdtempSync('/tmp/vmtap-peer-')
  const server = createServer({ pauseOnConnect: true })
  try {
    await new Promise<void>((r) => server.listen(join(dir, 's'), r))
    const accepted = new Promise<Socket>((r) => server.once('connection', r))
    const client = new Socket()
    await new Promise<void>((r) => client.connect(join(dir, 's'), r))
    const peer = await accepted
    // The supplementary groups as the kernel has them (Node's getgroups() adds the egid).
    const groups = (readFileSync('/proc/self/status', 'utf8').match(/^Groups:[ \t]*(.*)$/m)?.[1] ?? '')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
    const me = { pid: process.pid, uid: process.geteuid!(), gid: process.getegid!(), groups }
    for (const s of [peer, client]) t.deepEqual(peerCredentials(s), me)
    t.deepEqual(peerCredentials((peer as unknown as { _handle: { fd: number } })._handle.fd), peerCredentials(peer))
    client.destroy()
    peer.destroy()
  } finally {
    server.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('peerCredentials refuses what is not a connected Unix socket', async (t) => {
  const fd = openSync('/dev/null', 'r')
  try {
    t.like(
      t.throws(() => peerCredentials(fd), { instanceOf: TapError }),
      { code: 'ENOTSOCK', syscall: 'getsockopt(SO_DOMAIN)' },
    )
  } finally {
    closeSync(fd)
  }
  const tcp = createTcpServer()
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r))
  const port = (tcp.address() as { port: number }).port
  const c = tcpConnect(port, '127.0.0.1')
  await new Promise((r) => c.once('connect', r))
  t.like(
    t.throws(() => peerCredentials(c)),
    { code: 'EAFNOSUPPORT' },
  )
  c.destroy()
  tcp.close()
  t.throws(() => peerCredentials('3' as never), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => peerCredentials(-1), { code: 'ERR_OUT_OF_RANGE' })
  t.throws(() => peerCredentials(new Socket()), { code: 'ERR_INVALID_ARG_VALUE', message: /not a connected socket/ })
})

rootTest(
  'adoptTap: fds that crossed a socket become a TapDevice owning them; closing it removes the device',
  async (t) => {
    const dir = mkdtempSync('/tmp/vmtap-adopt-')
    try {
      await withNetns(async (ns) => {
        const r = await runIn<{
          name: string
          existsWhileReceived: boolean
          received: number[]
          adopted: {
            ifname: string
            tapFds: number[]
            vhostFds: number[]
            multiQueue: boolean
            vnetHdr: boolean
            cloexec: boolean[]
            mtu: number
          }
          existsAfterAdopt: boolean
          existsAfterClose: boolean
          fdsOpenAfterClose: boolean[]
        }>(ns, 'scenarios/adopt.ts', 'adoptReceived', [dir])
        t.true(r.existsWhileReceived, 'the received fds keep the device after the sender closed its own')
        t.deepEqual(r.adopted, {
          ifname: r.name,
          tapFds: r.received,
          vhostFds: [],
          multiQueue: true,
          vnetHdr: true,
          cloexec: [true, true],
          mtu: 1500,
        })
        t.true(r.existsAfterAdopt)
        t.false(r.existsAfterClose, 'closing the adopted device removed it')
        t.deepEqual(r.fdsOpenAfterClose, [false, false])
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  },
)

rootTest(
  'adoptTap refuses fds of different devices, leaving them open; a disabled queue is adopted as it is',
  async (t) => {
    const dir = mkdtempSync('/tmp/vmtap-adopt-')
    try {
      await withNetns(async (ns) => {
        const r = await runIn<{
          names: string[]
          mixed: { code: string; message: string } | null
          disabledQueue: { ifname: string; multiQueue: boolean }
          stillOpen: boolean[]
          bothExist: boolean[]
          goneAfter: boolean[]
        }>(ns, 'scenarios/adopt.ts', 'adoptMixed', [dir])
        t.like(r.mixed, { code: 'ERR_INVALID_ARG_VALUE' })
        t.regex(r.mixed?.message ?? '', new RegExp(`belong to different devices: ${r.names[0]} and ${r.names[1]}`))
        t.deepEqual(r.stillOpen, [true, true], 'nothing was taken or closed')
        t.deepEqual(r.disabledQueue, { ifname: r.names[0], multiQueue: true })
        t.deepEqual(r.bothExist, [true, true])
        t.deepEqual(r.goneAfter, [true, true], 'closing them removed the devices')
      })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  },
)
