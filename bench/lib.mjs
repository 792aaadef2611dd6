// Helpers for bench/run.mjs: statistics, formatting, the event-loop probe and
// the line-protocol client for the reference programs (bench/tapref.c,
// bench/ganeti_ref.py).

import { spawn } from 'node:child_process'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'

/** Median, min, max of a list of numbers (ms). */
export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b)
  const n = s.length
  if (n === 0) return null
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
  return { median, min: s[0], max: s[n - 1], n }
}

/** A duration in ms, with as many decimals as make sense. */
export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—'
  const a = Math.abs(ms)
  if (a === 0) return '0'
  if (a < 0.1) return ms.toFixed(4)
  if (a < 10) return ms.toFixed(3)
  if (a < 100) return ms.toFixed(2)
  return ms.toFixed(1)
}

export function fmtRatio(r) {
  if (r === null || r === undefined || !Number.isFinite(r)) return '—'
  return `${r < 10 ? r.toFixed(2) : r.toFixed(1)}×`
}

/** hrtime in ms (fractional). */
export function nowMs() {
  return Number(process.hrtime.bigint()) / 1e6
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * The event-loop probe: a 1 ms interval timer recording the gap between its
 * ticks, plus monitorEventLoopDelay (1 ms resolution). Start it, do the work,
 * stop it. An idle loop's gaps are 1.0-1.7 ms here (libuv's timers have
 * millisecond granularity), so a gap counts as a stall only above
 * STALL_GAP_MS; its whole lateness beyond the 1 ms period is then counted.
 * `blockedMs` = the sum of those; `maxStallMs` = the longest gap minus 1 ms.
 */
export const STALL_GAP_MS = 2
export function startProbe() {
  const gaps = []
  let last = performance.now()
  const h = monitorEventLoopDelay({ resolution: 1 })
  h.enable()
  const timer = setInterval(() => {
    const t = performance.now()
    gaps.push(t - last)
    last = t
  }, 1)
  return function stop() {
    clearInterval(timer)
    gaps.push(performance.now() - last)
    h.disable()
    let blockedMs = 0
    let maxGap = 0
    for (const g of gaps) {
      if (g > STALL_GAP_MS) blockedMs += g - 1
      if (g > maxGap) maxGap = g
    }
    // h.max is 0 when the histogram got no sample at all.
    return {
      blockedMs,
      maxStallMs: Math.max(0, maxGap - 1),
      histMaxMs: h.max > 0 ? h.max / 1e6 : 0,
      ticks: gaps.length,
    }
  }
}

/**
 * A reference program speaking the line protocol of bench/tapref.c: one
 * command per line, one answer per line (nanoseconds, "ok" or "error ...").
 */
export class RefProcess {
  constructor(label, cmd, args) {
    this.label = label
    this.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] })
    this.waiting = []
    this.exited = null
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const w = this.waiting.shift()
      if (w) w(line)
    })
    this.child.on('exit', (code, signal) => {
      this.exited = `${label} exited (${signal ?? code})`
      for (const w of this.waiting.splice(0)) w(`error ${this.exited}`)
    })
    this.child.on('error', (e) => {
      this.exited = `${label}: ${e.message}`
      for (const w of this.waiting.splice(0)) w(`error ${this.exited}`)
    })
  }

  /** Send one command; resolve with its answer line (reject on "error ..."). */
  request(line) {
    if (this.exited) return Promise.reject(new Error(this.exited))
    return new Promise((resolve, reject) => {
      this.waiting.push((answer) => {
        if (answer.startsWith('error')) reject(new Error(`${this.label} ${line}: ${answer}`))
        else resolve(answer)
      })
      this.child.stdin.write(`${line}\n`)
    })
  }

  /** A timed command: its answer (ns) in ms. */
  async ms(line) {
    return Number(await this.request(line)) / 1e6
  }

  async quit() {
    if (this.exited) return
    const done = new Promise((r) => this.child.once('exit', r))
    this.child.stdin.end('quit\n')
    await done
  }
}
