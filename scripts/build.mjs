#!/usr/bin/env node
// `npm run build`: the native addon with @napi-rs/cli (`napi build --platform
// --release`, which names it vmtap.<platform>.node), then the TypeScript.
// `--native-only` skips tsc; extra arguments after `--` go to `napi build`.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import path from 'node:path'
import { cargoSourceArgs, root } from './cargo-source.mjs'

const require = createRequire(import.meta.url)
const argv = process.argv.slice(2)
const nativeOnly = argv.includes('--native-only')
const dash = argv.indexOf('--')
const napiExtra = dash >= 0 ? argv.slice(dash + 1) : []

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) {
    console.error(`vmtap: ${path.basename(cmd)} ${args.join(' ')} failed`)
    process.exit(r.status ?? 1)
  }
}

const napi = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js')
const source = cargoSourceArgs()
run(process.execPath, [
  napi, 'build', '--platform', '--release',
  '--manifest-path', 'crates/node/Cargo.toml', '--package-json-path', 'package.json',
  '--output-dir', '.', '--no-js', ...napiExtra,
  ...(source.length ? ['--', ...source] : []),
])
if (!nativeOnly) run(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'])
