// Host-side helpers of the end-to-end guest tests. The drivers that use them
// (scenario.ts, cli-scenario.ts, hotplug-scenario.ts) run INSIDE a network
// namespace (`ip netns exec NS node --import=tsx <driver> '<json config>'`), so
// every device, address and packet they make stays in there.

import { type ChildProcess, execFile, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import type { Readable } from 'node:stream'

// ---------------------------------------------------------------------------
// fds and links
// ---------------------------------------------------------------------------

/** The fds of `pid` (default: this process) as "N -> target" (the readdir's own fd excluded). */
export function ownFds(pid: number | 'self' = 'self'): string[] {
  const dir = `/proc/${pid}/fd`
  const out: string[] = []
  for (const fd of readdirSync(dir)) {
    try {
      const target = readlinkSync(`${dir}/${fd}`)
      if (target !== `/proc/${process.pid}/fd`) out.push(`${fd} -> ${target}`)
    } catch {
      // the readdir's own fd, closed by now
    }
  }
  return out
}

export const isTunFd = (entry: string) => /-> \/dev\/(net\/tun|vhost-net)$/.test(entry)

/** /dev/net/tun and /dev/vhost-net fds `pid` holds (default: this process). */
export function tunFdCount(pid: number | 'self' = 'self'): number {
  return ownFds(pid).filter(isTunFd).length
}

export interface TunInfo {
  numqueues?: number
  numdisabled?: number
  vnet_hdr?: boolean
  multi_queue?: boolean
}

/** `ip -d -j link show dev IFNAME`'s tun info_data, or undefined when there is no such link. */
export function linkInfo(ifname: string): TunInfo | undefined {
  const r = spawnSync('ip', ['-d', '-j', 'link', 'show', 'dev', ifname], { encoding: 'utf8' })
  if (r.status !== 0) return undefined
  return JSON.parse(r.stdout)[0]?.linkinfo?.info_data ?? {}
}

/** The fd numbers of `pid` attached to tap `ifname` (fdinfo's `iff:` line), ascending. */
export function tapFdNumbers(pid: number, ifname: string): number[] {
  const out: number[] = []
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').match(/^iff:\s+(\S+)$/m)?.[1] === ifname)
        out.push(Number(fd))
    } catch {
      // closed meanwhile
    }
  }
  return out.sort((a, b) => a - b)
}

/** How many fds of `pid` are attached to tap `ifname`. */
export function tapFdsOf(pid: number, ifname: string): number {
  return tapFdNumbers(pid, ifname).length
}

/** One link of `ip -d -j link show`, reduced to what the tests look at. */
export interface LinkSummary {
  ifname: string
  /** linkinfo.info_kind: 'tun', 'bridge'...; undefined for lo. */
  kind?: string
  master?: string
  up: boolean
  tun?: TunInfo
}

/** Every link of this namespace (`ip -d -j link show`), or of another with `netns`. */
export function listLinks(netns?: string): LinkSummary[] {
  const r = spawnSync('ip', [...(netns ? ['-n', netns] : []), '-d', '-j', 'link', 'show'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ip link show: ${r.stderr.trim()}`)
  return (
    JSON.parse(r.stdout) as {
      ifname: string
      flags: string[]
      master?: string
      linkinfo?: { info_kind?: string; info_data?: TunInfo }
    }[]
  ).map((l) => ({
    ifname: l.ifname,
    kind: l.linkinfo?.info_kind,
    master: l.master,
    up: l.flags.includes('UP'),
    ...(l.linkinfo?.info_kind === 'tun' ? { tun: l.linkinfo.info_data ?? {} } : {}),
  }))
}

export function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`)
}

// ---------------------------------------------------------------------------
// processes
// ---------------------------------------------------------------------------

/** The children of `pid` (from /proc/N/stat; this kernel may lack /proc/N/task/N/children). */
export function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8')
      // pid (comm) state ppid ...: comm may contain spaces and parentheses
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === pid) out.push(Number(d))
    } catch {
      // exited meanwhile
    }
  }
  return out
}

/** The argv of `pid`. */
export function cmdlineOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1)
}

// ---------------------------------------------------------------------------
// ping and TCP
// ---------------------------------------------------------------------------

export function parsePing(output: string): { sent: number; received: number } {
  const m = output.match(/(\d+) packets transmitted, (\d+) (?:packets )?received/)
  return m ? { sent: Number(m[1]), received: Number(m[2]) } : { sent: 0, received: 0 }
}

/** `busybox ping -c COUNT -W 10 ADDR` from this namespace. */
export function ping(addr: string, count: number): Promise<{ sent: number; received: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      '/bin/busybox',
      ['ping', '-c', String(count), '-W', '10', addr],
      { encoding: 'utf8' },
      (_err, stdout, stderr) => {
        const output = `${stdout}${stderr}`
        resolve({ ...parsePing(output), output })
      },
    )
  })
}

export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
}

// ---------------------------------------------------------------------------
// The guest's console
// ---------------------------------------------------------------------------

/** One "VMTAP <NAME> <rest>" line of the guest (init.sh). */
export interface GuestEvent {
  name: string
  rest: string
  /** The key=value words of `rest`. */
  kv: Record<string, string>
  /** ms since the console was attached (≈ since QEMU started). */
  at: number
}

/**
 * Follows the guest's serial console (QEMU's stdout with -nographic): keeps
 * the whole text, parses the "VMTAP <EVENT> ..." lines and lets the host wait
 * for an event. A wait ends with the event, or fails when the guest reports
 * FAIL, when the console ends (QEMU exited) or after its timeout.
 */
export class GuestConsole {
  /** Everything QEMU wrote (stdout and stderr), for failure messages. */
  text = ''
  readonly events: GuestEvent[] = []
  #buf = ''
  #ended = false
  #waiters = new Set<() => void>()
  readonly #t0 = Date.now()

  constructor(stdout: Readable, stderr?: Readable | null, echo: (s: string) => void = (s) => process.stderr.write(s)) {
    stdout.setEncoding('utf8').on('data', (s: string) => {
      this.text += s
      echo(s)
      this.#buf += s
      let i: number
      while ((i = this.#buf.indexOf('\n')) >= 0) {
        this.#line(this.#buf.slice(0, i).replace(/\r$/, ''))
        this.#buf = this.#buf.slice(i + 1)
      }
    })
    stdout.once('end', () => {
      if (this.#buf) this.#line(this.#buf)
      this.#buf = ''
      this.#ended = true
      this.#notify()
    })
    stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.text += s
      echo(s)
    })
  }

  #line(line: string): void {
    const m = line.match(/VMTAP (\w+)(?: (.*))?$/)
    if (!m) return
    const [, name, rest = ''] = m
    const kv = Object.fromEntries([...rest.matchAll(/(\w+)=(\S*)/g)].map((x) => [x[1], x[2]]))
    this.events.push({ name, rest, kv, at: Date.now() - this.#t0 })
    this.#notify()
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w()
  }

  /** The first event named `name` seen so far. */
  get(name: string): GuestEvent | undefined {
    return this.events.find((e) => e.name === name)
  }

  /** The events as "NAME rest" lines. */
  get lines(): string[] {
    return this.events.map((e) => (e.rest ? `${e.name} ${e.rest}` : e.name))
  }

  /** Resolve with the first event named `name` (already seen or to come). */
  waitFor(name: string, timeoutMs: number): Promise<GuestEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = this.get(name)
        const failed = this.get('FAIL')
        if (e) done(null, e)
        else if (failed) done(new Error(`the guest failed before ${name}: ${failed.rest}`))
        else if (this.#ended)
          done(
            new Error(
              `the guest's console ended (QEMU exited) before ${name}; last events: ${this.lines.slice(-3).join(' | ')}`,
            ),
          )
      }
      const timer = setTimeout(
        () =>
          done(
            new Error(
              `no ${name} from the guest within ${timeoutMs} ms; last events: ${this.lines.slice(-3).join(' | ')}`,
            ),
          ),
        timeoutMs,
      )
      const done = (err: Error | null, e?: GuestEvent) => {
        clearTimeout(timer)
        this.#waiters.delete(check)
        if (err) reject(err)
        else resolve(e!)
      }
      this.#waiters.add(check)
      check()
    })
  }
}

/** The console text without terminal escapes, for logs. */
export function plainConsole(text: string): string {
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
}

/** The guest kernel's command line: the console settings plus `vmtap.<key>=<value>` for init.sh. */
export function guestCmdline(params: Record<string, string | number>): string {
  return ['console=ttyS0', 'quiet', 'panic=-1', ...Object.entries(params).map(([k, v]) => `vmtap.${k}=${v}`)].join(' ')
}

/** The QEMU arguments every guest of the suite starts with: TCG, serial console, 256 MiB, the initramfs guest. */
export function guestQemuArgs(g: { kernel: string; initrd: string; smp: number; append: string }): string[] {
  return [
    '-accel',
    'tcg',
    '-nographic',
    '-no-reboot',
    '-m',
    '256',
    '-smp',
    String(g.smp),
    '-kernel',
    g.kernel,
    '-initrd',
    g.initrd,
    '-append',
    g.append,
  ]
}

/** Run a host-side driver as a script: its result (or error) as one JSON line on stdout. */
export function runAsMain<C, R>(mod: NodeModule, run: (config: C) => Promise<R>): void {
  if (require.main !== mod) return
  const config = JSON.parse(process.argv[2] ?? '{}') as C
  run(config).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (e) => {
      process.stdout.write(`${JSON.stringify({ error: (e as Error).stack ?? String(e) })}\n`)
      process.exitCode = 1
    },
  )
}

/** Bytes and SHA-256 of what crossed a connection. */
export interface Transferred {
  bytes: number
  sha256: string
}

/**
 * The host side of the guest's transfers: on `rxPort` it sends `bytes` random
 * bytes to the guest once `releaseGate()` is called (the guest waits on that
 * connection until the host's pings are done), on `txPort` it hashes what the
 * guest sends. `report` receives `sent` and `received`.
 */
export class TransferHost {
  readonly #servers: Server[] = []
  readonly #sockets = new Set<Socket>()
  readonly releaseGate: () => void

  constructor(bytes: number, report: { sent?: Transferred; received?: Transferred }) {
    const payload = randomBytes(bytes)
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    this.releaseGate = release
    const rx = createServer({ allowHalfOpen: true }, (sock: Socket) => {
      this.#track(sock)
      void gate.then(() =>
        sock.end(payload, () => {
          report.sent = { bytes: payload.length, sha256: createHash('sha256').update(payload).digest('hex') }
        }),
      )
    })
    const tx = createServer({ allowHalfOpen: true }, (sock: Socket) => {
      this.#track(sock)
      const hash = createHash('sha256')
      let received = 0
      sock.on('data', (b: Buffer) => {
        hash.update(b)
        received += b.length
      })
      sock.on('end', () => {
        report.received = { bytes: received, sha256: hash.digest('hex') }
        sock.end()
      })
    })
    this.#servers.push(rx, tx)
  }

  #track(sock: Socket): void {
    this.#sockets.add(sock)
    sock.on('close', () => this.#sockets.delete(sock))
    sock.on('error', () => {})
  }

  /** Listen on `host`: rx first, then tx. */
  listen(host: string, rxPort: number, txPort: number): Promise<unknown> {
    return Promise.all([listen(this.#servers[0], rxPort, host), listen(this.#servers[1], txPort, host)])
  }

  /** The guest is gone: nothing more can arrive on a connection still open (a guest killed mid-transfer leaves one), so close them all. */
  async close(): Promise<void> {
    for (const sock of this.#sockets) sock.destroy()
    await Promise.all(this.#servers.map((srv) => new Promise((r) => srv.close(r))))
  }
}

/** How a guest's process ended. */
export interface ProcessExit {
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  ms: number
}

/**
 * A promise of how `child` (started at `started`, Date.now()) ends, handed to
 * `record` as it closes; `timedOut()` says whether the caller's own timer
 * killed it. A spawn error rejects it (the caller awaits it, or not: an
 * unhandled rejection is never left behind).
 */
export function watchExit(
  child: ChildProcess,
  started: number,
  timedOut: () => boolean,
  record: (exit: ProcessExit) => void,
): Promise<void> {
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => {
      record({ code, signal, timedOut: timedOut(), ms: Date.now() - started })
      resolve()
    })
  })
  exited.catch(() => {})
  return exited
}
