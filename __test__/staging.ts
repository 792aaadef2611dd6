// The built package as the tests run it: rebuilt when a source is newer, and
// staged where another uid can read it. No ava here: scenario modules that run
// outside ava's workers (runIn) use it too.
import { spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import type { NativeOpenConfig } from '../lib/native'

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

let staged: string | undefined

/**
 * A copy of the built package that any uid can read, for tests that run
 * vmtap as another user: the checkout may live under a directory only its
 * owner can enter (a 0700 home). Holds dist/, the addon, package.json and
 * commander; made once per test process under the system temp directory and
 * removed at exit. Returns its root (the CLI is <root>/dist/cli.js).
 */
export function stagedPackage(): string {
  if (staged) return staged
  ensureDistBuilt()
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-staged-'))
  cpSync(join(repoRoot, 'dist'), join(dir, 'dist'), { recursive: true })
  cpSync(join(repoRoot, 'package.json'), join(dir, 'package.json'))
  for (const f of readdirSync(repoRoot).filter((f) => /^vmtap\..*\.node$/.test(f))) {
    cpSync(join(repoRoot, f), join(dir, f))
  }
  const commander = join(repoRoot, 'node_modules', 'commander')
  cpSync(commander, join(dir, 'node_modules', 'commander'), { recursive: true })
  spawnSync('chmod', ['-R', 'a+rX', dir])
  chmodSync(dir, 0o755)
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  staged = dir
  return dir
}

/** The addon's open() config with every option at its default: a base for tests that call the addon directly. */
export const NO_CONFIG: Readonly<NativeOpenConfig> = Object.freeze({
  exclusive: false,
  uniqueName: false,
  persist: false,
  owner: null,
  group: null,
  ownerless: false,
  vnetHdrSize: null,
  offloads: null,
  mtu: null,
  mac: null,
  bridge: null,
  up: false,
})
