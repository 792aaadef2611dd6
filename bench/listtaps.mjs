// A section of bench/run.mjs: listTaps() over many persistent TUN/TAP devices
// against what a Node tool does today, `ip -d -j link show type tun` and
// JSON.parse of its output. Runs inside run.mjs's network namespace; the
// devices it creates stay until the namespace goes with the benchmark.

import { execFileSync } from 'node:child_process'

import { fmtMs } from './lib.mjs'

export const LIST_DEVICES = 1000

const IP_ARGS = ['-d', '-j', 'link', 'show', 'type', 'tun']

/**
 * Create `devices` persistent taps, then time listTaps() and ip (+ parse),
 * interleaved. Adds rows with `add`; returns the summaries.
 */
export async function benchListTaps({ vmtap, runs, interleave, summarize, add, log, devices = LIST_DEVICES }) {
  log(`bench: listTaps, ${devices} devices`)
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < devices; i++) vmtap.openTap({ name: `lt${i}`, persist: true, vnetHdr: false }).close()
  log(`bench:   created ${devices} persistent taps in ${fmtMs(Number(process.hrtime.bigint() - t0) / 1e6)} ms`)
  const ms = (f) => {
    const a = process.hrtime.bigint()
    const n = f()
    const b = process.hrtime.bigint()
    if (n !== devices) throw new Error(`bench: expected ${devices} devices, got ${n}`)
    return Number(b - a) / 1e6
  }
  const ip = () => execFileSync('ip', IP_ARGS, { maxBuffer: 256 << 20 })
  const s = await interleave(
    {
      vmtap: async () => ms(() => vmtap.listTaps().length),
      ipParse: async () => ms(() => JSON.parse(ip().toString()).length),
      ip: async () =>
        ms(
          () =>
            (
              ip()
                .toString()
                .match(/"ifindex"/g) ?? []
            ).length,
        ),
    },
    runs,
  )
  const r = { vmtap: summarize(s.vmtap), ipParse: summarize(s.ipParse), ip: summarize(s.ip) }
  const section = `List ${devices} TUN/TAP devices (persistent, in one namespace)`
  add({
    section,
    impl: 'vmtap `listTaps()` (one netlink dump, parsed, JS objects)',
    stats: r.vmtap,
    ratio: r.vmtap.median / r.ipParse.median,
    baseline: 'ip + JSON.parse',
  })
  add({
    section,
    impl: '`ip -d -j link show type tun` + `JSON.parse` (execFileSync)',
    stats: r.ipParse,
    note: 'baseline: what a Node tool does without vmtap',
  })
  add({
    section,
    impl: '`ip -d -j link show type tun` alone (execFileSync, output not parsed)',
    stats: r.ip,
    ratio: r.ip.median / r.ipParse.median,
    baseline: 'ip + JSON.parse',
  })
  return r
}
