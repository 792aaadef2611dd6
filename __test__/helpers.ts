// Shared helpers of the ava suite.
import test, { type ExecutionContext, type ImplementationFn } from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

export const isRoot = process.getuid?.() === 0

/**
 * Tests that need root (CAP_NET_ADMIN and /dev/net/tun). Without root they
 * are skipped with the reason in their title, unless VMTAP_REQUIRE_ROOT=1
 * (set by .ci/run), which turns a skip into a failure: CI must run them.
 */
export function rootTest(title: string, fn: ImplementationFn<[]>): void {
  if (isRoot) {
    test.serial(title, fn)
  } else if (process.env.VMTAP_REQUIRE_ROOT === '1') {
    test(title, (t) => t.fail('this test needs root and VMTAP_REQUIRE_ROOT=1 says it must run'))
  } else {
    test.skip(`${title} [skipped: needs root for CAP_NET_ADMIN and /dev/net/tun]`, fn)
  }
}

/** Open file descriptors of this process. */
export function fdCount(): number {
  return readdirSync('/proc/self/fd').length
}

/** Network interfaces the host namespace has (as sysfs shows them). */
export function links(): string[] {
  return readdirSync('/sys/class/net').sort()
}

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`)
}

/** `/sys/class/net/<name>/tun_flags` as a number. */
export function tunFlags(name: string): number {
  return parseInt(readFileSync(`/sys/class/net/${name}/tun_flags`, 'utf8').trim(), 16)
}

/** The `flags:` field of /proc/self/fdinfo/<fd> (octal). */
export function fdFlags(fd: number): number {
  const m = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^flags:\s+([0-7]+)$/m)
  if (!m) throw new Error(`no flags in fdinfo of ${fd}`)
  return parseInt(m[1], 8)
}

/** The `iff:` field of /proc/self/fdinfo/<fd>: the tap device the fd is attached to. */
export function fdIface(fd: number): string | undefined {
  return readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^iff:\s+(\S+)$/m)?.[1]
}

export const O_CLOEXEC = 0o2000000

/** `ip -d -j link show <name>` parsed, or undefined when it does not exist. */
export function ipLink(name: string, netns?: string): IpLink | undefined {
  const args = [...(netns ? ['-n', netns] : []), '-d', '-j', 'link', 'show', 'dev', name]
  const r = spawnSync('ip', args, { encoding: 'utf8' })
  if (r.status !== 0) return undefined
  return (JSON.parse(r.stdout) as IpLink[])[0]
}

export interface IpLink {
  ifname: string
  ifindex: number
  mtu: number
  address: string
  flags: string[]
  master?: string
  operstate: string
  linkinfo?: {
    info_kind: string
    info_data?: {
      type: string
      vnet_hdr: boolean
      multi_queue: boolean
      numqueues?: number
      numdisabled?: number
      persist: boolean
      user?: number
      group?: number
    }
  }
}

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8' })
}

/** A name unlikely to collide with other test files running at the same time. */
export function uniqueName(prefix: string): string {
  return `${prefix}${process.pid % 10000}${Math.floor(Math.random() * 100)}`.slice(0, 15)
}

export type T = ExecutionContext

/** The checkout this suite tests. */
export const repoRoot = join(__dirname, '..')

/**
 * dist/ must be the build of the sources under test (the CLI tests run
 * dist/cli.js): rebuild the TypeScript when a source is newer. Returns
 * dist/cli.js.
 */
export function ensureDistBuilt(): string {
  const cli = join(repoRoot, 'dist', 'cli.js')
  const sources = ['cli.ts', 'index.ts']
  const walk = (dir: string): string[] =>
    readdirSync(join(repoRoot, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
    )
  for (const dir of ['lib', 'cli']) sources.push(...walk(dir))
  const built = existsSync(cli) ? statSync(cli).mtimeMs : 0
  if (sources.some((f) => statSync(join(repoRoot, f)).mtimeMs > built)) {
    const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
      cwd: repoRoot,
      encoding: 'utf8',
    })
    if (r.status !== 0) throw new Error(`npm run build:ts failed:\n${r.stdout}${r.stderr}`)
  }
  return cli
}
