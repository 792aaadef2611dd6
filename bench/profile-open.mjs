#!/usr/bin/env node
// Where does a warm openTap's time go, next to the C floor? A helper for
// BENCHMARKS.md's analysis (not part of `npm run bench`):
//
//   node bench/profile-open.mjs [queues=4] [rounds=40] [gapMs=0]
//
// Runs in a network namespace of its own (re-executes under `unshare -n`).
// Each round, in rotating order, opens 16 devices back to back (as the
// benchmark's warm-open target does, the first of each batch dropped) with:
//   - `c`: the C floor (bench/tapref.c `batch`), timed inside C;
//   - `c+threads`: the same C in a process that also has 7 idle threads (as
//     many as a Node process has), to see whether a multi-threaded process
//     pays more in the kernel;
//   - `native`: the addon's `open()` alone (N-API argument conversion, the
//     Rust core, the kernel, the result array), with arguments normalized
//     once beforehand;
//   - `openTap`: the whole public call;
//   - `normalize`: the options check alone, timed between the same kernel
//     work (each check right after an open of a device of its own batch);
//   - `split`: openTap again with the addon's `open` wrapped, so that one
//     call is split into the JavaScript before the addon call, the call,
//     and the JavaScript after it (`new TapDevice`).
// Each batch is closed with closeAll (untimed), then `gapMs` of sleep, so
// the next batch does not share the machine with the previous teardown.
// Prints medians and each one's difference from the C floor.

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

const [q = 4, rounds = 40, gap = 0] = process.argv.slice(2).map(Number)
const BATCH = 16
const req = createRequire(import.meta.url)
const vmtap = req(join(ROOT, 'dist', 'index.js'))
const { native } = req(join(ROOT, 'dist', 'lib', 'native.js'))
const { normalizeOpenOptions } = req(join(ROOT, 'dist', 'lib', 'options.js'))
const addon = native()
const work = mkdtempSync(join(tmpdir(), 'vmtap-prof-'))
const bin = join(work, 'tapref')
const b = spawnSync('cc', ['-O2', '-pthread', '-o', bin, join(HERE, 'tapref.c')], { stdio: 'inherit' })
if (b.status !== 0) process.exit(1)
const c = new RefProcess('tapref', bin, [])
const cThreads = new RefProcess('tapref', bin, [])
await cThreads.request('idlethreads 7')

const opts = { queues: q, vnetHdr: true }
const o = normalizeOpenOptions(opts)
const args = [o.name, o.queues, o.vnetHdr, o.vhost, o.tunPath, o.vhostPath, o.config, o.netns, o.mode]
const hr = () => process.hrtime.bigint()
const ms = (t0, t1) => Number(t1 - t0) / 1e6

const s = { c: [], 'c+threads': [], native: [], openTap: [], normalize: [], before: [], inside: [], after: [] }
const cBatch = (proc, key) => async () => {
  const line = await proc.request(`batch ${q} ${BATCH}`)
  await proc.request('closethreads')
  s[key].push(
    ...line
      .split(' ')
      .slice(1)
      .map((x) => Number(x) / 1e6),
  )
}
const fns = {
  c: cBatch(c, 'c'),
  'c+threads': cBatch(cThreads, 'c+threads'),
  native: async () => {
    const handles = []
    const t = []
    for (let i = 0; i < BATCH; i++) {
      const t0 = hr()
      handles.push(addon.open(...args)[0])
      t.push(ms(t0, hr()))
    }
    await addon.closeAll(handles, 128)
    s.native.push(...t.slice(1))
  },
  openTap: async () => {
    const devs = []
    const t = []
    for (let i = 0; i < BATCH; i++) {
      const t0 = hr()
      devs.push(vmtap.openTap(opts))
      t.push(ms(t0, hr()))
    }
    await vmtap.closeAll(devs)
    s.openTap.push(...t.slice(1))
  },
  normalize: async () => {
    const handles = []
    const t = []
    for (let i = 0; i < BATCH; i++) {
      handles.push(addon.open(...args)[0])
      const t0 = hr()
      normalizeOpenOptions(opts)
      t.push(ms(t0, hr()))
    }
    await addon.closeAll(handles, 128)
    s.normalize.push(...t.slice(1))
  },
  split: async () => {
    const open = addon.open
    let t1 = 0n
    let t2 = 0n
    addon.open = (...a) => {
      t1 = hr()
      const r = open.apply(addon, a)
      t2 = hr()
      return r
    }
    const devs = []
    const t = []
    try {
      for (let i = 0; i < BATCH; i++) {
        const t0 = hr()
        devs.push(vmtap.openTap(opts))
        t.push([ms(t0, t1), ms(t1, t2), ms(t2, hr())])
      }
    } finally {
      addon.open = open
    }
    await vmtap.closeAll(devs)
    for (const [before, inside, after] of t.slice(1)) {
      s.before.push(before)
      s.inside.push(inside)
      s.after.push(after)
    }
  },
}
const keys = Object.keys(fns)
for (let i = 0; i < rounds + 3; i++) {
  for (let k = 0; k < keys.length; k++) {
    await fns[keys[(k + i) % keys.length]]()
    if (gap > 0) await sleep(gap)
  }
  if (i === 2) for (const k of Object.keys(s)) s[k].length = 0 // warm-up rounds
}
await c.quit()
await cThreads.quit()
rmSync(work, { recursive: true, force: true })

const m = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, summarize(v).median]))
const us = (x) => `${(x * 1000).toFixed(1)} µs`
console.log(`${q} queue(s), ${rounds} rounds of ${BATCH - 1} timed opens, ${gap} ms sleep after each batch; medians:`)
for (const k of ['c', 'c+threads', 'native', 'openTap']) {
  const d = m[k] - m.c
  console.log(
    `  ${k.padEnd(10)} ${us(m[k]).padStart(9)}  ${(m[k] / m.c).toFixed(2)}× the C floor (${d < 0 ? '' : '+'}${us(d)})`,
  )
}
console.log(`  normalize  ${us(m.normalize).padStart(9)}  (the options check alone, between opens)`)
console.log(
  `  split: JS before the addon call ${us(m.before)}, the call ${us(m.inside)} (+${us(m.inside - m.c)}), JS after it ${us(m.after)}`,
)
