#!/usr/bin/env node
// vmtap's benchmark: `npm run bench` = `node bench/run.mjs`.
//
// Runs everything inside a network namespace of its own (it re-executes
// itself under `unshare -n`), so no device it makes is visible on the host,
// and sends no traffic beyond its own devices. Compares, in one run:
//   1. open: warm (16 devices back to back, 1/4/64 queues: the target) and
//      cold (one open right after a teardown, 1/4/64/256 queues, labelled
//      cold, with the machine's idle-wake cost beside it): vmtap openTap() vs
//      the C floor (bench/tapref.c: the same syscalls, nothing else) vs
//      Ganeti's Python way (bench/ganeti_ref.py);
//   1b. a whole NIC (4 queues, vnet_hdr, MTU, MAC, bridge, up) in one
//      openTap() vs C doing the same ioctls vs `ip tuntap add` + `ip link set`;
//   1c. many NICs at once: 64 and 256 devices with openTapAsync concurrently
//      vs C sequential and C one thread per device, with the event loop's
//      longest stall;
//   2. sync close of one device;
//   3. teardown of 64 devices: closeAll (several maxThreads), closeAsync on
//      the libuv pool, sync close in a loop, C sequential, C one pthread per
//      device, Python sequential; with the event-loop time blocked;
//   4. packet I/O: frames per second read (tap.frames()) and written
//      (tap.writeFrame()) from Node, 64- and 1500-byte frames, against a C
//      loop of read(2)/write(2) on the same kind of fd (bench/tapref.c), with
//      the event loop's longest stall meanwhile;
//   5. require('vmtap') in fresh processes vs require('node:fs');
//   6. listTaps() over 1,000 persistent devices vs `ip -d -j link show type
//      tun` + JSON.parse (bench/listtaps.mjs).
// Prints the table and writes it into BENCHMARKS.md (between the markers;
// the text outside them is kept).
//
// Options: --quick (few runs, for trying it out; writes nothing unless
// --write), --no-write (print only), --only SECTION[,SECTION...] (those
// alone, printed, never written; sections: open, bringup, many, close,
// teardown, packet, require, listtaps).

import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, loadavg, release, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { fmtMs, fmtRatio, nowMs, RefProcess, sleep, startProbe, STALL_GAP_MS, summarize } from './lib.mjs'
import { benchListTaps, LIST_DEVICES } from './listtaps.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '..')
const argv = process.argv.slice(2)
const QUICK = argv.includes('--quick')
const SECTIONS = ['open', 'bringup', 'many', 'close', 'teardown', 'packet', 'require', 'listtaps']
const ONLY = argv.includes('--only') ? (argv[argv.indexOf('--only') + 1] ?? '').split(',') : null
if (ONLY !== null && (ONLY.length === 0 || ONLY.some((x) => !SECTIONS.includes(x)))) {
  console.error(`bench: --only takes sections separated by commas: ${SECTIONS.join(', ')}`)
  process.exit(2)
}
/** Whether a section runs. */
const want = (section) => ONLY === null || ONLY.includes(section)
const WRITE = ONLY === null && (argv.includes('--write') || (!QUICK && !argv.includes('--no-write')))
const NS_ENV = 'VMTAP_BENCH_NETNS'

// ---------------------------------------------------------------------------
// Outside: re-execute inside a fresh network namespace.
// ---------------------------------------------------------------------------

if (process.env[NS_ENV] !== '1') {
  if (process.platform !== 'linux') {
    console.error('bench: TAP devices are Linux only')
    process.exit(1)
  }
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) {
    console.error('bench: dist/index.js is missing: run `npm run build` first')
    process.exit(1)
  }
  const root = process.getuid?.() === 0
  // As root a plain new network namespace; otherwise a user namespace too
  // (root inside it owns the new network namespace, so it may create TAP
  // devices when /dev/net/tun is 0666 and unprivileged user namespaces are
  // allowed).
  const unshareArgs = [...(root ? [] : ['-r']), '-n', '--', process.execPath, fileURLToPath(import.meta.url), ...argv]
  const t0 = Date.now()
  const r = spawnSync('unshare', unshareArgs, { stdio: 'inherit', env: { ...process.env, [NS_ENV]: '1' } })
  if (r.error) {
    console.error(
      `bench: cannot run unshare (util-linux): ${r.error.message}; the benchmark creates TAP devices only inside a network namespace of its own`,
    )
    process.exit(1)
  }
  if (r.status !== 0) {
    if (!root) console.error('bench: run it as root (it needs CAP_NET_ADMIN in a network namespace of its own)')
    process.exit(r.status ?? 1)
  }
  console.log(`\nbench: finished in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  process.exit(0)
}

// ---------------------------------------------------------------------------
// Inside the namespace.
// ---------------------------------------------------------------------------

// /proc/self/net is this process's namespace (/sys/class/net may show the host's).
const links = readFileSync('/proc/self/net/dev', 'utf8')
  .split('\n')
  .slice(2)
  .map((l) => l.split(':')[0].trim())
  .filter(Boolean)
if (links.some((l) => l !== 'lo')) {
  console.error(`bench: expected a fresh network namespace with only lo, found ${links.join(', ')}`)
  process.exit(1)
}

const requireHere = createRequire(import.meta.url)
const vmtap = requireHere(join(ROOT, 'dist', 'index.js'))
const { openTap, openTapAsync, closeAll } = vmtap
try {
  openTap({ queues: 2, vnetHdr: true }).close()
} catch (e) {
  console.error(`bench: cannot open a multi-queue vnet_hdr TAP device here: ${e.message}`)
  process.exit(1)
}

const R = QUICK
  ? {
      open: 5,
      open256: 3,
      batch: 2,
      bringup: 2,
      many: 2,
      many256: 1,
      close1: 5,
      seq: 1,
      pySeq: 1,
      par: 3,
      threads: 2,
      req: 5,
      pkt: 3,
    }
  : {
      open: 61,
      open256: 31,
      batch: 9,
      bringup: 9,
      many: 9,
      many256: 5,
      close1: 31,
      seq: 5,
      pySeq: 3,
      par: 21,
      threads: 11,
      req: 41,
      pkt: 15,
    }
const WARMUP = QUICK ? 1 : 3
const QUEUES = [1, 4, 64, 256]
const DEVICES = 64

const rows = [] // { section, impl, stats, ratio, baseline, note }
const load0 = loadavg()
const notes = []
const log = (s) => process.stderr.write(`${s}\n`)
const LIST_RUNS = QUICK ? 5 : 41

// --- reference programs ----------------------------------------------------

const work = mkdtempSync(join(tmpdir(), 'vmtap-bench-'))
let cc = null
let ccVersion = null
{
  const src = join(HERE, 'tapref.c')
  const bin = join(work, 'tapref')
  const compiler = process.env.CC || 'cc'
  const r = spawnSync(compiler, ['-O2', '-pthread', '-o', bin, src], { encoding: 'utf8' })
  if (r.error) {
    notes.push(
      `No C compiler (\`${compiler}\`) on this machine: the C floor rows are skipped, and so are the targets measured against them.`,
    )
    log(`bench: ${notes.at(-1)}`)
  } else if (r.status !== 0) {
    notes.push(
      `\`${compiler}\` failed to build bench/tapref.c, the C rows are skipped:\n\n\`\`\`\n${r.stderr.trim()}\n\`\`\``,
    )
    log(`bench: ${notes.at(-1)}`)
  } else {
    cc = new RefProcess('tapref (C)', bin, [])
    ccVersion = (spawnSync(compiler, ['--version'], { encoding: 'utf8' }).stdout ?? '').split('\n')[0]
  }
}
let py = null
let pyVersion = null
{
  const r = spawnSync('python3', ['--version'], { encoding: 'utf8' })
  if (r.error || r.status !== 0) {
    notes.push('No `python3`: the Ganeti-style Python rows are skipped.')
    log(`bench: ${notes.at(-1)}`)
  } else {
    pyVersion = (r.stdout || r.stderr).trim()
    py = new RefProcess('ganeti_ref.py', 'python3', [join(HERE, 'ganeti_ref.py')])
  }
}

/** Run `fns` (label → async () => sample) `runs` times, rotating their order each round. */
async function interleave(fns, runs, warmup = WARMUP) {
  const labels = Object.keys(fns)
  const samples = Object.fromEntries(labels.map((l) => [l, []]))
  const total = warmup + runs
  for (let i = 0; i < total; i++) {
    const order = labels.map((_, k) => labels[(k + i) % labels.length])
    for (const l of order) {
      const v = await fns[l]()
      if (i >= warmup) samples[l].push(v)
    }
  }
  return samples
}

function add(row) {
  rows.push(row)
  return row
}

// --- 1. open -----------------------------------------------------------------
// Warm: BATCH devices opened back to back (no teardown, no sleep in between),
// each open timed, the first of a batch dropped (it follows the previous
// batch's teardown). This is what a launcher starting several NICs pays, and
// the target. Cold: one open right after a teardown the thread waited for;
// on this VM the first JavaScript after the thread slept runs several times
// slower whatever it does (the idle-wake rows measure that), so the cold rows
// are labelled and carry no target.

const BATCH = 16
const openResults = {}
const batchResults = {}
const wake = {}
if (want('open')) {
  // JIT warm-up of the open path (not measured): what a long-running
  // launcher has after its first few devices.
  for (let i = 0; i < (QUICK ? 2 : 20); i++) {
    await closeAll(Array.from({ length: BATCH }, () => openTap({ queues: 2, vnetHdr: true })))
  }
  if (cc) {
    for (const q of [1, 4, 64]) {
      log(`bench: open back to back (warm), ${q} queue(s)`)
      const fns = {
        vmtap: async () => {
          const devs = []
          const t = []
          for (let i = 0; i < BATCH; i++) {
            const t0 = process.hrtime.bigint()
            devs.push(openTap({ queues: q, vnetHdr: true }))
            t.push(Number(process.hrtime.bigint() - t0) / 1e6)
          }
          await closeAll(devs)
          return t.slice(1)
        },
        c: async () => {
          const line = await cc.request(`batch ${q} ${BATCH}`)
          await cc.request('closethreads')
          return line
            .split(' ')
            .slice(1)
            .map((x) => Number(x) / 1e6)
        },
      }
      const s = await interleave(fns, R.batch, 2)
      const vm = summarize(s.vmtap.flat())
      const c = summarize(s.c.flat())
      batchResults[q] = { vm, c }
      const section = `Open, warm: ${BATCH} devices back to back, ${q} queue${q > 1 ? 's' : ''}, vnet_hdr (each open timed, the first of each batch dropped)`
      add({
        section,
        impl: 'vmtap `openTap({ queues, vnetHdr: true })`',
        stats: vm,
        ratio: vm.median / c.median,
        baseline: 'C floor',
        note: `+${fmtMs(vm.median - c.median)} ms per open`,
      })
      add({ section, impl: 'C floor (same syscalls, same order)', stats: c, note: 'baseline' })
    }
  }

  for (const q of QUEUES) {
    log(`bench: open (cold), ${q} queue(s)`)
    const fns = {
      vmtap: async () => {
        const t0 = process.hrtime.bigint()
        const tap = openTap({ queues: q, vnetHdr: true })
        const t1 = process.hrtime.bigint()
        await closeAll([tap]) // not timed
        return Number(t1 - t0) / 1e6
      },
    }
    if (cc) {
      fns.c = async () => {
        const ms = await cc.ms(`open ${q}`)
        await cc.request('close') // not timed
        return ms
      }
    }
    if (py) {
      fns.py = async () => {
        const ms = await py.ms(`open ${q}`)
        await py.request('close')
        return ms
      }
    }
    const s = await interleave(fns, q === 256 ? R.open256 : R.open)
    const vm = summarize(s.vmtap)
    const c = cc ? summarize(s.c) : null
    const p = py ? summarize(s.py) : null
    openResults[q] = { vm, c, p }
    const section = `Open one device, cold (right after a teardown the thread waited for), ${q} queue${q > 1 ? 's' : ''}, vnet_hdr`
    add({
      section,
      impl: 'vmtap `openTap({ queues, vnetHdr: true })`',
      stats: vm,
      ratio: c && vm.median / c.median,
      baseline: 'C floor',
      note: 'cold: see the idle-wake rows',
    })
    add({ section, impl: 'C floor (same syscalls)', stats: c, note: c ? 'baseline' : 'skipped: no cc' })
    add({
      section,
      impl: 'Python, Ganeti `OpenTap`',
      stats: p,
      ratio: c && p && p.median / c.median,
      baseline: 'C floor',
      note: p ? 'no TUNSETOWNER, no TUNGETIFF (Ganeti does neither)' : 'skipped: no python3',
    })
  }
  add({
    section: 'Open, the DIY Node way',
    impl: '`fs.openSync("/dev/net/tun", "r+")` + ioctl',
    stats: null,
    note: 'not possible in pure Node: it has no ioctl(2), so TUNGETFEATURES/TUNSETIFF need a native addon (e.g. the `ioctl` package, compiled on install); not measured rather than faked',
  })

  // The machine's idle-wake cost: the same pure-JavaScript work (openTap's
  // argument checks, no addon call) timed hot, and right after the thread
  // slept 15 ms in Atomics.wait (what a cold open follows).
  {
    log('bench: idle-wake cost')
    const { checkOpenTapOptions } = vmtap
    const work = () => checkOpenTapOptions({ queues: 4, vnetHdr: true, mtu: 1500, up: true })
    const cell = new Int32Array(new SharedArrayBuffer(4))
    const time = () => {
      const t0 = process.hrtime.bigint()
      work()
      return Number(process.hrtime.bigint() - t0) / 1e6
    }
    const hot = []
    const cold = []
    for (let i = 0; i < 200; i++) work()
    for (let i = 0; i < R.open; i++) {
      for (let j = 0; j < 50; j++) work()
      hot.push(time())
      Atomics.wait(cell, 0, 0, 15)
      cold.push(time())
    }
    wake.hot = summarize(hot)
    wake.cold = summarize(cold)
    const section =
      "Idle-wake cost of this machine: openTap's argument checks alone (pure JS, no addon), hot vs right after a 15 ms sleep"
    add({ section, impl: 'hot (after 50 calls in a row)', stats: wake.hot, note: 'baseline' })
    add({
      section,
      impl: 'cold (the first call after `Atomics.wait` 15 ms)',
      stats: wake.cold,
      ratio: wake.cold.median / wake.hot.median,
      baseline: 'hot',
      note: 'what the cold open rows pay before any syscall; not vmtap’s cost',
    })
  }
}

// --- 1b. a whole NIC ------------------------------------------------------------
// A 4-queue vnet_hdr tap with MTU, MAC, a bridge and up: openTap() in one
// call, C doing the same ioctls (one control socket), and what Node tools
// do today: `ip tuntap add` + `ip link set` (two processes; the device then
// has no queue open, QEMU opens it by name). NICS in a row per run, each
// timed, the first of a run dropped (warm, as above).

const BRINGUP_NICS = 8
const BRIDGE = 'bbr0'
const bringup = {}
if (want('bringup') && cc) {
  log('bench: whole NIC bring-up')
  execFileSync('ip', ['link', 'add', BRIDGE, 'type', 'bridge'])
  execFileSync('ip', ['link', 'set', BRIDGE, 'up'])
  const mac = (i) => `fe:54:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`
  const fns = {
    vmtap: async () => {
      const devs = []
      const t = []
      for (let i = 0; i < BRINGUP_NICS; i++) {
        const t0 = process.hrtime.bigint()
        devs.push(openTap({ queues: 4, vnetHdr: true, mtu: 1400, mac: mac(i), bridge: BRIDGE, up: true }))
        t.push(Number(process.hrtime.bigint() - t0) / 1e6)
      }
      await closeAll(devs)
      return t.slice(1)
    },
    c: async () => {
      const t = []
      for (let i = 0; i < BRINGUP_NICS; i++) {
        t.push(await cc.ms(`bringup 4 ${BRIDGE} 1400 ${mac(i)}`))
      }
      await cc.request('closethreads')
      return t.slice(1)
    },
    ip: async () => {
      const t = []
      for (let i = 0; i < BRINGUP_NICS; i++) {
        const t0 = process.hrtime.bigint()
        execFileSync('ip', ['tuntap', 'add', 'dev', `bip${i}`, 'mode', 'tap', 'multi_queue', 'vnet_hdr'])
        execFileSync('ip', ['link', 'set', 'dev', `bip${i}`, 'mtu', '1400', 'address', mac(i), 'master', BRIDGE, 'up'])
        t.push(Number(process.hrtime.bigint() - t0) / 1e6)
      }
      for (let i = 0; i < BRINGUP_NICS; i++) execFileSync('ip', ['link', 'del', `bip${i}`])
      return t.slice(1)
    },
  }
  const s = await interleave(fns, R.bringup, 1)
  for (const k of Object.keys(s)) bringup[k] = summarize(s[k].flat())
  const b = bringup
  const section = `A whole NIC, warm (${BRINGUP_NICS} in a row): 4 queues, vnet_hdr, MTU 1400, MAC, bridge port, up`
  add({
    section,
    impl: 'vmtap `openTap({ queues: 4, vnetHdr: true, mtu, mac, bridge, up: true })`',
    stats: b.vmtap,
    ratio: b.vmtap.median / b.c.median,
    baseline: 'C',
    note: `${fmtRatio(b.ip.median / b.vmtap.median)} faster than ip`,
  })
  add({
    section,
    impl: 'C: the same syscalls (open + TUNSETIFF per queue, TUNSETOWNER, SIOCSIFMTU, SIOCSIFHWADDR, SIOCGIFINDEX, SIOCBRADDIF, SIOCGIFFLAGS/SIOCSIFFLAGS on one socket)',
    stats: b.c,
    note: 'baseline',
  })
  add({
    section,
    impl: '`ip tuntap add ... multi_queue vnet_hdr` + `ip link set ... mtu address master up` (execFileSync)',
    stats: b.ip,
    ratio: b.ip.median / b.c.median,
    baseline: 'C',
    note: 'what Node tools do today; opens no queue (QEMU opens the device by name)',
  })
}

// --- 1c. many NICs at once -------------------------------------------------------
// N single-queue vnet_hdr devices: openTapAsync for all of them at once (the
// libuv pool opens them, 4 threads by default) with the event-loop probe
// running; C one after the other and C one pthread per device. The teardown
// after each run is not timed.

const MANY = [64, 256]
const many = {}
if (want('many') && cc) {
  for (const n of MANY) {
    log(`bench: ${n} NICs at once`)
    const fns = {
      async: async () => {
        const stop = startProbe()
        await sleep(5)
        const t0 = nowMs()
        const devs = await Promise.all(Array.from({ length: n }, () => openTapAsync({ vnetHdr: true })))
        const ms = nowMs() - t0
        await sleep(3)
        const pr = stop()
        await closeAll(devs)
        return { ms, ...pr }
      },
      sync: async () => {
        const t0 = nowMs()
        const devs = Array.from({ length: n }, () => openTap({ vnetHdr: true }))
        const ms = nowMs() - t0
        await closeAll(devs)
        return { ms }
      },
      cSeq: async () => {
        const ms = await cc.ms(`openseq ${n}`)
        await cc.request('closethreads')
        return { ms }
      },
      cThreads: async () => {
        const ms = await cc.ms(`openthreads ${n}`)
        await cc.request('closethreads')
        return { ms }
      },
      idle: async () => {
        const stop = startProbe()
        await sleep(5)
        await sleep(50)
        return { ms: 50, ...stop() }
      },
    }
    const s = await interleave(fns, n > 64 ? R.many256 : R.many, 1)
    const m = {}
    for (const k of Object.keys(s)) m[k] = summarize(s[k].map((x) => x.ms))
    m.stall = summarize(s.async.map((x) => x.maxStallMs))
    m.blocked = summarize(s.async.map((x) => x.blockedMs))
    m.idleStall = summarize(s.idle.map((x) => x.maxStallMs))
    many[n] = m
    const section = `${n} NICs at once (1 queue each, vnet_hdr), total time`
    add({
      section,
      impl: `vmtap \`await Promise.all(${n} × openTapAsync())\` (libuv pool, 4 threads)`,
      stats: m.async,
      ratio: m.async.median / m.cSeq.median,
      baseline: 'C sequential',
      note: `longest event-loop stall ${fmtMs(m.stall.median)} ms (max ${fmtMs(m.stall.max)}), loop blocked ${fmtMs(m.blocked.median)} ms in all; an idle loop meanwhile: ${fmtMs(m.idleStall.median)} ms; ${fmtRatio(m.async.median / m.cThreads.median)} of C thread per device`,
    })
    add({
      section,
      impl: `vmtap \`openTap()\` × ${n}, sync (the loop blocked throughout)`,
      stats: m.sync,
      ratio: m.sync.median / m.cSeq.median,
      baseline: 'C sequential',
    })
    add({ section, impl: 'C, one after the other', stats: m.cSeq, note: 'baseline' })
    add({
      section,
      impl: 'C, one pthread per device',
      stats: m.cThreads,
      ratio: m.cThreads.median / m.cSeq.median,
      baseline: 'C sequential',
      note: 'the kernel serialises device creation (RTNL): threads add contention, not speed',
    })
  }
}

// --- 2. close of one device ------------------------------------------------

if (want('close')) {
  log('bench: close of one device')
  const fns = {
    vmtap: async () => {
      const tap = openTap({ vnetHdr: true })
      const t0 = process.hrtime.bigint()
      tap.close()
      return Number(process.hrtime.bigint() - t0) / 1e6
    },
  }
  if (cc) {
    fns.c = async () => {
      await cc.request('open 1')
      return cc.ms('close')
    }
  }
  if (py) {
    fns.py = async () => {
      await py.request('open 1')
      return py.ms('close')
    }
  }
  const s = await interleave(fns, R.close1)
  const vm = summarize(s.vmtap)
  const c = cc ? summarize(s.c) : null
  const p = py ? summarize(s.py) : null
  const section = 'Close one device (1 queue), sync'
  add({ section, impl: 'vmtap `tap.close()`', stats: vm, ratio: c && vm.median / c.median, baseline: 'C close()' })
  add({ section, impl: 'C `close()`', stats: c, note: c ? 'baseline' : 'skipped: no cc' })
  add({
    section,
    impl: 'Python `os.close()`',
    stats: p,
    ratio: c && p && p.median / c.median,
    baseline: 'C close()',
    note: p ? '' : 'skipped: no python3',
  })
}

// --- 3. teardown of 64 devices ----------------------------------------------

const teardown = {}
if (want('teardown')) {
  log(`bench: teardown of ${DEVICES} devices`)
  const openMany = () => Array.from({ length: DEVICES }, () => openTap({ vnetHdr: true }))

  /** Time an async teardown of 64 fresh vmtap devices with the event-loop probe running. */
  const probed = (start) => async () => {
    const devs = openMany()
    await sleep(5)
    const stop = startProbe()
    // Let the probe and monitorEventLoopDelay tick first: the histogram
    // records nothing for a stall that starts before its first tick.
    await sleep(5)
    const t0 = nowMs()
    const p = start(devs)
    const callMs = nowMs() - t0
    await p
    const ms = nowMs() - t0
    await sleep(3) // let the probe's timer and the histogram see a stall that ended just now
    const pr = stop()
    return { ms, callMs, ...pr }
  }
  const variants = {
    closeAll: { runs: R.par, fn: probed((d) => closeAll(d)) },
    closeAll8: { runs: R.threads, fn: probed((d) => closeAll(d, { maxThreads: 8 })) },
    closeAll32: { runs: R.threads, fn: probed((d) => closeAll(d, { maxThreads: 32 })) },
    closeAll64: { runs: R.threads, fn: probed((d) => closeAll(d, { maxThreads: 64 })) },
    closeAsync: { runs: R.threads, fn: probed((d) => Promise.all(d.map((x) => x.closeAsync()))) },
    syncLoop: {
      runs: R.seq,
      fn: probed((d) => {
        for (const x of d) x.close()
        return Promise.resolve()
      }),
    },
    idle: {
      runs: R.par,
      fn: async () => {
        const stop = startProbe()
        await sleep(5)
        const t0 = nowMs()
        await sleep(60)
        return { ms: nowMs() - t0, callMs: 0, ...stop() }
      },
    },
  }
  if (cc) {
    variants.cSeq = {
      runs: R.seq,
      fn: async () => {
        await cc.request(`openmany ${DEVICES}`)
        await sleep(5)
        return { ms: await cc.ms('closeseq') }
      },
    }
    variants.cThreads = {
      runs: R.par,
      fn: async () => {
        await cc.request(`openmany ${DEVICES}`)
        await sleep(5)
        return { ms: await cc.ms('closethreads') }
      },
    }
  }
  if (py) {
    variants.pySeq = {
      runs: R.pySeq,
      fn: async () => {
        await py.request(`openmany ${DEVICES}`)
        await sleep(5)
        return { ms: await py.ms('closeseq') }
      },
    }
  }
  // Warm-up: one of each cheap variant.
  for (const k of ['closeAll', 'closeAsync', 'idle', 'cThreads']) if (variants[k]) await variants[k].fn()
  const keys = Object.keys(variants)
  const samples = Object.fromEntries(keys.map((k) => [k, []]))
  const rounds = Math.max(...keys.map((k) => variants[k].runs))
  for (let i = 0; i < rounds; i++) {
    const order = keys.map((_, j) => keys[(j + i) % keys.length]).filter((k) => variants[k].runs > i)
    for (const k of order) {
      samples[k].push(await variants[k].fn())
      await sleep(20) // let the kernel's deferred work of the last teardown settle
    }
    log(`bench:   round ${i + 1}/${rounds}`)
  }
  for (const k of keys) {
    const s = samples[k]
    teardown[k] = {
      time: summarize(s.map((x) => x.ms)),
      blocked: s[0]?.blockedMs === undefined ? null : summarize(s.map((x) => x.blockedMs)),
      maxStall: s[0]?.maxStallMs === undefined ? null : summarize(s.map((x) => x.maxStallMs)),
      histMax: s[0]?.histMaxMs === undefined ? null : summarize(s.map((x) => x.histMaxMs)),
      call: s[0]?.callMs === undefined ? null : summarize(s.map((x) => x.callMs)),
    }
  }
  const t = teardown
  const cT = t.cThreads?.time
  const section = `Teardown of ${DEVICES} devices (1 queue each)`
  const blockedNote = (k) => {
    const b = t[k].blocked
    return `loop blocked ${fmtMs(b.median)} ms [${fmtMs(b.min)}–${fmtMs(b.max)}]; longest stall ${fmtMs(t[k].maxStall.median)} ms (monitorEventLoopDelay max ${fmtMs(t[k].histMax.median)} ms); the call itself returned after ${fmtMs(t[k].call.median)} ms`
  }
  add({
    section,
    impl: 'vmtap `await closeAll(devices)` (maxThreads 128, default)',
    stats: t.closeAll.time,
    ratio: cT && t.closeAll.time.median / cT.median,
    baseline: 'C thread per device',
    note: blockedNote('closeAll'),
  })
  for (const n of [8, 32, 64]) {
    const k = `closeAll${n}`
    add({
      section,
      impl: `vmtap \`closeAll(devices, { maxThreads: ${n} })\``,
      stats: t[k].time,
      ratio: cT && t[k].time.median / cT.median,
      baseline: 'C thread per device',
      note: blockedNote(k),
    })
  }
  add({
    section,
    impl: 'vmtap `Promise.all(devices.map(d => d.closeAsync()))` (libuv pool, 4 threads)',
    stats: t.closeAsync.time,
    ratio: cT && t.closeAsync.time.median / cT.median,
    baseline: 'C thread per device',
    note: blockedNote('closeAsync'),
  })
  add({
    section,
    impl: 'vmtap `for (d of devices) d.close()` (sync)',
    stats: t.syncLoop.time,
    ratio: cT && t.syncLoop.time.median / cT.median,
    baseline: 'C thread per device',
    note: blockedNote('syncLoop'),
  })
  add({ section, impl: 'C, one pthread per device', stats: cT ?? null, note: cT ? 'baseline' : 'skipped: no cc' })
  add({
    section,
    impl: 'C, sequential `close()`',
    stats: t.cSeq?.time ?? null,
    ratio: cT && t.cSeq && t.cSeq.time.median / cT.median,
    baseline: 'C thread per device',
    note: cT ? '' : 'skipped: no cc',
  })
  add({
    section,
    impl: 'Python, sequential `os.close()` (Ganeti)',
    stats: t.pySeq?.time ?? null,
    ratio: cT && t.pySeq && t.pySeq.time.median / cT.median,
    baseline: 'C thread per device',
    note: t.pySeq ? '' : 'skipped: no python3',
  })
  add({
    section,
    impl: 'the probe on an idle loop (60 ms sleep)',
    stats: null,
    note: `loop blocked ${fmtMs(t.idle.blocked.median)} ms [${fmtMs(t.idle.blocked.min)}–${fmtMs(t.idle.blocked.max)}]; longest stall ${fmtMs(t.idle.maxStall.median)} ms (monitorEventLoopDelay max ${fmtMs(t.idle.histMax.median)} ms): the probe's floor on this machine`,
  })
}

// --- 4. packet I/O -----------------------------------------------------------
// Reading: the device's queue is filled with N frames by the C helper
// (AF_PACKET, qdisc bypassed, txqueuelen raised so none is dropped; not
// timed), then drained; the C floor fills a device of its own and drains it
// with read(2). Writing: N frames of nobody's (ethertype 0x88b5, dropped by
// the kernel on receive) written to an up device; Node awaits each
// writeFrame and lets the loop run every 64 frames (a producer that never
// yields would hold the loop however fast each write is). An idle loop is
// probed for as long, interleaved with them: the stall floor of the machine.

const PKT_FRAMES = 20000
const PKT_SIZES = [64, 1500]
const PKT_YIELD = 64
const packet = {}
if (cc && want('packet')) {
  const { openTap: open } = vmtap
  const frameOf = (size) => {
    const f = Buffer.alloc(size, 0x5a)
    f.set([0x02, 0, 0, 0, 0, 0x99, 0x02, 0, 0, 0, 0, 0x98, 0x88, 0xb5])
    return f
  }
  const nodeRead = (size) => async () => {
    const tap = open({ name: 'bpkt0', vnetHdr: false, up: true })
    try {
      const filled = Number(await cc.request(`fill bpkt0 ${size} ${PKT_FRAMES}`))
      if (filled !== PKT_FRAMES) throw new Error(`the queue took ${filled} of ${PKT_FRAMES} frames`)
      const stop = startProbe()
      await sleep(5)
      const t0 = nowMs()
      let n = 0
      for await (const _ of tap.frames(0, { highWaterMark: 1024 })) if (++n >= PKT_FRAMES) break
      const ms = nowMs() - t0
      await sleep(3)
      return { ms, ...stop() }
    } finally {
      tap.close()
    }
  }
  const nodeWrite = (size) => async () => {
    const tap = open({ name: 'bpkt1', vnetHdr: false, up: true })
    const f = frameOf(size)
    try {
      const stop = startProbe()
      await sleep(5)
      const t0 = nowMs()
      for (let i = 1; i <= PKT_FRAMES; i++) {
        await tap.writeFrame(f)
        if (i % PKT_YIELD === 0) await new Promise((r) => setImmediate(r))
      }
      const ms = nowMs() - t0
      await sleep(3)
      return { ms, ...stop() }
    } finally {
      tap.close()
    }
  }
  for (const size of PKT_SIZES) {
    log(`bench: packet I/O, ${size}-byte frames`)
    const s = await interleave(
      {
        nodeRead: nodeRead(size),
        cRead: async () => ({ ms: await cc.ms(`pktread ${size} ${PKT_FRAMES}`) }),
        nodeWrite: nodeWrite(size),
        cWrite: async () => ({ ms: await cc.ms(`pktwrite ${size} ${PKT_FRAMES}`) }),
        idle: async () => {
          const stop = startProbe()
          await sleep(100)
          return { ms: 100, ...stop() }
        },
      },
      R.pkt,
    )
    const fps = (ms) => PKT_FRAMES / (ms / 1000)
    const sum = (k, f) => summarize(s[k].map(f))
    packet[size] = {
      nodeRead: sum('nodeRead', (x) => x.ms),
      cRead: sum('cRead', (x) => x.ms),
      nodeWrite: sum('nodeWrite', (x) => x.ms),
      cWrite: sum('cWrite', (x) => x.ms),
      readStall: sum('nodeRead', (x) => x.maxStallMs),
      writeStall: sum('nodeWrite', (x) => x.maxStallMs),
      idleStall: sum('idle', (x) => x.maxStallMs),
      fps,
    }
    const p = packet[size]
    const section = `Packet I/O, ${PKT_FRAMES} frames of ${size} bytes (time for all of them)`
    const kfps = (st) => `${(fps(st.median) / 1000).toFixed(0)}k frames/s`
    add({
      section,
      impl: 'vmtap read: `for await (const f of tap.frames())`',
      stats: p.nodeRead,
      ratio: p.nodeRead.median / p.cRead.median,
      baseline: 'C read(2) loop',
      note: `${kfps(p.nodeRead)}; longest event-loop stall ${fmtMs(p.readStall.median)} ms (max ${fmtMs(p.readStall.max)})`,
    })
    add({ section, impl: 'C `read(2)` loop (same fd kind)', stats: p.cRead, note: `${kfps(p.cRead)}; baseline` })
    add({
      section,
      impl: `vmtap write: \`await tap.writeFrame(f)\`, the loop let run every ${PKT_YIELD}`,
      stats: p.nodeWrite,
      ratio: p.nodeWrite.median / p.cWrite.median,
      baseline: 'C write(2) loop',
      note: `${kfps(p.nodeWrite)}; longest event-loop stall ${fmtMs(p.writeStall.median)} ms (max ${fmtMs(p.writeStall.max)})`,
    })
    add({ section, impl: 'C `write(2)` loop (same fd kind)', stats: p.cWrite, note: `${kfps(p.cWrite)}; baseline` })
    add({
      section,
      impl: 'the probe on an idle loop (100 ms, interleaved with these runs)',
      stats: null,
      note: `longest stall ${fmtMs(p.idleStall.median)} ms (max ${fmtMs(p.idleStall.max)}): the machine's floor meanwhile`,
    })
  }
}

await cc?.quit()
await py?.quit()

// --- 5. require time --------------------------------------------------------

const req = {}
if (want('require')) {
  log('bench: require time')
  const script = (what) =>
    `const t0=process.hrtime.bigint();${what};const t1=process.hrtime.bigint();process.stdout.write(String(Number(t1-t0)/1e6))`
  const scripts = {
    vmtap: script("require('vmtap')"),
    fs: script("require('node:fs')"),
    native: `require('vmtap');const {native}=require('vmtap/dist/lib/native.js');const t0=process.hrtime.bigint();native();const t1=process.hrtime.bigint();process.stdout.write(String(Number(t1-t0)/1e6))`,
  }
  const run = (k) => async () =>
    Number(execFileSync(process.execPath, ['-e', scripts[k]], { cwd: ROOT, encoding: 'utf8' }))
  const s = await interleave({ vmtap: run('vmtap'), fs: run('fs'), native: run('native') }, R.req, 2)
  for (const k of Object.keys(s)) req[k] = summarize(s[k])
  const section = '`require()` in a fresh `node -e` process (the call itself, process.hrtime around it)'
  add({
    section,
    impl: "`require('vmtap')`",
    stats: req.vmtap,
    note: `${fmtMs(req.vmtap.median - req.fs.median)} ms more than the baseline`,
  })
  add({ section, impl: "`require('node:fs')` (baseline)", stats: req.fs, note: 'baseline' })
  add({
    section,
    impl: "first `native()` after `require('vmtap')` (loads the .node addon)",
    stats: req.native,
    note: 'paid on the first openTap/probe call, not by require',
  })
}

rmSync(work, { recursive: true, force: true })

// --- 5. listTaps over 1,000 devices -----------------------------------------

const list = want('listtaps') ? await benchListTaps({ vmtap, runs: LIST_RUNS, interleave, summarize, add, log }) : null

// --- targets ------------------------------------------------------------------

const targets = []
const target = (name, measured, limit, ok) =>
  targets.push({ name, measured, limit, result: ok === null ? 'SKIP' : ok ? 'PASS' : 'MISS' })
for (const q of [1, 4, 64]) {
  const b = batchResults[q]
  if (!b) continue
  const r = b.vm.median / b.c.median
  target(
    `warm open (${BATCH} back to back), ${q} queue${q > 1 ? 's' : ''}: vmtap / C floor`,
    `${fmtRatio(r)} (${fmtMs(b.vm.median)} vs ${fmtMs(b.c.median)} ms)`,
    '≤ 1.10×',
    r <= 1.1,
  )
}
if (bringup.vmtap) {
  const b = bringup
  const r = b.vmtap.median / b.c.median
  target(
    'a whole NIC (4 queues, MTU, MAC, bridge, up): vmtap / C',
    `${fmtRatio(r)} (${fmtMs(b.vmtap.median)} vs ${fmtMs(b.c.median)} ms)`,
    '≤ 1.15×',
    r <= 1.15,
  )
  const x = b.ip.median / b.vmtap.median
  target(
    'a whole NIC: speed-up over `ip tuntap add` + `ip link set` (reported)',
    `${fmtRatio(x)} (${fmtMs(b.ip.median)} vs ${fmtMs(b.vmtap.median)} ms)`,
    '> 1×',
    x > 1,
  )
}
for (const n of MANY) {
  const m = many[n]
  if (!m) continue
  target(
    `${n} NICs at once with openTapAsync: longest event-loop stall (median of runs; max)`,
    `${fmtMs(m.stall.median)} ms (max ${fmtMs(m.stall.max)} ms); an idle loop meanwhile: ${fmtMs(m.idleStall.median)} ms (max ${fmtMs(m.idleStall.max)} ms); total ${fmtRatio(m.async.median / m.cSeq.median)} of C sequential, ${fmtRatio(m.async.median / m.cThreads.median)} of C thread per device`,
    '≤ 2 ms',
    m.stall.median <= 2,
  )
}
if (teardown.closeAll) {
  const t = teardown
  const cT = t.cThreads?.time
  const r = cT ? t.closeAll.time.median / cT.median : null
  target(
    `closeAll(${DEVICES}) / C one thread per device`,
    cT ? `${fmtRatio(r)} (${fmtMs(t.closeAll.time.median)} vs ${fmtMs(cT.median)} ms)` : 'no C floor',
    '≤ 1.25×',
    cT ? r <= 1.25 : null,
  )
  const speedup = t.syncLoop.time.median / t.closeAll.time.median
  target(
    `closeAll(${DEVICES}) vs sequential sync close: speed-up`,
    `${fmtRatio(speedup)} (${fmtMs(t.syncLoop.time.median)} vs ${fmtMs(t.closeAll.time.median)} ms)`,
    '≥ 10×',
    speedup >= 10,
  )
  const b = t.closeAll.blocked
  target(
    `event loop blocked during closeAll(${DEVICES}) (median of ${b.n} teardowns)`,
    `${fmtMs(b.median)} ms (max ${fmtMs(b.max)}); an idle loop in this run: ${fmtMs(t.idle.blocked.median)} ms (max ${fmtMs(t.idle.blocked.max)})`,
    '≤ 2 ms',
    b.median <= 2,
  )
}
for (const size of PKT_SIZES) {
  const p = packet[size]
  if (!p) continue
  const rr = p.cRead.median / p.nodeRead.median
  const wr = p.cWrite.median / p.nodeWrite.median
  const k = (ms) => `${(p.fps(ms) / 1000).toFixed(0)}k`
  if (size === 1500) {
    target(
      `frames read per second from Node, ${size} bytes / C read(2)`,
      `${fmtRatio(rr)} (${k(p.nodeRead.median)} vs ${k(p.cRead.median)} frames/s)`,
      '≥ 0.50×',
      rr >= 0.5,
    )
    target(
      `frames written per second from Node, ${size} bytes / C write(2)`,
      `${fmtRatio(wr)} (${k(p.nodeWrite.median)} vs ${k(p.cWrite.median)} frames/s)`,
      '≥ 0.50×',
      wr >= 0.5,
    )
  }
  const stall = Math.max(p.readStall.median, p.writeStall.median)
  target(
    `longest event-loop stall during packet I/O, ${size} bytes (median of runs; max)`,
    `${fmtMs(stall)} ms (max ${fmtMs(Math.max(p.readStall.max, p.writeStall.max))} ms); an idle loop meanwhile: ${fmtMs(p.idleStall.median)} ms (max ${fmtMs(p.idleStall.max)} ms)`,
    '≤ 2 ms',
    stall <= 2,
  )
}
if (req.vmtap) {
  target(
    "require('vmtap') (median)",
    `${fmtMs(req.vmtap.median)} ms (baseline require('node:fs') ${fmtMs(req.fs.median)} ms)`,
    '≤ 5 ms',
    req.vmtap.median <= 5,
  )
}
if (list) {
  const r = list.vmtap.median / list.ipParse.median
  target(
    `listTaps() over ${LIST_DEVICES} devices / ip -d -j link show type tun + JSON.parse`,
    `${fmtRatio(r)} (${fmtMs(list.vmtap.median)} vs ${fmtMs(list.ipParse.median)} ms)`,
    '< 1×',
    r < 1,
  )
}

// --- output -------------------------------------------------------------------

function table() {
  const out = []
  let section = null
  out.push('| operation | implementation | median ms | min ms | max ms | runs | ratio (baseline) | notes |')
  out.push('|---|---|--:|--:|--:|--:|---|---|')
  for (const r of rows) {
    const op = r.section === section ? '' : r.section
    section = r.section
    const s = r.stats
    const ratio =
      r.ratio === null || r.ratio === undefined || r.ratio === 0 ? '' : `${fmtRatio(r.ratio)} (${r.baseline})`
    out.push(
      `| ${op} | ${r.impl} | ${s ? fmtMs(s.median) : '—'} | ${s ? fmtMs(s.min) : '—'} | ${s ? fmtMs(s.max) : '—'} | ${s ? s.n : '—'} | ${ratio} | ${r.note ?? ''} |`,
    )
  }
  return out.join('\n')
}

function targetTable() {
  const out = ['| target | measured | limit | result |', '|---|---|---|---|']
  for (const t of targets) out.push(`| ${t.name} | ${t.measured} | ${t.limit} | **${t.result}** |`)
  return out.join('\n')
}

const cpuModel = cpus()[0]?.model ?? 'unknown CPU'
const env = [
  `- command: \`npm run bench\` (= \`node bench/run.mjs\`; as root; it re-executes itself under \`unshare -n\`)${QUICK ? ' — **--quick run: few samples, not for comparison**' : ''}`,
  `- date: ${new Date().toISOString()}`,
  `- machine: ${cpus().length} cores (${cpuModel}), Linux ${release()}, Node ${process.version}`,
  `- load average (1/5/15 min) at start ${load0.map((x) => x.toFixed(2)).join(' / ')}, at end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(
      ' / ',
    )} (other work on the machine inflates and spreads the figures; the ratios compare runs interleaved in time)`,
  `- references: ${ccVersion ? `C built with \`${ccVersion}\` (-O2)` : 'no C compiler'}; ${pyVersion ?? 'no python3'}`,
  `- runs: open warm ${R.batch} batches of ${BATCH - 1}, cold ${R.open} (256 queues: ${R.open256}), a whole NIC ${R.bringup} rounds of ${BRINGUP_NICS - 1}, many NICs ${R.many} (256: ${R.many256}), close ${R.close1}, teardown ${R.par} (maxThreads variants and closeAsync ${R.threads}, sequential ${R.seq}, Python ${R.pySeq}), packet I/O ${R.pkt} per size and direction (an idle probe between them), require ${R.req}, listTaps ${LIST_RUNS}; after ${WARMUP} warm-up runs; implementations interleaved in rotating order; every figure is the median [min, max] of its runs and each ratio is of medians from this same run`,
  `- event loop: a 1 ms \`setInterval\` probe records the gaps between its ticks; an idle loop's gaps are 1.0–1.7 ms (libuv's ms timers), so a gap above ${STALL_GAP_MS} ms counts as a stall, and "blocked" is the sum of those gaps' lateness beyond 1 ms over the whole teardown (the "idle" row is the probe's floor); medians of the per-run figures, [min–max]. \`monitorEventLoopDelay\` (1 ms resolution) runs alongside; its max is shown for comparison.`,
].join('\n')

const report = [
  '## Results',
  '',
  env,
  '',
  table(),
  '',
  '### Targets',
  '',
  targetTable(),
  ...(notes.length ? ['', '### Notes from this run', '', ...notes.map((n) => `- ${n}`)] : []),
].join('\n')

console.log(`\n${report}\n`)
for (const t of targets) console.log(`${t.result.padEnd(4)}  ${t.name}: ${t.measured} (target ${t.limit})`)

const BEGIN = '<!-- BEGIN bench/run.mjs output: regenerated by `npm run bench`; edit outside these markers -->'
const END = '<!-- END bench/run.mjs output -->'
if (WRITE) {
  const file = join(ROOT, 'BENCHMARKS.md')
  let text = existsSync(file) ? readFileSync(file, 'utf8') : ''
  const block = `${BEGIN}\n${report}\n${END}`
  const a = text.indexOf(BEGIN)
  const b = text.indexOf(END)
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + END.length)
  else text = `# Benchmarks\n\nReproduce with \`npm run bench\` (root; Linux).\n\n${block}\n${text ? `\n${text}` : ''}`
  writeFileSync(file, text)
  console.log(`\nbench: wrote ${file}`)
}
