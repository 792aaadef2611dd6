// The release packages (issue 8): built with the napi-rs cross toolchain,
// packed the napi-rs way (scripts/release.mjs: napi artifacts, napi prepublish
// without publishing, npm pack), then installed from the tarballs into a fresh
// project with no Rust on PATH and no repository on any path
// (scripts/release-smoke.mjs) and used from CommonJS, ESM, the CLI, a strict
// TypeScript consumer and — as root, inside a network namespace — the kernel.
//
// The build (linux-x64-gnu and linux-arm64-gnu) takes ~30 s warm (~60 s
// cold, plus ~7 s per toolchain fetched once); the install checks ~10 s.
// e2e-arm64.spec.ts runs the arm64 package in an emulated arm64 machine. With VMTAP_RELEASE_DIR set (CI's test jobs:
// the packed tarballs of another job) nothing is built: the tarballs there
// are checked and installed.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { platformSuffix } from '../lib/native'
import { isRoot, rootTest } from './helpers'

const root = join(__dirname, '..')
const suffix = platformSuffix()
const GLIBC_FLOOR = '2.17'
const TARGET_OF: Record<string, string> = {
  'linux-x64-gnu': 'x86_64-unknown-linux-gnu',
  'linux-x64-musl': 'x86_64-unknown-linux-musl',
  'linux-arm64-gnu': 'aarch64-unknown-linux-gnu',
  'linux-arm64-musl': 'aarch64-unknown-linux-musl',
}

interface Proc {
  status: number | null
  stdout: string
  stderr: string
  seconds: number
}

function run(cmd: string, args: string[], cwd = root): Promise<Proc> {
  const t0 = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr, seconds: (Date.now() - t0) / 1000 }))
  })
}

function sh(cmd: string, args: string[], cwd = root): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}\n${r.stderr}`)
  return r.stdout
}

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d) return d
  }
  return 0
}

/** `objdump -T file | grep -o 'GLIBC_[0-9.]*' | sort -Vu`. */
function glibcVersions(file: string): string[] {
  const out = sh('objdump', ['-T', file])
  return [...new Set(out.match(/GLIBC_[0-9.]+/g) ?? [])].map((v) => v.slice(6)).sort(compareVersions)
}

// ---------------------------------------------------------------------------
// The release (built once per run, or given) and the smoke install
// ---------------------------------------------------------------------------

interface Release {
  dir: string
  tarballs: string
  main: string
  platform: string | undefined
  /** Every platform tarball: platform (linux-arm64-gnu) → path. */
  platforms: Record<string, string>
  buildSeconds: number | null
  log: string
}

/** Why this host cannot build the release itself, or null. */
function cannotBuild(): string | null {
  if (suffix !== 'linux-x64-gnu') return `the napi-rs cross toolchain is set up for x86_64 gnu hosts; this is ${suffix}`
  if (spawnSync('cargo', ['--version']).status !== 0) return 'no cargo on PATH'
  return null
}

let releaseP: Promise<Release> | undefined
function release(): Promise<Release> {
  return (releaseP ??= (async () => {
    let dir = process.env.VMTAP_RELEASE_DIR
    let buildSeconds: number | null = null
    let log = ''
    if (!dir) {
      const why = cannotBuild()
      if (why)
        throw new Error(`cannot build the release here (${why}); set VMTAP_RELEASE_DIR to a scripts/release.mjs output`)
      dir = join(root, 'target', 'package-test')
      const r = await run(process.execPath, [join(root, 'scripts', 'release.mjs'), '--out', dir, '--quiet'])
      if (r.status !== 0) throw new Error(`scripts/release.mjs failed:\n${r.stderr}\n${r.stdout}`)
      buildSeconds = r.seconds
      log = r.stderr
    }
    const tarballs = join(dir, 'tarballs')
    const files = readdirSync(tarballs)
    const main = files.find((f) => /^vmtap-\d.*\.tgz$/.test(f))
    if (!main) throw new Error(`no vmtap-<version>.tgz in ${tarballs}`)
    const platform = files.find((f) => f.startsWith(`vmtap-${suffix}-`))
    const platforms: Record<string, string> = {}
    for (const p of Object.keys(TARGET_OF)) {
      const f = files.find((x) => x.startsWith(`vmtap-${p}-`))
      if (f) platforms[p] = join(tarballs, f)
    }
    return {
      dir,
      tarballs,
      main: join(tarballs, main),
      platform: platform && join(tarballs, platform),
      platforms,
      buildSeconds,
      log,
    }
  })())
}

interface Check {
  ok: boolean
  [k: string]: unknown
}
interface SmokeReport {
  ok: boolean
  platform: string
  checks: Record<string, Check>
  error?: string
}

let smokeP: Promise<{ report: SmokeReport; seconds: number }> | undefined
function smoke(): Promise<{ report: SmokeReport; seconds: number }> {
  return (smokeP ??= (async () => {
    const rel = await release()
    const args = [
      join(root, 'scripts', 'release-smoke.mjs'),
      '--tarballs',
      rel.tarballs,
      '--typescript',
      '--registry-fallback',
      '--tap',
      isRoot ? 'netns' : 'none',
    ]
    const r = await run(process.execPath, args, tmpdir())
    let report: SmokeReport
    try {
      report = JSON.parse(r.stdout) as SmokeReport
    } catch {
      throw new Error(`release-smoke printed no report (exit ${r.status}):\n${r.stdout}\n${r.stderr}`)
    }
    if (report.error) throw new Error(`release-smoke failed: ${report.error}`)
    return { report, seconds: r.seconds }
  })())
}

async function check(name: string): Promise<Check> {
  const { report } = await smoke()
  const c = report.checks[name]
  if (!c) throw new Error(`release-smoke reported no ${name} check: ${JSON.stringify(report, null, 2)}`)
  return c
}

/** The files of a tarball, without npm's `package/` prefix. */
function tarFiles(tgz: string): string[] {
  return sh('tar', ['tzf', tgz])
    .split('\n')
    .filter((l) => l && !l.endsWith('/'))
    .map((l) => l.replace(/^package\//, ''))
    .sort()
}

function tarJson<T>(tgz: string, file: string): T {
  return JSON.parse(sh('tar', ['xzf', tgz, '-O', `package/${file}`])) as T
}

// What a user of the main package needs: the compiled JS, its types, the
// manifest, the README and a license. No Rust, tests, build scripts, binaries.
const ALLOWED = /^(package\.json|README\.md|LICEN[CS]E(\.\w+)?|dist\/((lib|cli)\/(broker\/)?)?[\w.-]+\.(js|d\.ts))$/
const FORBIDDEN =
  /(\.rs$|Cargo\.|^crates\/|__test__|^target\/|^scripts\/|\.node$|^npm\/|tsconfig|^bench\/|\.spec\.|^\.)/
const REQUIRED = ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js']

function checkMainFiles(t: import('ava').ExecutionContext, files: string[], what: string): void {
  for (const f of REQUIRED) t.true(files.includes(f), `${what} lacks ${f}`)
  const extra = files.filter((f) => !ALLOWED.test(f) || FORBIDDEN.test(f))
  t.deepEqual(extra, [], `${what} holds files users do not need`)
}

// ---------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------

test.serial(
  'release build: every gnu platform binary (linux-x64-gnu and linux-arm64-gnu) needs no glibc symbol newer than GLIBC_2.17',
  async (t) => {
    t.timeout(15 * 60_000)
    const rel = await release()
    if (rel.buildSeconds !== null)
      t.log(
        `scripts/release.mjs (cross builds, stage, napi artifacts/prepublish, pack): ${rel.buildSeconds.toFixed(1)} s`,
      )
    t.truthy(rel.platform, `no vmtap-${suffix}-<version>.tgz in ${rel.tarballs}`)
    // Built here: both gnu targets (x86_64 with rustup's Rust, aarch64 with Debian's rustc-web).
    if (rel.buildSeconds !== null) t.deepEqual(Object.keys(rel.platforms).sort(), ['linux-arm64-gnu', 'linux-x64-gnu'])
    for (const [platform, tgz] of Object.entries(rel.platforms)) {
      const dir = mkdtempSync(join(tmpdir(), 'vmtap-pkg-'))
      try {
        const file = `vmtap.${platform}.node`
        sh('tar', ['xzf', tgz, '-C', dir, `package/${file}`])
        const binary = join(dir, 'package', file)
        const versions = glibcVersions(binary)
        const max = versions.at(-1)
        t.log(`${file} in ${tgz}: GLIBC_ versions ${versions.join(' ') || '(none)'}`)
        // scripts/release.mjs refuses a binary over the floor with its own ELF reader: it must agree with objdump.
        const own = sh(process.execPath, [
          '--input-type=module',
          '-e',
          `import { glibcVersions } from ${JSON.stringify(join(root, 'scripts', 'release.mjs'))}; console.log(JSON.stringify(glibcVersions(${JSON.stringify(binary)})))`,
        ])
        t.deepEqual(JSON.parse(own), versions, `${file}: scripts/release.mjs reads the same versions as objdump -T`)
        if (platform.endsWith('-musl')) {
          t.deepEqual(versions, [], `${file}: a musl binary needs no glibc symbol`)
        } else {
          t.truthy(max, `${file}: a gnu binary names glibc versions`)
          t.true(
            compareVersions(max!, GLIBC_FLOOR) <= 0,
            `${file} needs GLIBC_${max}; at most GLIBC_${GLIBC_FLOOR} loads on RHEL/Rocky 8-9, Debian 11+, Ubuntu 20.04+`,
          )
        }
        const local = join(root, file)
        if (platform === suffix && existsSync(local) && !suffix.endsWith('-musl'))
          t.log(
            `for comparison, the development build ${file} (napi build without --use-napi-cross) needs GLIBC_${glibcVersions(local).at(-1)}`,
          )
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
  },
)

// ---------------------------------------------------------------------------
// The tarballs
// ---------------------------------------------------------------------------

test('main package tarball: only dist JS and types, package.json, README (no Rust, tests, build scripts, binaries)', async (t) => {
  t.timeout(15 * 60_000)
  const rel = await release()
  const files = tarFiles(rel.main)
  t.log(files.join('\n'))
  checkMainFiles(t, files, rel.main)
  const pkg = tarJson<Record<string, any>>(rel.main, 'package.json')
  t.is(pkg.name, 'vmtap')
  for (const f of ['scripts', 'devDependencies', 'ava']) t.false(f in pkg, `the published package.json carries ${f}`)
  t.deepEqual(Object.keys(pkg.dependencies ?? {}), ['commander'])
  // As `napi prepublish` writes them: vmtap-<platform> at this version, one per napi target.
  const expected = Object.fromEntries(
    (pkg.napi.targets as string[]).map((tr) => [
      `vmtap-${Object.keys(TARGET_OF).find((k) => TARGET_OF[k] === tr)}`,
      pkg.version,
    ]),
  )
  t.deepEqual(pkg.optionalDependencies, expected)
  t.is(pkg.bin?.vmtap, 'dist/cli.js')
  t.truthy(pkg.engines?.node)
})

test('platform package tarball: package.json, README and the .node, with os/cpu/libc', async (t) => {
  t.timeout(15 * 60_000)
  const rel = await release()
  t.truthy(rel.platform)
  t.deepEqual(tarFiles(rel.platform!), ['README.md', 'package.json', `vmtap.${suffix}.node`])
  const pkg = tarJson<Record<string, any>>(rel.platform!, 'package.json')
  const main = tarJson<Record<string, any>>(rel.main, 'package.json')
  t.like(pkg, { name: `vmtap-${suffix}`, version: main.version, main: `vmtap.${suffix}.node`, os: ['linux'] })
  t.deepEqual(pkg.cpu, [process.arch])
  t.deepEqual(pkg.libc, [suffix.endsWith('-musl') ? 'musl' : 'glibc'])
})

test('npm pack --dry-run of the checkout lists only what users need', async (t) => {
  if (!existsSync(join(root, 'dist', 'index.js'))) return t.fail('dist/ is not built (npm run build:ts)')
  // --ignore-scripts: npm pack would otherwise run `prepare` (a full build).
  const r = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'])
  t.is(r.status, 0, r.stderr)
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0].files.map((f) => f.path).sort()
  checkMainFiles(t, files, 'npm pack --dry-run in the checkout')
})

// ---------------------------------------------------------------------------
// Installed from the tarballs, used as a user would
// ---------------------------------------------------------------------------

test('npm install of the two tarballs: no compiler, no lifecycle script, the platform package installed', async (t) => {
  t.timeout(15 * 60_000)
  const { report, seconds } = await smoke()
  t.log(`release-smoke (installs, checks${isRoot ? ', tap in a netns' : ''}): ${seconds.toFixed(1)} s`)
  const install = report.checks.install
  t.true(install.ok, String(install.stderr))
  t.log(`npm install mode: ${install.mode}, ${install.seconds} s`)
  t.deepEqual(install.unreviewedScripts, [])
  t.deepEqual((install.installed as string[]).sort(), ['commander', 'vmtap', `vmtap-${suffix}`])
  const nc = report.checks.noCompiler
  t.true(nc.ok, `compilers were called: ${JSON.stringify(nc.calls)}`)
  t.notRegex(String(nc.PATH), /\.cargo|rustup/)
})

test("require('vmtap') loads the addon from the platform package", async (t) => {
  t.timeout(15 * 60_000)
  const c = await check('cjs')
  t.true(c.ok, String(c.stderr))
  const v = c.value as {
    resolved: string
    addon: string[]
    platform: string
    exports: string[]
    features: { raw: number | null }
  }
  t.notRegex(v.resolved, new RegExp(root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'resolved outside the repository')
  t.is(v.addon.length, 1)
  t.regex(v.addon[0], new RegExp(`/node_modules/vmtap-${suffix}/vmtap\\.${suffix}\\.node$`))
  t.is(v.platform, suffix)
  for (const name of ['openTap', 'probeFeatures', 'TapError', 'TapDevice', 'deleteTap', 'handOff'])
    t.true(v.exports.includes(name), name)
  t.is(typeof v.features.raw === 'number' || v.features.raw === null, true)
})

test("import { openTap } from 'vmtap' (ESM)", async (t) => {
  t.timeout(15 * 60_000)
  const c = await check('esm')
  t.true(c.ok, String(c.stderr))
  t.like(c.value as object, {
    openTap: 'function',
    probeFeatures: 'function',
    TapError: 'function',
    defaultOpenTap: 'function',
  })
})

test('npx vmtap --help', async (t) => {
  t.timeout(15 * 60_000)
  const c = await check('cli')
  t.true(c.ok, `exit ${c.status}\n${c.stdout}\n${c.stderr}`)
  t.regex(String(c.stdout), /Usage: vmtap/)
})

test('a TypeScript consumer compiles with tsc --strict against the installed .d.ts, and runs', async (t) => {
  t.timeout(15 * 60_000)
  const c = await check('typescript')
  t.true(c.ok, `${c.command}\n${c.tscOutput ?? ''}${c.stderr ?? ''}\n${JSON.stringify(c.run)}`)
  t.is(c.tscOutput, '')
})

rootTest('the installed package opens and closes a TAP device inside a network namespace', async (t) => {
  t.timeout(15 * 60_000)
  const c = await check('tap')
  t.true(c.ok, String(c.stderr))
  t.is(c.mode, 'netns')
  const v = c.value as {
    ifname: string
    tapFds: number
    exists: boolean
    multiQueue: boolean
    existsAfterClose: boolean
  }
  t.like(v, { tapFds: 2, exists: true, multiQueue: true, existsAfterClose: false })
})

test('no platform package: the loader names the platform, the libc, the package it expected and how to build from source', async (t) => {
  t.timeout(15 * 60_000)
  const c = await check('loaderError')
  t.true(c.ok, 'loading without a binary must fail')
  t.false(c.platformPackagePresent)
  const message = String(c.message)
  t.log(message)
  const [os, arch, abi] = suffix.split('-')
  t.regex(message, new RegExp(`\\b${os} ${arch}\\b`), 'the platform')
  t.regex(message, new RegExp(`libc ${abi === 'musl' ? 'musl' : 'glibc'}`), 'the libc it detected')
  t.regex(message, new RegExp(`vmtap-${suffix}\\b`), 'the package it expected')
  t.true(message.includes(String(c.nativeLibraryPath)), 'what NAPI_RS_NATIVE_LIBRARY_PATH pointed at')
  t.regex(message, /build from source/i)
  t.regex(message, /npm (install|run build)/)
  t.regex(message, /--omit=optional|--no-optional/)
})
