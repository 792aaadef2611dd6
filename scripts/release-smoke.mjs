#!/usr/bin/env node
// Install the packed release (scripts/release.mjs) the way a user does and use
// it: a fresh project in a temporary directory (no repository on any path),
// PATH without cargo/rustc (and shims that record any compiler call), then
// `npm install <main tarball> <this platform's tarball>` and:
//
//   cjs         require('vmtap'), the addon loaded from node_modules/vmtap-<platform>
//   esm         import { openTap } from 'vmtap'
//   cli         npx vmtap --help
//   typescript  (--typescript) a consumer compiled with tsc --strict against the
//               installed .d.ts (typescript and @types/node installed beside it)
//   tap         (--tap netns|here) open and close a TAP device from the installed
//               package: netns = inside a network namespace created here
//               (`ip netns exec`), here = in this process's namespace (a container)
//   loaderError a second project installed with --omit=optional (no platform
//               package) and NAPI_RS_NATIVE_LIBRARY_PATH pointing nowhere: the
//               loader's error
//
// Prints one JSON report ({ ok, platform, checks: { name: { ok, ... } } }) on
// stdout; exits 1 when a check failed. Needs only node and npm (CI runs it in
// distribution containers with the repository absent).
//
//   node scripts/release-smoke.mjs [--tarballs DIR] [--typescript] [--tap netns|here|none]
//                                   [--registry-fallback] [--keep]
//
//   --tarballs DIR       the packed tarballs (default target/npm-release/tarballs)
//   --registry-fallback  npm install --offline first; if the npm cache lacks
//                        something (commander, typescript), retry with --prefer-offline

import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))

function parseArgs(argv) {
  const o = {
    tarballs: path.resolve(here, '..', 'target', 'npm-release', 'tarballs'),
    typescript: false,
    tap: 'none',
    fallback: false,
    keep: false,
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--tarballs') o.tarballs = path.resolve(argv[++i])
    else if (a === '--typescript') o.typescript = true
    else if (a === '--tap') o.tap = argv[++i]
    else if (a === '--registry-fallback') o.fallback = true
    else if (a === '--keep') o.keep = true
    else throw new Error(`release-smoke: unknown argument ${a}`)
  }
  if (!['netns', 'here', 'none'].includes(o.tap)) throw new Error(`release-smoke: --tap netns|here|none, not ${o.tap}`)
  return o
}

// The loader's platform detection (index.ts isMusl/platformSuffix), repeated
// here so the right platform tarball is picked without loading the package.
function isMusl() {
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    // fall through
  }
  try {
    return !process.report?.getReport()?.header?.glibcVersionRuntime
  } catch {
    return false
  }
}

export function platformSuffix() {
  return `${process.platform}-${process.arch}-${isMusl() ? 'musl' : 'gnu'}`
}

const COMPILERS = ['cargo', 'rustc', 'rustup', 'cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'node-gyp', 'napi']

/**
 * PATH for the user's shell: this node's directory, then the usual system
 * directories that hold no Rust toolchain, behind a directory of shims that
 * log and fail any compiler call.
 */
function userPath(shimDir, log) {
  fs.mkdirSync(shimDir, { recursive: true })
  for (const c of COMPILERS) {
    const f = path.join(shimDir, c)
    fs.writeFileSync(
      f,
      `#!/bin/sh\necho "${c} $*" >> '${log}'\necho "release-smoke: ${c} must not run during install/use" >&2\nexit 97\n`,
    )
    fs.chmodSync(f, 0o755)
  }
  const dirs = [shimDir, path.dirname(process.execPath)]
  for (const d of (process.env.PATH ?? '').split(':')) {
    if (!d || dirs.includes(d)) continue
    if (['cargo', 'rustc', 'rustup'].some((b) => fs.existsSync(path.join(d, b)))) continue // ~/.cargo/bin and the like
    dirs.push(d)
  }
  return dirs.join(':')
}

/** The environment of a user's shell: no npm_* from a surrounding `npm test`, no NODE_PATH, no addon override. */
function userEnv(PATH, home) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|NODE_PATH$|NODE_OPTIONS$|NAPI_RS_|INIT_CWD$|TSX_|VMTAP_)/i.test(k)) continue
    env[k] = v
  }
  return {
    ...env,
    PATH,
    HOME: home ?? env.HOME,
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  }
}

function exec(cmd, args, { cwd, env, timeout = 120_000 }) {
  const t0 = Date.now()
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout, maxBuffer: 64 << 20 })
  return {
    status: r.status,
    signal: r.signal,
    error: r.error?.message,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    seconds: (Date.now() - t0) / 1000,
  }
}

function npmInstall(dir, specs, extra, { env, fallback }) {
  const base = ['install', '--no-audit', '--no-fund', '--no-package-lock', ...extra]
  let r = exec('npm', [...base, '--offline', ...specs], { cwd: dir, env })
  r.mode = 'offline'
  if (r.status !== 0 && fallback && /ENOTCACHED|cache mode is 'only-if-cached'/.test(r.stdout + r.stderr)) {
    r = exec('npm', [...base, '--prefer-offline', ...specs], { cwd: dir, env })
    r.mode = 'prefer-offline'
  }
  return r
}

function findTarballs(dir, suffix) {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.tgz'))
  const platform = files.find((f) => f.startsWith(`vmtap-${suffix}-`))
  const main = files.find((f) => /^vmtap-\d/.test(f))
  return { main: main && path.join(dir, main), platform: platform && path.join(dir, platform) }
}

const CONSUMER_TS = `// A user's TypeScript, compiled with tsc --strict against the installed package.
import { openTap, probeFeatures, TapError, constants, hostMacFor, type OpenTapOptions, type TapDevice, type TapFeatures } from 'vmtap'

const options: OpenTapOptions = { name: 'vm%d', queues: 2, vnetHdr: 'auto', vhost: false }
const features: TapFeatures = probeFeatures()
const mq: boolean = features.multiQueue
const mac: string = hostMacFor('52:54:00:12:34:56')
const flag: number = constants.IFF_TAP

function describe(tap: TapDevice): string {
  const fds: readonly number[] = tap.tapFds
  return \`\${tap.ifname} \${fds.join(':')} vnetHdr=\${tap.vnetHdr}\`
}

// Type-checked, not run: the smoke test opens devices only inside a network namespace.
export function open(): string | null {
  try {
    using tap = openTap({ ...options, queues: mq ? 2 : 1 })
    return describe(tap)
  } catch (e) {
    if (e instanceof TapError) return \`\${e.code} \${e.syscall}\`
    throw e
  }
}

console.log(JSON.stringify({ mac, flag, raw: features.raw }))
`

const CJS_CHECK = `
const vmtap = require('vmtap')
const features = vmtap.probeFeatures() // loads the addon
const addon = Object.keys(require.cache).filter((k) => k.endsWith('.node'))
console.log(JSON.stringify({
  resolved: require.resolve('vmtap'),
  exports: Object.keys(vmtap).sort(),
  platform: require('vmtap/dist/lib/native').platformSuffix(),
  addon,
  features,
}))
`

const ESM_CHECK = `
import { openTap, probeFeatures, TapError } from 'vmtap'
import * as all from 'vmtap'
import vmtapDefault from 'vmtap'
console.log(JSON.stringify({
  openTap: typeof openTap,
  probeFeatures: typeof probeFeatures,
  TapError: typeof TapError,
  named: Object.keys(all).filter((k) => k !== 'default').length,
  defaultOpenTap: typeof vmtapDefault.openTap,
  raw: probeFeatures().raw,
}))
`

const TAP_CHECK = `
const fs = require('node:fs')
const { openTap } = require('vmtap')
const name = process.argv[2]
const tap = openTap({ name, queues: 2, vnetHdr: 'auto' })
const during = { ifname: tap.ifname, tapFds: tap.tapFds.length, exists: fs.existsSync('/sys/class/net/' + name), multiQueue: tap.multiQueue }
tap.close()
console.log(JSON.stringify({ ...during, existsAfterClose: fs.existsSync('/sys/class/net/' + name) }))
`

export function smoke(options = {}) {
  const o = { ...parseArgs([]), ...options }
  const suffix = platformSuffix()
  const report = { ok: true, platform: suffix, node: process.version, checks: {} }
  const check = (name, result) => {
    report.checks[name] = result
    if (!result.ok) report.ok = false
    return result
  }
  const { main, platform } = findTarballs(o.tarballs, suffix)
  if (!main || !platform) {
    check('tarballs', {
      ok: false,
      error: `need vmtap-<version>.tgz and vmtap-${suffix}-<version>.tgz in ${o.tarballs}`,
    })
    return report
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmtap-smoke-'))
  report.workdir = work
  const compilerLog = path.join(work, 'compiler-calls.log')
  const PATH = userPath(path.join(work, 'shims'), compilerLog)
  const env = userEnv(PATH)
  const app = path.join(work, 'app')
  try {
    // The user's project.
    fs.mkdirSync(app)
    fs.writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({ name: 'vmtap-smoke-app', version: '1.0.0', private: true }, null, 2),
    )
    const inst = npmInstall(app, [main, platform], ['--json'], { env, fallback: o.fallback })
    let npmJson = null
    try {
      npmJson = JSON.parse(inst.stdout)
    } catch {
      // not JSON: reported below
    }
    check('install', {
      ok: inst.status === 0,
      mode: inst.mode,
      seconds: inst.seconds,
      unreviewedScripts: npmJson?.unreviewedScripts ?? [],
      installed: fs.existsSync(path.join(app, 'node_modules'))
        ? fs.readdirSync(path.join(app, 'node_modules')).filter((d) => !d.startsWith('.'))
        : [],
      stderr: inst.status === 0 ? undefined : inst.stderr + inst.stdout,
    })
    if (inst.status !== 0) return report

    const node = (args, extraEnv = {}) => exec(process.execPath, args, { cwd: app, env: { ...env, ...extraEnv } })
    const json = (r) => {
      try {
        return JSON.parse(r.stdout.trim().split('\n').pop())
      } catch {
        return null
      }
    }

    const cjs = node(['-e', CJS_CHECK])
    check('cjs', { ok: cjs.status === 0, value: json(cjs), stderr: cjs.stderr })

    fs.writeFileSync(path.join(app, 'esm-check.mjs'), ESM_CHECK)
    const esm = node(['esm-check.mjs'])
    check('esm', { ok: esm.status === 0, value: json(esm), stderr: esm.stderr })

    const cli = exec('npx', ['--offline', 'vmtap', '--help'], { cwd: app, env })
    check('cli', {
      ok: cli.status === 0 && /usage/i.test(cli.stdout),
      status: cli.status,
      stdout: cli.stdout,
      stderr: cli.stderr,
    })

    if (o.typescript) {
      const ts = o.typescriptVersions ?? { typescript: 'latest', '@types/node': 'latest' }
      const tsInst = npmInstall(
        app,
        Object.entries(ts).map(([n, v]) => `${n}@${v}`),
        ['--save-dev'],
        { env, fallback: o.fallback },
      )
      if (tsInst.status !== 0) {
        check('typescript', {
          ok: false,
          stage: 'install typescript',
          mode: tsInst.mode,
          stderr: tsInst.stderr + tsInst.stdout,
        })
      } else {
        fs.writeFileSync(path.join(app, 'consumer.ts'), CONSUMER_TS)
        const tscArgs = [
          'tsc',
          '--strict',
          '--target',
          'es2022',
          '--module',
          'node16',
          '--moduleResolution',
          'node16',
          '--types',
          'node',
          '--outDir',
          'out',
          'consumer.ts',
        ]
        const tsc = exec('npx', ['--offline', ...tscArgs], { cwd: app, env })
        const run = tsc.status === 0 ? node(['out/consumer.js']) : null
        check('typescript', {
          ok: tsc.status === 0 && run?.status === 0,
          command: tscArgs.join(' '),
          tscOutput: tsc.stdout + tsc.stderr,
          run: run && { status: run.status, stdout: run.stdout, stderr: run.stderr },
        })
      }
    }

    if (o.tap !== 'none') {
      fs.writeFileSync(path.join(app, 'tap-check.cjs'), TAP_CHECK)
      const ifname = `vmtsmoke${process.pid % 10000}`
      if (o.tap === 'here') {
        const r = node(['tap-check.cjs', ifname])
        check('tap', { ok: r.status === 0, mode: 'here', value: json(r), stderr: r.stderr })
      } else {
        const ns = `vmtap-smoke-${process.pid}`
        const add = exec('ip', ['netns', 'add', ns], { cwd: app, env })
        if (add.status !== 0) {
          check('tap', { ok: false, mode: 'netns', stderr: add.stderr })
        } else {
          try {
            const r = exec('ip', ['netns', 'exec', ns, process.execPath, 'tap-check.cjs', ifname], { cwd: app, env })
            check('tap', { ok: r.status === 0, mode: 'netns', netns: ns, value: json(r), stderr: r.stderr })
          } finally {
            exec('ip', ['netns', 'del', ns], { cwd: app, env })
          }
        }
      }
    }

    // No platform package: what a user who installed with --omit=optional sees.
    const bare = path.join(work, 'bare')
    fs.mkdirSync(bare)
    fs.writeFileSync(
      path.join(bare, 'package.json'),
      JSON.stringify({ name: 'vmtap-smoke-bare', version: '1.0.0', private: true }, null, 2),
    )
    const bareInst = npmInstall(bare, [main], ['--omit=optional'], { env, fallback: o.fallback })
    if (bareInst.status !== 0) {
      check('loaderError', { ok: false, stage: 'install', stderr: bareInst.stderr + bareInst.stdout })
    } else {
      const nowhere = path.join(work, 'nowhere', `vmtap.${suffix}.node`)
      const r = exec(process.execPath, ['-e', `require('vmtap').probeFeatures()`], {
        cwd: bare,
        env: { ...env, NAPI_RS_NATIVE_LIBRARY_PATH: nowhere },
      })
      const message = r.stderr.match(/Error: (no native binary [\s\S]*?)\n\s+at /)?.[1] ?? r.stderr
      check('loaderError', {
        ok: r.status !== 0,
        platformPackagePresent: fs.existsSync(path.join(bare, 'node_modules', `vmtap-${suffix}`)),
        nativeLibraryPath: nowhere,
        message,
      })
    }

    check('noCompiler', {
      ok: !fs.existsSync(compilerLog),
      calls: fs.existsSync(compilerLog) ? fs.readFileSync(compilerLog, 'utf8').trim().split('\n') : [],
      PATH,
    })
  } finally {
    if (!o.keep && report.ok) fs.rmSync(work, { recursive: true, force: true })
  }
  return report
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  let report
  try {
    const opts = parseArgs(process.argv.slice(2))
    const repoPkg = path.resolve(here, '..', 'package.json')
    if (opts.typescript && fs.existsSync(repoPkg)) {
      // The versions the repository develops with (in the npm cache after npm ci).
      const dev = JSON.parse(fs.readFileSync(repoPkg, 'utf8')).devDependencies ?? {}
      opts.typescriptVersions = {
        typescript: dev.typescript ?? 'latest',
        '@types/node': dev['@types/node'] ?? 'latest',
      }
    }
    report = smoke(opts)
  } catch (e) {
    report = { ok: false, error: e.stack }
  }
  console.log(JSON.stringify(report, null, 2))
  process.exit(report.ok ? 0 : 1)
}
