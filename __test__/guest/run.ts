// The test-side half of the end-to-end guest tests: check QEMU, build the
// guest, and run a host-side driver (cli-scenario.ts, hotplug-scenario.ts)
// inside a fresh network namespace that is removed afterwards, with anything
// still running in it.

import { spawn, spawnSync } from 'node:child_process'
import type { ExecutionContext } from 'ava'
import { join } from 'node:path'
import { buildGuest, repoRoot, type Guest } from './build'
import { listLinks, type LinkSummary } from './host'

export const QEMU = 'qemu-system-x86_64'

/** QEMU must run: a missing one fails the test (never skips it). */
export function requireQemu(): void {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' })
  if (r.error || r.status !== 0) {
    throw new Error(
      `${QEMU} does not run (${r.error?.message ?? r.stderr.trim()}): the end-to-end test needs it; ` +
        'install it with: apt-get install --no-install-recommends qemu-system-x86',
    )
  }
}

/** requireQemu(), then the guest (built once, cached in .cache/guest). */
export function prepareGuest(): Guest {
  requireQemu()
  return buildGuest()
}

export function ipNetns(...args: string[]): string {
  const r = spawnSync('ip', ['netns', ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ip netns ${args.join(' ')}: ${r.stderr.trim() || r.error?.message}`)
  return r.stdout
}

export interface DriverOutcome<R> {
  /** The driver's last stdout line, parsed. */
  result: R
  /** The driver's stderr (the guest console as it came, and any crash). */
  stderr: string
  netns: string
  /** The driver's exit status. */
  code: number | null
  /** Wall time of the driver, ms. */
  ms: number
  /** The namespace's links once the driver had exited (before it was deleted). */
  linksAfter: LinkSummary[]
  /** Processes still in the namespace once the driver had exited (killed then). */
  leftoverPids: number[]
}

/**
 * Run `driver` (a file under __test__/guest) with `config` as its JSON
 * argument inside a fresh namespace `vmtap-<tag>-<pid>`; kill it after
 * `guardMs` if it has not finished (the driver's own QEMU timeout comes
 * first). Whatever still runs in the namespace afterwards is killed and
 * the namespace deleted.
 */
export async function runDriver<R>(
  tag: string,
  driver: string,
  config: unknown,
  guardMs: number,
): Promise<DriverOutcome<R>> {
  const netns = `vmtap-${tag}-${process.pid}`
  ipNetns('add', netns)
  try {
    const t0 = Date.now()
    const child = spawn(
      'ip',
      ['netns', 'exec', netns, process.execPath, '--import=tsx', join(__dirname, driver), JSON.stringify(config)],
      // No tsx cache: its asynchronous cache writes would show up in the fd lists.
      { cwd: repoRoot, env: { ...process.env, TSX_DISABLE_CACHE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s))
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s))
    const guard = setTimeout(() => child.kill('SIGKILL'), guardMs)
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', resolve)
    })
    clearTimeout(guard)
    const ms = Date.now() - t0
    const leftoverPids = ipNetns('pids', netns).split(/\s+/).filter(Boolean).map(Number)
    const linksAfter = listLinks(netns)
    const last = stdout.trim().split('\n').at(-1) ?? ''
    let result: R
    try {
      result = JSON.parse(last) as R
    } catch {
      throw new Error(`${driver} exited with ${code} without a result\n--- stdout\n${stdout}\n--- stderr\n${stderr}`)
    }
    return { result, stderr, netns, code, ms, linksAfter, leftoverPids }
  } finally {
    // Anything still running in the namespace is ours (the driver, vmtap, QEMU).
    destroyNetns(netns)
  }
}

/** Kill whatever still runs in `netns` (ours: a driver, vmtap, QEMU) and delete it. */
export function destroyNetns(netns: string): void {
  for (const pid of ipNetns('pids', netns).split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL')
    } catch {
      // already gone
    }
  }
  ipNetns('del', netns)
}

/** What every guest run reports at the end: how QEMU (or vmtap exec) exited, and the guest's own verdict. */
export interface GuestRunEnd {
  exit?: { code: number | null; signal: string | null; timedOut?: boolean }
  guest: { fail?: string; done?: boolean }
}

/**
 * The checks every guest test makes first: the process ran to its end by
 * itself (exit 0, no signal, not timed out) and the guest reported DONE and
 * no failure. `exitMsg` says which process exited.
 */
export function assertGuestRan(
  t: ExecutionContext,
  r: GuestRunEnd,
  exitMsg = 'QEMU powered off by itself',
  doneMsg = 'the guest reached DONE',
): void {
  t.deepEqual(
    r.exit && { code: r.exit.code, signal: r.exit.signal, timedOut: r.exit.timedOut },
    { code: 0, signal: null, timedOut: false },
    exitMsg,
  )
  t.is(r.guest.fail, undefined, 'the guest reported no failure')
  t.true(r.guest.done, doneMsg)
}
