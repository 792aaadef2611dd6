// Scenarios for reliability.spec.ts and soak.spec.ts. Each runs as
// root inside a network namespace the test created (../netns.ts), so the
// links counted are that namespace's, and returns what it saw.
import { execFileSync, spawnSync } from 'node:child_process'
import {
  chmodSync,
  closeSync,
  cpSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { getHeapStatistics } from 'node:v8'
import { Worker } from 'node:worker_threads'

import {
  closeAll,
  deleteTap,
  handOff,
  openTap,
  openTapAsync,
  probeFeatures,
  TapError,
  type TapDevice,
} from '../../index'
import { native } from '../../lib/native'
import { stagedPackage } from '../staging'

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' })
const fdCount = () => readdirSync('/proc/self/fd').length
const links = () => readdirSync('/sys/class/net').sort()
const ipInfo = (name: string) => JSON.parse(sh('ip', '-d', '-j', 'link', 'show', 'dev', name))[0].linkinfo?.info_data
const sysfs = (name: string, attr: string) => readFileSync(`/sys/class/net/${name}/${attr}`, 'utf8').trim()
const iffOf = (fd: number) => {
  try {
    return readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^iff:\s+(\S+)$/m)?.[1] ?? null
  } catch {
    return null
  }
}
/** Every fd of this process attached to a TAP device, as `fd:ifname`. */
const tapFdsOfProcess = () =>
  readdirSync('/proc/self/fd')
    .map(Number)
    .flatMap((fd) => {
      const i = iffOf(fd)
      return i ? [`${fd}:${i}`] : []
    })
const settle = () => new Promise<void>((r) => setImmediate(r))
const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

export interface ErrInfo {
  name: string
  code: string
  errno: number
  syscall: string
  path?: string
  ifname?: string
  message: string
  isTapError: boolean
}

function info(e: unknown): ErrInfo {
  const x = e as TapError
  return {
    name: x?.name,
    code: x?.code,
    errno: x?.errno,
    syscall: x?.syscall,
    path: x?.path,
    ifname: x?.ifname,
    message: x?.message,
    isTapError: e instanceof TapError,
  }
}

/** Run `f`, expecting it to fail: the error, and the fd count and links before and after. */
async function failing(f: () => unknown) {
  const fds = fdCount()
  const before = links()
  let err: ErrInfo | null = null
  try {
    await f()
  } catch (e) {
    err = info(e)
  }
  return { err, fds: [fds, fdCount()], linksSame: JSON.stringify(before) === JSON.stringify(links()), links: links() }
}

// ---------------------------------------------------------------------------
// Kernel-side failures (as root)
// ---------------------------------------------------------------------------

export async function kernelFailures() {
  sh('ip', 'link', 'add', 'rkbr0', 'type', 'bridge')
  sh('ip', 'link', 'add', 'rkv0', 'type', 'veth', 'peer', 'name', 'rkv1')
  sh('ip', 'tuntap', 'add', 'dev', 'rkt0', 'mode', 'tun')
  sh('ip', 'tuntap', 'add', 'dev', 'rkps0', 'mode', 'tap') // persistent, single-queue, nobody attached
  // Warm up the libuv pool (its first use opens fds of its own), then hold the devices the cases need.
  await (await openTapAsync({ name: 'rkw0' })).closeAsync()
  const held = openTap({ name: 'rkb0' })
  const heldMq = openTap({ name: 'rkm0', queues: 2 })
  const full = openTap({ name: 'rk2b0', queues: 256 })
  const almost = openTap({ name: 'rk2c0', queues: 255 })
  const hasVhost = existsSync('/dev/vhost-net')
  try {
    const out: Record<string, unknown> = {}
    out.busy = await failing(() => openTap({ name: 'rkb0' }))
    out.busyAsync = await failing(() => openTapAsync({ name: 'rkb0' }))
    out.busyExclusive = await failing(() => openTap({ name: 'rkb0', exclusive: true }))
    out.exclusiveOnBridge = await failing(() => openTap({ name: 'rkbr0', exclusive: true }))
    out.mqOnHeldSq = await failing(() => openTap({ name: 'rkb0', queues: 2 }))
    out.mqOnPersistentSq = await failing(() => openTap({ name: 'rkps0', queues: 4 }))
    out.sqOnMq = await failing(() => openTap({ name: 'rkm0' }))
    out.e2big = await failing(() => openTap({ name: 'rk2b0', queues: 2 }))
    out.e2bigQueues = ipInfo('rk2b0').numqueues
    out.e2bigPartial = await failing(() => openTapAsync({ name: 'rk2c0', queues: 2 }))
    out.e2bigPartialQueues = ipInfo('rk2c0').numqueues
    out.hasVhost = hasVhost
    out.vhostMissing = hasVhost ? null : await failing(() => openTap({ vhost: true, queues: 4 }))
    out.vhostPathMissing = await failing(() => openTap({ vhost: true, queues: 4, vhostPath: '/nonexistent/vhost-net' }))
    out.vhostPathMissingAsync = await failing(() =>
      openTapAsync({ vhost: true, queues: 2, vhostPath: '/nonexistent/vhost-net' }),
    )
    out.tunPathMissing = await failing(() => openTap({ tunPath: '/nonexistent/net/tun', queues: 4, vhost: 'auto' }))
    out.tunPathMissingAsync = await failing(() => openTapAsync({ name: 'rkx%d', tunPath: '/nonexistent/net/tun' }))
    out.tunPathMissingDelete = await failing(() => deleteTap('rkps0', { tunPath: '/nonexistent/net/tun' }))
    out.tunPathMissingProbe = probeFeatures({ tunPath: '/nonexistent/net/tun' }).raw
    out.tunPathNotTun = await failing(() => openTap({ tunPath: '/dev/null' }))
    out.tunPathDirectory = await failing(() => openTap({ tunPath: '/tmp' }))
    out.veth = await failing(() => openTap({ name: 'rkv0' }))
    out.vethMq = await failing(() => openTap({ name: 'rkv0', queues: 2 }))
    out.vethExclusive = await failing(() => openTap({ name: 'rkv0', exclusive: true }))
    out.vethDelete = await failing(() => deleteTap('rkv0'))
    out.bridge = await failing(() => openTap({ name: 'rkbr0', queues: 3 }))
    out.bridgeDelete = await failing(() => deleteTap('rkbr0'))
    out.tun = await failing(() => openTap({ name: 'rkt0' }))
    out.persistThenNotABridge = await failing(() =>
      openTap({ name: 'rkp0', queues: 2, persist: true, owner: 1000, bridge: 'rkv0' }),
    )
    out.persistThenMtu = await failing(() => openTap({ name: 'rkp1', persist: true, mtu: 65535 }))
    out.survivors = ['rkbr0', 'rkv0', 'rkv1', 'rkt0', 'rkps0', 'rkb0', 'rkm0'].filter((n) => links().includes(n))
    out.vethKind = sysfs('rkv0', 'type')
    return out
  } finally {
    for (const d of [held, heldMq, full, almost]) d.close()
  }
}

// ---------------------------------------------------------------------------
// Without privileges: children as uid 65534 with no capabilities
// ---------------------------------------------------------------------------

export interface Step {
  label: string
  fn: string
  args?: unknown[]
  methods?: unknown[][]
}

/** A world-readable copy of the package (stagedPackage) with unpriv.js and tun nodes with chosen modes. */
export function unprivilegedKit(repo: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-rel-'))
  chmodSync(dir, 0o755)
  cpSync(stagedPackage(), dir, { recursive: true })
  cpSync(join(repo, '__test__', 'fixtures', 'reliability', 'unpriv.js'), join(dir, 'unpriv.js'))
  sh('mknod', '-m', '666', join(dir, 'tun666'), 'c', '10', '200')
  sh('mknod', '-m', '600', join(dir, 'tun600'), 'c', '10', '200')
  sh('chmod', '-R', 'a+rX', dir)
  return dir
}

/** Run unpriv.js in a new mount namespace: `setup` (shell) first, then as `uid` (or root when null). */
export function child(dir: string, setup: string, uid: number | null, steps: Step[]) {
  const priv =
    uid === null ? '' : `setpriv --reuid ${uid} --regid ${uid} --clear-groups --inh-caps=-all --bounding-set=-all `
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  const script = `${setup} && exec ${priv}${q(process.execPath)} ${q(`${dir}/unpriv.js`)} ${q(dir)} ${q(JSON.stringify(steps))}`
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8' })
  const line = r.stdout.trim().split('\n').pop() || '{}'
  const parsed = JSON.parse(line)
  if (parsed.fatal || r.status !== 0)
    throw new Error(`unprivileged child failed (${r.status}): ${parsed.fatal ?? ''}\n${r.stderr}`)
  return parsed
}

export function unprivileged(repo: string) {
  sh('ip', 'link', 'add', 'rkbr1', 'type', 'bridge')
  // Persistent devices: owned by uid 65534, by group 65534, by uid 65533, and by nobody (two).
  openTap({ name: 'rown0', queues: 2, persist: true, owner: 65534, vnetHdr: true }).close()
  openTap({ name: 'rgrp0', persist: true, group: 65534 }).close()
  openTap({ name: 'roth0', persist: true, owner: 65533 }).close()
  // Made with ip, as `ip tuntap add` without user/group does: no owner, no group.
  sh('ip', 'tuntap', 'add', 'dev', 'rroot0', 'mode', 'tap')
  openTap({ name: 'rroot1', persist: true }).close()
  // vmtap's default for persist without owner/group: owned by the creator (root here).
  openTap({ name: 'rdef0', persist: true }).close()
  const ownedBefore = {
    mtu: sysfs('rown0', 'mtu'),
    address: sysfs('rown0', 'address'),
    flags: sysfs('rown0', 'flags'),
    owner: sysfs('rown0', 'owner'),
    group: sysfs('rown0', 'group'),
  }
  const dir = unprivilegedKit(repo)
  try {
    // /dev/net/tun 0666 (as distributions ship it): opening works, creating needs CAP_NET_ADMIN.
    const eperm = child(dir, `mount --bind ${dir}/tun666 /dev/net/tun`, 65534, [
      { label: 'create', fn: 'openTap', args: [{ name: 'rperm0' }] },
      { label: 'createKernelName', fn: 'openTap', args: [] },
      { label: 'createTemplateMq', fn: 'openTap', args: [{ name: 'rperm%d', queues: 4, vhost: 'auto' }] },
      { label: 'createUnique', fn: 'openTap', args: [{ name: 'ru%d', uniqueName: true }] },
      { label: 'createAsync', fn: 'openTapAsync', args: [{ name: 'rperm1', queues: 2 }] },
      { label: 'attachOtherOwner', fn: 'openTap', args: [{ name: 'roth0' }] },
      { label: 'deleteOtherOwner', fn: 'deleteTap', args: ['roth0'] },
      { label: 'attachGroup', fn: 'openTap', args: [{ name: 'rgrp0' }] },
      // Neither owner nor group: the kernel lets anyone who can open /dev/net/tun attach (SECURITY.md).
      { label: 'attachNobodys', fn: 'openTap', args: [{ name: 'rroot0' }] },
      { label: 'deleteNobodys', fn: 'deleteTap', args: ['rroot0'] },
      // ...which is why vmtap makes a persistent device it creates without owner/group the creator's.
      { label: 'attachDefaultOwned', fn: 'openTap', args: [{ name: 'rdef0' }] },
      { label: 'probeOffloads', fn: 'probeOffloads', args: [] },
      {
        label: 'attachOwned',
        fn: 'openTap',
        args: [{ name: 'rown0', queues: 2 }],
        methods: [
          ['getLinkInfo'],
          ['setMtu', 1400],
          ['setLinkUp', true],
          ['setMac', 'fe:00:00:00:00:42'],
          ['attachToBridge', 'rkbr1'],
          ['getVnetHdrSize'],
          ['setVnetHdrSize', 12],
          ['setVnetHdrSize', 10],
          ['setOffloads', { csum: true }],
          ['setOffloads', {}],
          ['setQueueEnabled', 1, false],
          ['setQueueEnabled', 1, true],
          ['setOwner', 65534],
          ['setGroup', 65534],
          ['setPersist', true],
        ],
      },
      { label: 'attachOwnedWithOptions', fn: 'openTap', args: [{ name: 'rown0', queues: 2, up: true }] },
      { label: 'attachOwnedPersist', fn: 'openTap', args: [{ name: 'rown0', queues: 2, persist: true }] },
    ])
    // /dev/net/tun 0600: not even opening it.
    const eacces = child(dir, `mount --bind ${dir}/tun600 /dev/net/tun`, 65534, [
      { label: 'create', fn: 'openTap', args: [] },
      { label: 'attachOwned', fn: 'openTap', args: [{ name: 'rown0', queues: 2 }] },
      { label: 'createAsync', fn: 'openTapAsync', args: [{ queues: 4 }] },
      { label: 'probeFeatures', fn: 'probeFeatures', args: [] },
    ])
    // No /dev/net/tun at all (an empty /dev/net), as root.
    const enoent = child(dir, 'mount -t tmpfs tmpfs /dev/net', null, [
      { label: 'create', fn: 'openTap', args: [] },
      { label: 'createMqVhostAuto', fn: 'openTap', args: [{ name: 'rnt%d', queues: 4, vhost: 'auto' }] },
      { label: 'createAsync', fn: 'openTapAsync', args: [{ name: 'rnt0' }] },
      { label: 'delete', fn: 'deleteTap', args: ['rroot1'] },
      { label: 'probeFeatures', fn: 'probeFeatures', args: [] },
      { label: 'probeOffloads', fn: 'probeOffloads', args: [] },
    ])
    const ownedAfter = {
      mtu: sysfs('rown0', 'mtu'),
      address: sysfs('rown0', 'address'),
      flags: sysfs('rown0', 'flags'),
      owner: sysfs('rown0', 'owner'),
      group: sysfs('rown0', 'group'),
    }
    const brif = readdirSync('/sys/class/net/rkbr1/brif')
    const defaultOwner = sysfs('rdef0', 'owner')
    const stillThere = ['rown0', 'rgrp0', 'roth0', 'rroot0', 'rroot1', 'rdef0'].filter((n) => links().includes(n))
    for (const n of stillThere) deleteTap(n)
    return { eperm, eacces, enoent, ownedBefore, ownedAfter, brif, stillThere, defaultOwner, linksAfter: links() }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------
// Use after close, with the real addon
// ---------------------------------------------------------------------------

/** Count calls into the addon while `fn` runs (as open.spec.ts does). */
async function nativeCalls(fn: () => unknown): Promise<string[]> {
  const n = native() as unknown as Record<string, unknown>
  const seen: string[] = []
  const saved: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(n)) {
    if (typeof v !== 'function') continue
    saved[k] = v
    n[k] = (...args: unknown[]) => {
      seen.push(k)
      return (v as (...a: unknown[]) => unknown)(...args)
    }
  }
  try {
    await fn()
  } finally {
    Object.assign(n, saved)
  }
  return seen
}

const VALID_CALLS: [string, ...unknown[]][] = [
  ['setLinkUp'],
  ['setLinkUp', false],
  ['getLinkInfo'],
  ['getMtu'],
  ['setMtu', 1400],
  ['getMac'],
  ['setMac', 'fe:00:00:00:00:01'],
  ['attachToBridge', 'rubr0'],
  ['detachFromBridge', 'rubr0'],
  ['configure', { mtu: 1400, up: true }],
  ['getVnetHdrSize'],
  ['setVnetHdrSize', 12],
  ['setOffloads', { csum: true }],
  ['setQueueEnabled', 1, false],
  ['setPersist', true],
  ['setOwner', 1000],
  ['setGroup', 1000],
]

export async function useAfterClose() {
  sh('ip', 'link', 'add', 'rubr0', 'type', 'bridge')
  const tap = openTap({ name: 'ruac0', queues: 2, vnetHdr: true })
  const oldFds = [...tap.tapFds]
  tap.close()
  const gone = !links().includes('ruac0')
  // Its fd numbers go to someone else now; a closed device must never touch them.
  const stranger = openSync('/dev/null', 'r')
  const strangerReusesFd = oldFds.includes(stranger)
  const results: Record<string, { name: string; code: string; message: string } | 'returned'> = {}
  let extra: Record<string, unknown> = {}
  const calls = await nativeCalls(async () => {
    for (const [m, ...args] of VALID_CALLS) {
      try {
        ;(tap as unknown as Record<string, (...a: unknown[]) => unknown>)[m](...args)
        results[m] = 'returned'
      } catch (e) {
        const x = e as Error & { code: string }
        results[`${m}(${args.map((a) => JSON.stringify(a)).join(',')})`] = {
          name: x.name,
          code: x.code,
          message: x.message,
        }
      }
    }
    let closeTwice = 'ok'
    try {
      tap.close()
      tap[Symbol.dispose]()
    } catch (e) {
      closeTwice = String(e)
    }
    const closeAsync = await tap.closeAsync().then(
      () => 'resolved',
      (e) => `rejected: ${e}`,
    )
    const asyncDispose = await tap[Symbol.asyncDispose]().then(
      () => 'resolved',
      (e) => `rejected: ${e}`,
    )
    const closeAllResult = await closeAll([tap, tap]).then(
      () => 'resolved',
      (e) => `rejected: ${e}`,
    )
    let handOffErr: unknown = null
    try {
      handOff(tap)
    } catch (e) {
      handOffErr = {
        name: (e as Error).name,
        code: (e as { code: string }).code,
        message: (e as Error).message,
        isTypeError: e instanceof TypeError,
      }
    }
    extra = { closeTwice, closeAsync, asyncDispose, closeAll: closeAllResult, handOff: handOffErr, closed: tap.closed }
  })
  // Closing marks the device closed at once, before the kernel is done.
  const a = openTap({ name: 'ruac1' })
  const pending = a.closeAsync()
  let duringCloseAsync: string | null = null
  try {
    a.getLinkInfo()
  } catch (e) {
    duringCloseAsync = (e as { code: string }).code
  }
  await pending
  const b = openTap({ name: 'ruac2' })
  const c = openTap({ name: 'ruac3', queues: 2 })
  const all = closeAll([b, c])
  let duringCloseAll: string | null = null
  try {
    c.setMtu(1500)
  } catch (e) {
    duringCloseAll = (e as { code: string }).code
  }
  await all
  const strangerIntact = readlinkSync(`/proc/self/fd/${stranger}`) === '/dev/null'
  closeSync(stranger)
  return {
    gone,
    results,
    calls,
    ...extra,
    strangerReusesFd,
    strangerIntact,
    duringCloseAsync,
    duringCloseAll,
    linksAfter: links(),
  }
}

// ---------------------------------------------------------------------------
// The GC backstop (run with --expose-gc)
// ---------------------------------------------------------------------------

export async function gcBackstop(count: number) {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  const warnings: { name: string; code?: string; message: string }[] = []
  process.on('warning', (w: Error & { code?: string }) =>
    warnings.push({ name: w.name, code: w.code, message: w.message }),
  )
  // Warm up what the first open and the first closeAsync allocate (the libuv pool, ...).
  await openTap({ name: 'rgcw0' }).closeAsync()
  gc()
  const fds0 = fdCount()
  const links0 = links()
  // A device closed properly: unregistered, it never warns.
  ;(() => openTap({ name: 'rgcc0', queues: 2 }).close())()
  // Devices nobody closes: only their names and fd numbers are kept.
  const opened = (() => {
    const names: string[] = []
    const fds: number[] = []
    for (let i = 0; i < count; i++) {
      const t: TapDevice = openTap({ name: `rgc${i}`, queues: 4, vhost: true, vhostPath: '/dev/null' })
      names.push(t.ifname)
      fds.push(...t.tapFds, ...t.vhostFds)
    }
    return { names, fds }
  })()
  const whileAlive = { links: opened.names.filter((n) => links().includes(n)).length, fds: fdCount() - fds0 }
  const ours = () => warnings.filter((w) => w.code === 'VMTAP_UNCLOSED_DEVICE')
  const t0 = Date.now()
  // Collect until every device has warned (GC timing is not an event we can wait on otherwise).
  while (ours().length < count && Date.now() - t0 < 30_000) {
    gc()
    await settle()
  }
  const warnedAfterMs = Date.now() - t0
  // The fds are closed off the JS thread (closeAsync); wait for them and the links to go.
  const left = () => ({
    links: opened.names.filter((n) => links().includes(n)),
    tapFds: tapFdsOfProcess(),
    fds: fdCount() - fds0,
  })
  while ((left().links.length || left().tapFds.length || left().fds > 0) && Date.now() - t0 < 30_000) await pause(10)
  const nullFds = opened.fds.filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === '/dev/null'
    } catch {
      return false
    }
  })
  return {
    names: opened.names,
    whileAlive,
    warnings,
    warnedAfterMs,
    releasedAfterMs: Date.now() - t0,
    left: left(),
    nullFdsLeft: nullFds,
    links0,
    linksAfter: links(),
    fds0,
    fdsAfter: fdCount(),
  }
}

// ---------------------------------------------------------------------------
// Concurrency: worker threads and the main thread at once
// ---------------------------------------------------------------------------

function runWorker(perWorker: number, template: string): Promise<{ names: string[]; errors: string[] }> {
  const file = join(__dirname, 'reliability-worker.ts')
  const tsx = require.resolve('tsx/cjs')
  const w = new Worker(`require(${JSON.stringify(tsx)}); require(${JSON.stringify(file)})`, {
    eval: true,
    workerData: { perWorker, template },
  })
  return new Promise((resolve, reject) => {
    let result: { names: string[]; errors: string[] } | undefined
    w.on('message', (m) => (result = m))
    w.on('error', reject)
    w.on('exit', (code) =>
      code === 0 && result ? resolve(result) : reject(new Error(`worker exited ${code} without a result`)),
    )
  })
}

export async function concurrency(workers: number, perWorker: number) {
  const template = 'rc%d'
  // Warm up: a worker, the libuv pool, closeAll's threads. Then the baseline.
  await runWorker(1, template)
  await closeAll([
    await openTapAsync({ name: template, uniqueName: true }),
    await openTapAsync({ name: template, uniqueName: true }),
  ])
  const fds0 = fdCount()
  const links0 = links()
  const t0 = Date.now()
  let running = true
  const jobs = Array.from({ length: workers }, () => runWorker(perWorker, template))
  const all = Promise.all(jobs).finally(() => (running = false))
  const mainNames: string[] = []
  const mainErrors: string[] = []
  let rounds = 0
  while (running) {
    rounds++
    try {
      const batch = await Promise.all(
        Array.from({ length: 8 }, () => openTapAsync({ name: template, uniqueName: true, queues: 2 })),
      )
      for (const d of batch)
        if (d.tapFds.some((fd) => iffOf(fd) !== d.ifname)) mainErrors.push(`${d.ifname}: an fd is not attached to it`)
      mainNames.push(...batch.map((d) => d.ifname))
      await closeAll(batch)
      const one = await openTapAsync({ name: template, uniqueName: true })
      mainNames.push(one.ifname)
      await one.closeAsync()
    } catch (e) {
      mainErrors.push(String((e as Error)?.stack ?? e))
    }
  }
  const results = await all
  const ms = Date.now() - t0
  const names = [...mainNames, ...results.flatMap((r) => r.names)]
  return {
    ms,
    rounds,
    perWorkerCounts: results.map((r) => r.names.length),
    mainCount: mainNames.length,
    total: names.length,
    unique: new Set(names).size,
    badNames: names.filter((n) => !/^rc[0-9]+$/.test(n)).slice(0, 5),
    errors: [...mainErrors, ...results.flatMap((r) => r.errors)].slice(0, 10),
    fds0,
    fdsAfter: fdCount(),
    links0,
    linksAfter: links(),
  }
}

// ---------------------------------------------------------------------------
// fd hygiene: what children see
// ---------------------------------------------------------------------------

interface FdEntry {
  fd: number
  target: string
  iff: string | null
  /** From fdinfo's flags; null where the reporter cannot tell. */
  cloexec: boolean | null
}
type Report = { fds: FdEntry[] }

function readReport(stdout: string): Report {
  return JSON.parse(stdout.trim().split('\n')[0]) as Report
}

/** fd-report.sh's lines ("fd\ttarget\tiff\tflags", then "end"). */
function readShellReport(stdout: string): Report {
  const lines = stdout.split('\n')
  const fds: FdEntry[] = []
  for (const l of lines.slice(0, lines.indexOf('end'))) {
    const [fd, target, iff, flags] = l.split('\t')
    fds.push({
      fd: Number(fd),
      target,
      iff: iff || null,
      cloexec: flags ? (parseInt(flags, 8) & 0o2000000) !== 0 : null,
    })
  }
  return { fds }
}

function collect(child: import('node:child_process').ChildProcess, parse = readReport): Promise<Report> {
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (d) => (out += d))
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(parse(out)) : reject(new Error(`child exited ${code}: ${out}`))))
  })
}

/**
 * Children spawned while taps are open see none of their fds, whatever the
 * API (spawn, exec, execFile, fork, spawnSync, execSync, shell); with
 * handOff() a child sees exactly the fds given, at the advertised numbers.
 * `fixtures` is __test__/fixtures/reliability.
 */
export async function fdHygiene(fixtures: string) {
  const cp = await import('node:child_process')
  const { promisify } = await import('node:util')
  const report = join(fixtures, 'fd-report.js')
  const shellReport = join(fixtures, 'fd-report.sh')
  // No vhost-net here: vhost fds are opened on a stand-in file whose path marks them as ours.
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-fd-'))
  const standIn = join(dir, 'vhost-stand-in')
  writeFileSync(standIn, '')
  const a = openTap({ name: 'rfd0', queues: 3, vhost: true, vhostPath: standIn })
  const b = openTap({ name: 'rfd1' })
  const c = openTap({ name: 'rfd2', queues: 2, vhost: true, vhostPath: standIn }) // never handed
  const node = process.execPath
  const pipes = { stdio: ['pipe', 'pipe', 'pipe'] as ('pipe' | number)[] }
  const ourFdsInParent = [...a.tapFds, ...a.vhostFds, ...b.tapFds, ...c.tapFds, ...c.vhostFds]
  try {
    const without: Record<string, Report> = {}
    without.spawn = await collect(cp.spawn(node, [report], pipes))
    without.spawnShellChild = await collect(cp.spawn(shellReport, [], pipes), readShellReport)
    without.exec = readReport((await promisify(cp.exec)(`'${node}' '${report}'`)).stdout)
    without.execFile = readReport((await promisify(cp.execFile)(node, [report])).stdout)
    without.fork = await collect(cp.fork(report, [], { silent: true }))
    without.spawnSync = readReport(cp.spawnSync(node, [report], { encoding: 'utf8', stdio: 'pipe' }).stdout)
    without.execSync = readReport(cp.execSync(`'${node}' '${report}'`, { encoding: 'utf8', stdio: 'pipe' }))
    without.execFileSyncShellChild = readShellReport(
      cp.execFileSync(shellReport, [], { encoding: 'utf8', stdio: 'pipe' }),
    )
    without.shell = await collect(cp.spawn(`'${node}' '${report}'`, { ...pipes, shell: true }))

    // With the hand-off: a and b, not c. A shell child shows the fds as inherited.
    const h = handOff([a, b], { stdio: 'pipe' })
    const handedChild = cp.spawn(shellReport, ['hold'], { stdio: h.stdio as ('pipe' | number)[] })
    let out = ''
    const handed = await new Promise<Report>((resolve, reject) => {
      handedChild.stdout!.on('data', (d) => {
        out += d
        if (out.split('\n').includes('end')) resolve(readShellReport(out))
      })
      handedChild.on('error', reject)
    })
    const handedNode = await collect(
      cp.spawn(node, [report], { stdio: handOff([a, b], { stdio: 'pipe' }).stdio as ('pipe' | number)[] }),
    )
    const cloexec = (fd: number) =>
      (parseInt(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^flags:\s+([0-7]+)$/m)![1], 8) & 0o2000000) !== 0
    const parentStillCloexec = ourFdsInParent.every(cloexec)
    // A child spawned meanwhile without the hand-off still sees nothing.
    const concurrent = await collect(cp.spawn(node, [report], pipes))
    // The parent lets go of its devices; the child's copies keep them alive until it exits.
    a.close()
    b.close()
    const whileChildHolds = ['rfd0', 'rfd1'].filter((n) => links().includes(n))
    const exited = new Promise<number | null>((r) => handedChild.on('exit', (code) => r(code)))
    handedChild.stdin!.end()
    const exitCode = await exited
    const t0 = Date.now()
    while (['rfd0', 'rfd1'].some((n) => links().includes(n)) && Date.now() - t0 < 10_000) await pause(10)
    return {
      standIn,
      without,
      handOff: { devices: h.devices, fds: h.fds, stdioLength: h.stdio.length },
      handed,
      handedNode,
      parentStillCloexec,
      concurrent,
      whileChildHolds,
      exitCode,
      afterChildExit: ['rfd0', 'rfd1'].filter((n) => links().includes(n)),
    }
  } finally {
    for (const d of [a, b, c]) d.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------
// Soak (soak.spec.ts; run with --expose-gc)
// ---------------------------------------------------------------------------

export async function soak(cycles: number, queues: number, batch: number) {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  /** Memory after a full GC: RSS (and its anonymous part), the JS heap, external memory. */
  const mem = () => {
    gc()
    const m = process.memoryUsage()
    const anon = Number(readFileSync('/proc/self/status', 'utf8').match(/^RssAnon:\s+(\d+)\s+kB$/m)![1]) * 1024
    // What V8's heap has committed: it grows its young generation under sustained allocation, in steps.
    const v8Heap = getHeapStatistics().total_physical_size
    return { rss: m.rss, rssAnon: anon, v8Heap, outsideV8: m.rss - v8Heap, heapUsed: m.heapUsed, external: m.external }
  }
  // The libuv pool and closeAll's threads open fds of their own on first use: warm them up first.
  await closeAll(await Promise.all([openTapAsync({ queues }), openTapAsync({ queues })]))
  const fds0 = fdCount()
  const links0 = links()
  const warm = Math.min(500, Math.floor(cycles / 10))
  let done = 0
  let atWarm: ReturnType<typeof mem> | null = null
  let fdsWarm = fds0
  const samples: ({ cycles: number; fds: number; links: number; ms: number } & ReturnType<typeof mem>)[] = []
  const t0 = Date.now()
  let nextSample = warm
  const bad: string[] = []
  while (done < cycles) {
    const n = Math.min(batch, cycles - done)
    const devices = await Promise.all(Array.from({ length: n }, () => openTapAsync({ queues })))
    for (const d of devices) if (d.tapFds.length !== queues || d.multiQueue !== queues > 1) bad.push(d.ifname)
    await closeAll(devices)
    done += n
    if (atWarm === null && done >= warm) {
      atWarm = mem()
      fdsWarm = fdCount()
    }
    if (done >= nextSample || done === cycles) {
      samples.push({ cycles: done, fds: fdCount(), links: links().length, ms: Date.now() - t0, ...mem() })
      nextSample += Math.max(batch, Math.floor(cycles / 10))
    }
  }
  const end = mem()
  return {
    cycles: done,
    queues,
    batch,
    ms: Date.now() - t0,
    warm,
    fds0,
    fdsWarm,
    fdsEnd: fdCount(),
    links0,
    linksEnd: links(),
    atWarm,
    end,
    samples,
    bad: bad.slice(0, 5),
  }
}
