// Scenarios for config.spec.ts. Each runs inside a network namespace the
// test created (see ../netns.ts), as root, and returns what the kernel
// reported so the test can assert on it.
import { execFileSync, spawnSync } from 'node:child_process'
import {
  chmodSync,
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  read,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { deleteTap, hostMacFor, openTap, probeOffloads, TapError } from '../../index'

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' })
const ipJson = (name: string) => JSON.parse(sh('ip', '-d', '-j', 'link', 'show', 'dev', name))[0]
const sysfs = (name: string, attr: string) => readFileSync(`/sys/class/net/${name}/${attr}`, 'utf8').trim()
const exists = (name: string) => readdirSync('/sys/class/net').includes(name)
const fdCount = () => readdirSync('/proc/self/fd').length

function errInfo(f: () => unknown) {
  try {
    f()
    return null
  } catch (e) {
    const err = e as TapError
    return {
      name: err.name,
      code: err.code,
      syscall: err.syscall,
      message: err.message,
      isTapError: err instanceof TapError,
    }
  }
}

/** Open-time link options in one call, as a VM launcher would. */
export function openConfigured() {
  sh('ip', 'link', 'add', 'br0', 'type', 'bridge')
  sh('ip', 'link', 'set', 'br0', 'up')
  const guestMac = '52:54:00:12:34:56'
  const tap = openTap({ name: 'vm0', queues: 2, mtu: 9000, mac: hostMacFor(guestMac), bridge: 'br0', up: true })
  try {
    return { ip: ipJson('vm0'), master: sysfs('vm0', 'master/uevent'), info: tap.getLinkInfo() }
  } finally {
    tap.close()
  }
}

/** Each setter, read back from sysfs and ip. */
export function setters() {
  sh('ip', 'link', 'add', 'br1', 'type', 'bridge')
  const tap = openTap({ name: 'vm1' })
  const out: Record<string, unknown> = {}
  try {
    out.initial = { up: tap.getLinkInfo().up, flags: sysfs('vm1', 'flags') }
    tap.setLinkUp(true)
    out.afterUp = { info: tap.getLinkInfo().up, flags: parseInt(sysfs('vm1', 'flags'), 16) }
    tap.setLinkUp(false)
    out.afterDown = { info: tap.getLinkInfo().up, flags: parseInt(sysfs('vm1', 'flags'), 16) }
    tap.setMtu(1400)
    out.mtu = { get: tap.getMtu(), sysfs: Number(sysfs('vm1', 'mtu')) }
    tap.setMtu(65521)
    out.mtuMax = tap.getMtu()
    out.mtuTooBig = errInfo(() => tap.setMtu(65535))
    tap.setMac('fe:00:00:aa:bb:cc')
    out.mac = { get: tap.getMac(), sysfs: sysfs('vm1', 'address') }
    tap.attachToBridge('br1')
    out.bridged = { master: ipJson('vm1').master, brif: readdirSync('/sys/class/net/br1/brif') }
    out.bridgeTwice = errInfo(() => tap.attachToBridge('br1'))
    tap.detachFromBridge('br1')
    out.unbridged = { master: ipJson('vm1').master ?? null, brif: readdirSync('/sys/class/net/br1/brif') }
    out.notABridge = errInfo(() => tap.attachToBridge('lo'))
    out.noBridge = errInfo(() => tap.attachToBridge('nobr0'))
    tap.setVnetHdrSize(12)
    out.hdr12 = tap.getVnetHdrSize()
    tap.setVnetHdrSize(20)
    out.hdr20 = tap.getVnetHdrSize()
    tap.setVnetHdrSize(10)
    out.hdr10 = tap.getVnetHdrSize()
  } finally {
    tap.close()
  }
  out.gone = !exists('vm1')
  return out
}

/** `ethtool -k` features of a device, as { name: on }. */
function ethtoolFeatures(name: string): Record<string, boolean> {
  const out: Record<string, boolean> = {}
  for (const line of sh('ethtool', '-k', name).split('\n')) {
    const m = line.match(/^\s*([a-z0-9-]+): (on|off)/)
    if (m) out[m[1]] = m[2] === 'on'
  }
  return out
}

export function offloads() {
  const probed = probeOffloads()
  const tap = openTap({ name: 'vm2', vnetHdr: true })
  try {
    const before = ethtoolFeatures('vm2')
    const all = tap.setOffloads({ csum: true, tso4: true, tso6: true, ecn: true, ufo: true, uso4: true, uso6: true })
    const afterAll = ethtoolFeatures('vm2')
    const csumOnly = tap.setOffloads({ csum: true })
    const afterCsum = ethtoolFeatures('vm2')
    const none = tap.setOffloads({})
    const afterNone = ethtoolFeatures('vm2')
    return { probed, all, csumOnly, none, before, afterAll, afterCsum, afterNone }
  } finally {
    tap.close()
  }
}

export function offloadsAtOpen() {
  const tap = openTap({ name: 'vm3', vnetHdrSize: 12, offloads: { csum: true, tso4: true, tso6: true } })
  try {
    return { hdr: tap.getVnetHdrSize(), features: ethtoolFeatures('vm3') }
  } finally {
    tap.close()
  }
}

export function queues() {
  const tap = openTap({ name: 'vmq', queues: 4 })
  try {
    const q = () => {
      const d = ipJson('vmq').linkinfo.info_data
      return { numqueues: d.numqueues, numdisabled: d.numdisabled }
    }
    const start = q()
    tap.setQueueEnabled(3, false)
    tap.setQueueEnabled(1, false)
    const twoOff = q()
    const again = errInfo(() => tap.setQueueEnabled(1, false))
    tap.setQueueEnabled(1, true)
    const oneOff = q()
    tap.setQueueEnabled(3, true)
    return { start, twoOff, again, oneOff, end: q() }
  } finally {
    tap.close()
  }
}

/** A persistent device owned by `owner`, attached to by unprivileged users. */
export function persistOwner(owner: number, other: number, repo: string) {
  const tap = openTap({ name: 'vmp0', persist: true, owner, queues: 2 })
  tap.close()
  const persisted = ipJson('vmp0').linkinfo.info_data
  // A world-readable copy of the package and a 0666 tun node, as
  // distributions ship /dev/net/tun (here it is 0600).
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-unpriv-'))
  try {
    chmodSync(dir, 0o755)
    cpSync(join(repo, 'dist'), join(dir, 'dist'), { recursive: true })
    cpSync(join(repo, 'vmtap.linux-x64-gnu.node'), join(dir, 'vmtap.linux-x64-gnu.node'))
    writeFileSync(
      join(dir, 'attach.js'),
      `const { openTap } = require('./dist/index.js')
       try {
         const t = openTap({ name: process.argv[2], queues: 2 })
         const r = { ok: true, uid: process.getuid(), ifname: t.ifname, fds: t.tapFds.length }
         t.close()
         console.log(JSON.stringify(r))
       } catch (e) {
         console.log(JSON.stringify({ ok: false, uid: process.getuid(), code: e.code, message: e.message }))
       }`,
    )
    sh('mknod', '-m', '666', join(dir, 'tun'), 'c', '10', '200')
    sh('chmod', '-R', 'a+rX', dir)
    const as = (uid: number) => {
      const r = spawnSync(
        'unshare',
        [
          '-m',
          'sh',
          '-c',
          `mount --bind ${dir}/tun /dev/net/tun && exec setpriv --reuid ${uid} --regid ${uid} --clear-groups --inh-caps=-all --bounding-set=-all ${process.execPath} ${dir}/attach.js vmp0`,
        ],
        { encoding: 'utf8' },
      )
      return JSON.parse(r.stdout.trim().split('\n').pop() || '{}')
    }
    const asOwner = as(owner)
    const asOther = as(other)
    const stillThere = exists('vmp0')
    deleteTap('vmp0')
    return { persisted, asOwner, asOther, stillThere, goneAfterDelete: !exists('vmp0') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** An existing persistent device is attached to; deleteTap removes it (single and multi-queue). */
export function existingPersistent() {
  sh('ip', 'tuntap', 'add', 'dev', 'vmx0', 'mode', 'tap', 'multi_queue')
  const t = openTap({ name: 'vmx0', queues: 3 })
  const attached = { ifname: t.ifname, numqueues: ipJson('vmx0').linkinfo.info_data.numqueues }
  t.close()
  const survived = exists('vmx0')
  const wrong = errInfo(() => openTap({ name: 'vmx0', queues: 1 }))
  deleteTap('vmx0')
  const mqGone = !exists('vmx0')
  sh('ip', 'tuntap', 'add', 'dev', 'vmx1', 'mode', 'tap')
  deleteTap('vmx1')
  const sqGone = !exists('vmx1')
  const missing = errInfo(() => deleteTap('vmx1'))
  return { attached, survived, wrong, mqGone, sqGone, missing }
}

/** Every failure path closes what it opened and leaves no device. */
export function failuresLeaveNothing() {
  sh('ip', 'link', 'add', 'br2', 'type', 'bridge')
  const fds = fdCount()
  const links = readdirSync('/sys/class/net').sort()
  const cases = {
    noBridge: errInfo(() => openTap({ name: 'vmf0', queues: 4, bridge: 'nobr' })),
    mtuTooBig: errInfo(() => openTap({ name: 'vmf1', mtu: 65535, up: true })),
    persistThenFail: errInfo(() => openTap({ name: 'vmf2', persist: true, owner: 1000, bridge: 'lo' })),
    exclusiveTaken: errInfo(() => openTap({ name: 'br2', exclusive: true })),
  }
  return {
    cases,
    fdsBefore: fds,
    fdsAfter: fdCount(),
    linksBefore: links,
    linksAfter: readdirSync('/sys/class/net').sort(),
  }
}

export function uniqueNames() {
  const a = openTap({ name: 'vnet%d', uniqueName: true })
  const first = a.ifname
  a.close()
  const b = openTap({ name: 'vnet%d', uniqueName: true })
  const kernelA = openTap({ name: 'knet%d' })
  const k1 = kernelA.ifname
  kernelA.close()
  const kernelB = openTap({ name: 'knet%d' })
  const k2 = kernelB.ifname
  kernelB.close()
  // Someone else creates the next candidate: vmtap skips it.
  const next = Number(b.ifname.slice(4)) + 1
  sh('ip', 'link', 'add', `vnet${next}`, 'type', 'bridge')
  const c = openTap({ name: 'vnet%d', uniqueName: true })
  const r = { first, second: b.ifname, third: c.ifname, taken: `vnet${next}`, k1, k2 }
  b.close()
  c.close()
  return r
}

function frame(marker: string): Buffer {
  const payload = Buffer.from(marker)
  const f = Buffer.alloc(Math.max(60, 14 + payload.length))
  Buffer.from('ffffffffffff', 'hex').copy(f, 0) // broadcast: the bridge floods it
  Buffer.from('020000000001', 'hex').copy(f, 6)
  f.writeUInt16BE(0x88b5, 12) // IEEE local experimental ethertype
  payload.copy(f, 14)
  return f
}

/** Read frames from `fd` until one contains `marker`, or give up at the deadline. */
function readUntil(
  fd: number,
  marker: string,
  hdrLen: number,
  ms: number,
): Promise<{ frame: string; skipped: number } | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms)
    let skipped = 0
    const buf = Buffer.alloc(65536)
    const next = () =>
      read(fd, buf, 0, buf.length, null, (err, n) => {
        if (err) {
          clearTimeout(timer)
          return resolve(null)
        }
        const f = buf.subarray(hdrLen, n)
        if (f.includes(marker)) {
          clearTimeout(timer)
          return resolve({ frame: f.toString('hex'), skipped })
        }
        skipped++
        next()
      })
    next()
  })
}

/** Two taps on one bridge: a frame written on one device's queue fd is read on the other's fd. */
export async function bridgeTraffic() {
  sh('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1')
  sh('ip', 'link', 'add', 'br3', 'type', 'bridge', 'stp_state', '0')
  sh('ip', 'link', 'set', 'br3', 'up')
  const a = openTap({ name: 'vma', queues: 2, vnetHdr: true, bridge: 'br3', up: true })
  const b = openTap({ name: 'vmb', vnetHdr: false, bridge: 'br3', up: true })
  try {
    const marker = `vmtap-bridge-${process.pid}-${Date.now()}`
    const reading = readUntil(b.tapFds[0], marker, 0, 10000)
    // vnet_hdr device: a 10-byte virtio_net_hdr (all zero: no offload) precedes the frame.
    const f = frame(marker)
    const written = writeSync(a.tapFds[1], Buffer.concat([Buffer.alloc(10), f]))
    const got = await reading
    return { written, sent: f.toString('hex'), got }
  } finally {
    a.close()
    b.close()
  }
}
