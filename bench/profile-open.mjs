#!/usr/bin/env node
// Where does openTap's time go, next to the C floor? A helper for
// BENCHMARKS.md's analysis (not part of `npm run bench`):
//
//   node bench/profile-open.mjs [queues=1] [runs=101] [gapMs=16]
//
// Runs in a network namespace of its own (re-executes under `unshare -n`).
// Each round, in rotating order:
//   - C floor (bench/tapref.c) `open N`, timed inside C;
//   - vmtap split in phases, each timed with process.hrtime: the JS
//     validation `normalizeOpenOptions()`, the addon call `native().open()`
//     (N-API argument conversion + the Rust core + the kernel + the result
//     object), then the rest of openTap measured as full openTap minus the two;
//   - full `openTap()`;
//   - the same JS validation again, alone, on a warm CPU (no sleep before),
// with `gapMs` of sleeping after each teardown (the untimed teardown in the
// benchmark sleeps ~16 ms in the kernel: the CPU goes cold in between).
// Prints medians.

import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { RefProcess, sleep, summarize } from './lib.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(HERE, '..')
if (process.env.VMTAP_BENCH_NETNS !== '1') {
  const r = spawnSync(
    'unshare',
    ['-n', '--', process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    {
      stdio: 'inherit',
      env: { ...process.env, VMTAP_BENCH_NETNS: '1' },
    },
  )
  process.exit(r.status ?? 1)
}

const [q = 1, runs = 101, gap = 16] = process.argv.slice(2).map(Number)
const vmtap = createRequire(import.meta.url)(join(ROOT, 'dist', 'index.js'))
const native = vmtap.native()
const work = mkdtempSync(join(tmpdir(), 'vmtap-prof-'))
const bin = join(work, 'tapref')
const b = spawnSync('cc', ['-O2', '-pthread', '-o', bin, join(HERE, 'tapref.c')], { stdio: 'inherit' })
if (b.status !== 0) process.exit(1)
const c = new RefProcess('tapref', bin, [])
const hr = () => Number(process.hrtime.bigint()) / 1e6

const s = { c: [], norm: [], nativeOpen: [], full: [], normWarm: [] }
const fns = {
  c: async () => {
    s.c.push(await c.ms(`open ${q}`))
    await c.request('close')
  },
  split: async () => {
    const t0 = hr()
    const o = vmtap.normalizeOpenOptions({ queues: q, vnetHdr: true })
    const t1 = hr()
    const raw = native.open(o.name, o.queues, o.vnetHdr, o.vhost, o.tunPath, o.vhostPath, o.config)
    const t2 = hr()
    s.norm.push(t1 - t0)
    s.nativeOpen.push(t2 - t1)
    await native.closeAll([raw[0]], 1)
  },
  full: async () => {
    const t0 = hr()
    const tap = vmtap.openTap({ queues: q, vnetHdr: true })
    s.full.push(hr() - t0)
    await vmtap.closeAll([tap])
  },
  warm: async () => {
    for (let i = 0; i < 3; i++) vmtap.normalizeOpenOptions({ queues: q, vnetHdr: true })
    const t0 = hr()
    vmtap.normalizeOpenOptions({ queues: q, vnetHdr: true })
    s.normWarm.push(hr() - t0)
  },
}
const keys = Object.keys(fns)
for (let i = 0; i < runs + 5; i++) {
  for (let k = 0; k < keys.length; k++) {
    await fns[keys[(k + i) % keys.length]]()
    await sleep(gap)
  }
  if (i === 4) for (const k of Object.keys(s)) s[k].length = 0
}
await c.quit()
rmSync(work, { recursive: true, force: true })

const m = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, summarize(v).median]))
const us = (ms) => `${(ms * 1000).toFixed(1)} µs`
console.log(`queues ${q}, ${runs} runs, ${gap} ms sleep between operations; medians:`)
console.log(`  C floor (syscalls only)              ${us(m.c)}`)
console.log(
  `  vmtap openTap() total                ${us(m.full)}   (${(m.full / m.c).toFixed(2)}× the C floor, +${us(m.full - m.c)})`,
)
console.log(`    normalizeOpenOptions (JS)          ${us(m.norm)}   (warm CPU, no sleep before: ${us(m.normWarm)})`)
console.log(
  `    native().open (N-API+Rust+kernel)  ${us(m.nativeOpen)}   (+${us(m.nativeOpen - m.c)} over the C floor)`,
)
console.log(`    rest: new TapDevice, call() etc.   ${us(m.full - m.norm - m.nativeOpen)}`)
