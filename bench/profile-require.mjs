#!/usr/bin/env node
// What does `require('vmtap')` cost, piece by piece? A helper for
// BENCHMARKS.md's analysis (not part of `npm run bench`):
//
//   node bench/profile-require.mjs [runs=21]
//
// Each line: the median [min-max] of the require call itself (process.hrtime
// around it) in fresh `node -e` processes, interleaved. Node's own modules
// that vmtap's files pull in are timed alone, as the first require of the
// process, which is what they cost inside require('vmtap').

import { execFileSync } from 'node:child_process'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

import { summarize } from './lib.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const runs = Number(process.argv[2] ?? 21)
const cases = {
  "require('node:fs') (baseline)": "require('node:fs')",
  "require('vmtap')": "require('vmtap')",
  "require('<abs>/dist/index.js') (no package resolution)": `require(${JSON.stringify(`${ROOT}/dist/index.js`)})`,
  "require('node:net') alone": "require('node:net')",
  "require('node:events') alone": "require('node:events')",
  "require('./dist/lib/validate.js') alone": `require(${JSON.stringify(`${ROOT}/dist/lib/validate.js`)})`,
  "require('./dist/lib/handoff.js') alone": `require(${JSON.stringify(`${ROOT}/dist/lib/handoff.js`)})`,
  "require('./dist/lib/qmp.js') alone": `require(${JSON.stringify(`${ROOT}/dist/lib/qmp.js`)})`,
}
const samples = Object.fromEntries(Object.keys(cases).map((k) => [k, []]))
for (let i = 0; i < runs + 2; i++) {
  for (const [k, expr] of Object.entries(cases)) {
    const out = execFileSync(
      process.execPath,
      [
        '-e',
        `const t0=process.hrtime.bigint();${expr};const t1=process.hrtime.bigint();process.stdout.write(String(Number(t1-t0)/1e6))`,
      ],
      { cwd: ROOT, encoding: 'utf8' },
    )
    if (i >= 2) samples[k].push(Number(out))
  }
}
for (const [k, v] of Object.entries(samples)) {
  const s = summarize(v)
  console.log(`${s.median.toFixed(3).padStart(8)} ms  [${s.min.toFixed(3)}–${s.max.toFixed(3)}]  ${k}`)
}
