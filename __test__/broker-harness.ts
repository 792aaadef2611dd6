// Shared by the broker tests: a copy of the built package that uid 65534 can
// read (the checkout may be under a 0700 directory), the broker (`vmtap
// serve`) as a child process inside a network namespace, and clients run as
// uid 65534 without capabilities.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import type { BrokerLogEntry } from '../index'
import { ensureDistBuilt, repoRoot } from './helpers'

/** The unprivileged uid/gid the clients run as. */
export const NOBODY = 65534

/** Run as `uid` (gid the same), no supplementary groups, no capabilities of any kind. */
export function asUser(uid: number = NOBODY, groups?: number[]): string[] {
  return [
    'setpriv',
    `--reuid=${uid}`,
    `--regid=${uid}`,
    ...(groups ? [`--groups=${groups.join(',')}`] : ['--clear-groups']),
    '--inh-caps=-all',
    '--ambient-caps=-all',
    '--bounding-set=-all',
  ]
}

/** The environment for children: no pointer into the checkout. */
export function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NAPI_RS_NATIVE_LIBRARY_PATH
  delete env.NODE_OPTIONS
  return env
}

export interface Stage {
  /** A fresh 0755 directory under /tmp. */
  dir: string
  /** dist/index.js of the copy. */
  index: string
  /** dist/cli.js of the copy. */
  cli: string
  /** Where the broker listens. */
  sock: string
  /** The policy file. */
  policy: string
  /** client.cjs: requestTap as a separate process (see runClient). */
  client: string
  cleanup(): void
}

/** What client.cjs does: requestTap for each request at once, report, hold the devices until stdin ends. */
const CLIENT = `'use strict'
const fs = require('fs')
const [index, sock, json] = process.argv.slice(2)
const { requestTap } = require(index)
const iff = (fd) => (fs.readFileSync('/proc/self/fdinfo/' + fd, 'utf8').match(/^iff:\\s+(\\S+)$/m) || [])[1] || null
Promise.allSettled(JSON.parse(json).map((o) => requestTap(sock, o))).then((rs) => {
  const results = rs.map((r) =>
    r.status === 'fulfilled'
      ? { ok: true, ifname: r.value.ifname, tapFds: r.value.tapFds.length, vhostFds: r.value.vhostFds.length,
          multiQueue: r.value.multiQueue, vnetHdr: r.value.vnetHdr, iff: r.value.tapFds.map(iff) }
      : { ok: false, code: r.reason.code, errorClass: r.reason.constructor.name, message: r.reason.message },
  )
  process.stdout.write(JSON.stringify({ pid: process.pid, uid: process.getuid(), results }) + '\\n')
  process.stdin.on('end', () => {
    for (const r of rs) if (r.status === 'fulfilled') r.value.close()
    process.exit(0)
  })
  process.stdin.resume()
})
`

/** Copy the built package (dist, the addon, commander) to a directory every uid can read. */
export function stageVmtap(): Stage {
  ensureDistBuilt()
  const dir = mkdtempSync('/tmp/vmtap-broker-')
  const addon = readdirSync(repoRoot).filter((f) => /^vmtap\..*\.node$/.test(f))
  if (addon.length === 0) throw new Error('no vmtap.*.node in the checkout: npm run build first')
  cpSync(join(repoRoot, 'dist'), join(dir, 'dist'), { recursive: true })
  for (const f of [...addon, 'package.json']) cpSync(join(repoRoot, f), join(dir, f))
  cpSync(join(repoRoot, 'node_modules', 'commander'), join(dir, 'node_modules', 'commander'), { recursive: true })
  writeFileSync(join(dir, 'client.cjs'), CLIENT)
  const open = (p: string) => {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const q = join(p, e.name)
      if (e.isDirectory()) open(q)
      else chmodSync(q, 0o644)
      if (e.isDirectory()) chmodSync(q, 0o755)
    }
  }
  open(dir)
  chmodSync(dir, 0o755)
  return {
    dir,
    index: join(dir, 'dist', 'index.js'),
    cli: join(dir, 'dist', 'cli.js'),
    sock: join(dir, 'broker.sock'),
    policy: join(dir, 'policy.json'),
    client: join(dir, 'client.cjs'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

/** The broker (`vmtap serve`) running as root inside a namespace; its log lines are parsed as they come. */
export class BrokerProcess {
  readonly lines: BrokerLogEntry[] = []
  stderr = ''
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  #waiters = new Set<() => void>()

  private constructor(readonly child: ChildProcess) {
    let buf = ''
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      buf += s
      let i: number
      while ((i = buf.indexOf('\n')) >= 0) {
        this.lines.push(JSON.parse(buf.slice(0, i)) as BrokerLogEntry)
        buf = buf.slice(i + 1)
      }
      this.#notify()
    })
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s
      this.#notify()
    })
    this.exit = new Promise((resolve) =>
      child.once('close', (code, signal) => {
        this.#notify()
        resolve({ code, signal })
      }),
    )
  }

  /** `ip netns exec NS node NODEFLAGS cli.js serve --socket ... --policy ... FLAGS`, once it says it listens. */
  static async start(stage: Stage, ns: string, policy: unknown, flags: string[] = []): Promise<BrokerProcess> {
    writeFileSync(stage.policy, JSON.stringify(policy))
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        stage.cli,
        'serve',
        '--socket',
        stage.sock,
        '--policy',
        stage.policy,
        ...flags,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() },
    )
    const b = new BrokerProcess(child)
    await b.waitFor(() => /listening on/.test(b.stderr), 'the broker to listen', 20_000)
    return b
  }

  /** The broker's pid (ip netns exec execs it in place). */
  get pid(): number {
    return this.child.pid!
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w()
  }

  /** Resolve when `cond()` holds (checked whenever the broker writes or exits); fail after `timeoutMs`. */
  waitFor(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (cond()) done(null)
        else if (this.child.exitCode !== null || this.child.signalCode !== null)
          done(new Error(`the broker exited while waiting for ${what}:\n${this.stderr}`))
      }
      const timer = setTimeout(
        () => done(new Error(`timed out waiting for ${what}; broker stderr:\n${this.stderr}`)),
        timeoutMs,
      )
      const done = (e: Error | null) => {
        clearTimeout(timer)
        this.#waiters.delete(check)
        if (e) reject(e)
        else resolve()
      }
      this.#waiters.add(check)
      check()
    })
  }

  /** Wait until the broker has logged `n` lines in all. */
  waitForLines(n: number, timeoutMs = 30_000): Promise<void> {
    return this.waitFor(() => this.lines.length >= n, `${n} log lines (have ${this.lines.length})`, timeoutMs)
  }

  /** The broker's open fds. */
  fdCount(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length
  }

  /** VmRSS of the broker, KiB. */
  rssKiB(): number {
    const m = readFileSync(`/proc/${this.pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB$/m)
    if (!m) throw new Error('no VmRSS')
    return Number(m[1])
  }

  /** Send `signal` and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
    return this.exit
  }
}

/** Clients still running (killed by killClients). */
const running = new Set<ChildProcess>()

/** Kill every client still running (after a failed test). */
export function killClients(): void {
  for (const c of running) c.kill('SIGKILL')
  running.clear()
}

/** One result of client.cjs. */
export type ClientResult =
  | { ok: true; ifname: string; tapFds: number; vhostFds: number; multiQueue: boolean; vnetHdr: boolean; iff: string[] }
  | { ok: false; code: string; errorClass: string; message: string }

export interface Client {
  pid: number
  uid: number
  results: ClientResult[]
  /** Close the devices and wait for the client to exit (status 0). */
  release(): Promise<number | null>
}

/**
 * Run client.cjs inside `ns` as `uid` (default 65534; 'root': as is) with
 * `groups` (default none): one requestTap per request, all at once.
 * Resolves once it reported; it holds the devices until release().
 */
export function runClient(
  stage: Stage,
  ns: string,
  requests: unknown[],
  as: { uid?: number | 'root'; groups?: number[] } = {},
): Promise<Client> {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns,
      ...(as.uid === 'root' ? [] : asUser(as.uid ?? NOBODY, as.groups)),
      process.execPath,
      stage.client,
      stage.index,
      stage.sock,
      JSON.stringify(requests),
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv(), cwd: '/' },
  )
  running.add(child)
  let out = ''
  let err = ''
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s))
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      running.delete(child)
      resolve(code)
    }),
  )
  return new Promise((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s
      const i = out.indexOf('\n')
      if (i < 0) return
      const report = JSON.parse(out.slice(0, i)) as Omit<Client, 'release'>
      resolve({
        ...report,
        release: async () => {
          child.stdin!.end()
          return exited
        },
      })
    })
    void exited.then((code) => reject(new Error(`the client exited (${code}) without a report:\n${out}\n${err}`)))
  })
}

/** `ip -n NS -d -j link show` reduced to name, kind, master, owner and queues. */
export interface NsLink {
  ifname: string
  kind?: string
  master?: string
  up: boolean
  address: string
  mtu: number
  tun?: { multi_queue?: boolean; numqueues?: number; persist?: boolean; user?: number; vnet_hdr?: boolean }
}

export function nsLinks(ns: string): NsLink[] {
  const out = spawnJson(['-n', ns, '-d', '-j', 'link', 'show']) as {
    ifname: string
    flags: string[]
    master?: string
    address: string
    mtu: number
    linkinfo?: { info_kind?: string; info_data?: NsLink['tun'] }
  }[]
  // ip prints the owner as a user name when it has one (even with -N).
  const uids = new Map(
    readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((line) => line.split(':'))
      .filter((f) => f.length > 2)
      .map((f) => [f[0], Number(f[2])] as const),
  )
  const numeric = (tun: NsLink['tun']) => {
    const user = tun?.user as number | string | undefined
    return typeof user === 'string' ? { ...tun, user: uids.get(user) ?? -1 } : tun
  }
  return out.map((l) => ({
    ifname: l.ifname,
    kind: l.linkinfo?.info_kind,
    master: l.master,
    up: l.flags.includes('UP'),
    address: l.address,
    mtu: l.mtu,
    ...(l.linkinfo?.info_kind === 'tun' ? { tun: numeric(l.linkinfo.info_data ?? {}) } : {}),
  }))
}

function spawnJson(args: string[]): unknown {
  const r = spawnSync('ip', args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

/** `ip -n NS ARGS...`, which must succeed. */
export function ipIn(ns: string, ...args: string[]): void {
  const r = spawnSync('ip', ['-n', ns, ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ip -n ${ns} ${args.join(' ')}: ${r.stderr}`)
}
