#!/usr/bin/env node
// `npm run build`: the native addon with @napi-rs/cli (`napi build --platform
// --release`, which names it vmtap.<platform>.node), then the TypeScript.
// `--native-only` skips tsc; extra arguments after `--` go to `napi build`.
// `--cross` (opt-in, for releases): build with the napi-rs cross toolchain
// (`--use-napi-cross`: gcc + glibc 2.17 sysroot, fetched from the npm registry
// by scripts/release-toolchain.mjs) for `--target`, in target/napi-cross, so
// the binary loads on glibc >= 2.17. Without `--target`: every gnu target
// this host has a toolchain for (an x86_64 host: x86_64 and aarch64, with
// aarch64's Rust standard library from Debian's rustc-web; see
// release-toolchain.mjs).
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import fs from 'node:fs'
import path from 'node:path'
import { cargoSourceArgs, root } from './cargo-source.mjs'

const require = createRequire(import.meta.url)
const argv = process.argv.slice(2)
const nativeOnly = argv.includes('--native-only')
const dash = argv.indexOf('--')
const napiExtra = dash >= 0 ? argv.slice(dash + 1) : []
const cross = (dash >= 0 ? argv.slice(0, dash) : argv).includes('--cross')

// napi build warns that napi-derive is not used and so no JS binding or
// .d.ts is generated: vmtap declares the N-API functions itself and writes
// its own TypeScript, so that is expected and asks nothing of the user.
const EXPECTED_WARNINGS = [/`napi-derive` crate is not used/]

function run(cmd, args, env = process.env, { filterStderr = false } = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: ['inherit', 'inherit', filterStderr ? 'pipe' : 'inherit'], env })
  if (filterStderr) {
    const kept = r.stderr
      .toString()
      .split('\n')
      .filter((l) => !EXPECTED_WARNINGS.some((w) => w.test(l)))
    process.stderr.write(kept.join('\n'))
  }
  if (r.status !== 0) {
    console.error(`vmtap: ${path.basename(cmd)} ${args.join(' ')} failed`)
    process.exit(r.status ?? 1)
  }
}

function hostTriple() {
  const r = spawnSync('rustc', ['-vV'], { encoding: 'utf8' })
  const host = r.stdout?.match(/^host: (\S+)$/m)?.[1]
  if (!host) {
    console.error('vmtap: cannot read the host triple from `rustc -vV`; pass -- --target <triple>')
    process.exit(1)
  }
  return host
}

const napi = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js')
const source = cargoSourceArgs()
const napiBuild = (extra, env) =>
  run(
    process.execPath,
    [
      napi,
      'build',
      '--platform',
      '--release',
      '--manifest-path',
      'crates/node/Cargo.toml',
      '--package-json-path',
      'package.json',
      '--output-dir',
      '.',
      '--no-js',
      ...extra,
      ...napiExtra,
      ...(source.length ? ['--', ...source] : []),
    ],
    env,
    { filterStderr: true },
  )
if (cross) {
  const { crossTargets, ensureCrossToolchain, rustEnvFor } = await import('./release-toolchain.mjs')
  const t = napiExtra.findIndex((a) => a === '--target' || a === '-t')
  const targets = t >= 0 ? [napiExtra[t + 1]] : crossTargets().length ? crossTargets() : [hostTriple()]
  for (const target of targets) {
    let rust
    try {
      ensureCrossToolchain(target)
      rust = rustEnvFor(target)
    } catch (e) {
      console.error(e.message)
      process.exit(1)
    }
    if (rust.env.RUSTC) console.error(`vmtap: ${target} with ${rust.version} (RUSTC=${rust.env.RUSTC})`)
    napiBuild(['--use-napi-cross', '--target-dir', 'target/napi-cross', ...(t >= 0 ? [] : ['--target', target])], {
      ...process.env,
      ...rust.env,
    })
  }
} else {
  napiBuild([], process.env)
}
if (!nativeOnly) run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'])

// `require('vmtap')` / `import 'vmtap'` from inside the checkout: the package
// has no "exports" map (resolving one costs ~1.6 ms of require time), so
// Node's self-reference does not apply; a node_modules/vmtap link to the
// checkout does the same. npm ci / npm install remove it; the build makes it again.
const self = path.join(root, 'node_modules', 'vmtap')
try {
  fs.lstatSync(self)
} catch {
  fs.mkdirSync(path.dirname(self), { recursive: true })
  fs.symlinkSync('..', self, 'dir')
}
