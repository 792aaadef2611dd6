// Scenarios for inventory.spec.ts. Each runs inside a network namespace the
// test created (see ../netns.ts), as root, and returns what the library and
// the kernel (ip, /proc) reported, so the test can compare them.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

import { gcTaps, handOff, listTaps, openTap, TapError, tapHolders } from '../../index'

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' })
const ipTun = () => JSON.parse(sh('ip', '-d', '-j', 'link', 'show', 'type', 'tun'))

/**
 * A child (fixtures/cli/child.js in wait mode) that holds the device's first
 * fd as its fd 3, the way a VMM is handed one; this process's copy is closed.
 */
async function holdInChild(name: string): Promise<{ child: ChildProcess; pid: number }> {
  const tap = openTap({ name })
  const { stdio } = handOff([tap], { stdio: ['ignore', 'pipe', 'inherit'] })
  const child = spawn(process.execPath, [join(__dirname, '..', 'fixtures', 'cli', 'child.js'), 'wait'], { stdio })
  tap.close()
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  await new Promise<void>((resolve, reject) => {
    lines.once('line', (l) => (l === 'ready' ? resolve() : reject(new Error(`child said ${l}`))))
    child.once('exit', (c) => reject(new Error(`child exited ${c}`)))
  })
  return { child, pid: child.pid as number }
}

async function release(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await exited
}

/** Every kind of device the issue names, as listTaps and ip see them. */
export async function listMatchesIp() {
  sh('ip', 'link', 'add', 'lbr0', 'type', 'bridge')
  sh('ip', 'link', 'add', 'lve0', 'type', 'veth', 'peer', 'name', 'lve1') // not a tun: not listed
  const held = [
    openTap({ name: 'lsq0' }), // single-queue, vnet_hdr
    openTap({ name: 'lmq0', queues: 4 }), // 4 queues, one disabled below
    openTap({ name: 'lnv0', vnetHdr: false, up: true, mtu: 9000 }), // vnet_hdr off
  ]
  held[1].setQueueEnabled(3, false)
  // Persistent: plain (ip tuntap), owned, enslaved and tagged, a tun.
  sh('ip', 'tuntap', 'add', 'dev', 'lp0', 'mode', 'tap')
  openTap({ name: 'low0', persist: true, owner: 4242, group: 4343, queues: 2 }).close()
  openTap({ name: 'lsl0', persist: true, bridge: 'lbr0', up: true, tag: 'ci-7', mac: 'fe:54:00:00:00:07' }).close()
  sh('ip', 'tuntap', 'add', 'dev', 'ltn0', 'mode', 'tun')
  sh('ip', 'link', 'set', 'lp0', 'alias', 'not a vmtap tag')
  try {
    return { ours: listTaps(), ip: ipTun(), heldSingleQueue: ['lsq0', 'lnv0'] }
  } finally {
    for (const t of held) t.close()
  }
}

function errInfo(f: () => unknown) {
  try {
    f()
    return null
  } catch (e) {
    const err = e as TapError
    return { code: err.code, message: err.message, holders: err.holders ?? null, isTapError: err instanceof TapError }
  }
}

/**
 * A child holds a single-queue device: openTap's EBUSY names it, tapHolders lists it.
 * `name` is the test's own: the holders walk matches names in every namespace of the machine.
 */
export async function busyByChild(cliPath: string, name: string) {
  const { child, pid } = await holdInChild(name)
  try {
    const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
    const busy = errInfo(() => openTap({ name }))
    const holders = tapHolders(name)
    const cliHolders = cli(cliPath, 'holders', name, '--json')
    const cliHoldersText = cli(cliPath, 'holders', name)
    const cliList = cli(cliPath, 'list', '--json')
    const list = listTaps()
    const cliMissing = cli(cliPath, 'holders', 'nope0')
    await release(child)
    return {
      pid,
      comm,
      busy,
      holders,
      cliHolders,
      cliHoldersText,
      cliList,
      list,
      cliMissing,
      after: tapHolders(name),
      gone: !listTaps().some((t) => t.ifname === name),
    }
  } finally {
    await release(child)
  }
}

function cli(cliPath: string, ...args: string[]) {
  try {
    return { status: 0, stdout: execFileSync(process.execPath, [cliPath, ...args], { encoding: 'utf8' }) }
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string }
    return { status: err.status, stdout: err.stdout, stderr: err.stderr }
  }
}

/**
 * vmtap gc --tag T: an unheld tagged device goes; held, untagged and other-tagged stay; held goes once released.
 * The devices' names start with the test's own `prefix`: gc names the holders of what it keeps,
 * found by name in every namespace of the machine.
 */
export async function gcByCli(cliPath: string, prefix: string) {
  openTap({ name: `${prefix}gfree0`, persist: true, tag: 'T' }).close()
  openTap({ name: `${prefix}gfreem0`, persist: true, tag: 'T', queues: 2 }).close()
  openTap({ name: `${prefix}gheld0`, persist: true, tag: 'T' }).close()
  openTap({ name: `${prefix}guntag0`, persist: true }).close()
  openTap({ name: `${prefix}gother0`, persist: true, tag: 'U' }).close()
  const { child, pid } = await holdInChild(`${prefix}gheld0`)
  const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
  const persistent = () =>
    listTaps()
      .filter((t) => t.persist)
      .map((t) => `${t.ifname}:${t.tag ?? '-'}`)
      .sort()
  try {
    const dry = cli(cliPath, 'gc', '--tag', 'T', '--dry-run', '--json')
    const afterDry = persistent()
    const first = cli(cliPath, 'gc', '--tag', 'T', '--json')
    const afterFirst = persistent()
    await release(child)
    const second = cli(cliPath, 'gc', '--tag', 'T')
    const afterSecond = persistent()
    return { pid, comm, dry, afterDry, first, afterFirst, second, afterSecond, api: await gcTaps({ tag: 'T' }) }
  } finally {
    await release(child)
  }
}

/** Frames written to the fd of an up device, in getStats() and in ip -s -j. */
export function statsMatchIp(frames: number) {
  // Nothing but our frames may move: no IPv6 (router solicitations, MLD, DAD).
  sh('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1')
  sh('sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1')
  const tap = openTap({ name: 'st0', vnetHdr: false, up: true })
  try {
    const frame = Buffer.alloc(120, 0xab)
    Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0, 1, 0x88, 0xb5]).copy(frame)
    for (let i = 0; i < frames; i++) writeSync(tap.tapFds[0], frame)
    const ours = tap.getStats()
    const ip = JSON.parse(sh('ip', '-s', '-j', 'link', 'show', 'dev', 'st0'))[0].stats64
    return { ours, ip, frameBytes: frame.length }
  } finally {
    tap.close()
  }
}

/** `count` persistent devices: listTaps returns all of them. */
export function many(count: number) {
  for (let i = 0; i < count; i++) openTap({ name: `k${i}`, persist: true, vnetHdr: false }).close()
  const taps = listTaps()
  return {
    count: taps.length,
    names: taps.map((t) => t.ifname),
    allPersistentUnheld: taps.every((t) => t.persist && t.queues === 0),
    ip: ipTun().length,
  }
}
