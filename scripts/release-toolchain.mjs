#!/usr/bin/env node
// The napi-rs cross toolchain (gcc + a glibc 2.17 sysroot) for release builds
// (`napi build --use-napi-cross`), fetched from the npm registry with `npm pack`.
//
// Why not let @napi-rs/cli download it: the CLI asks for
// `@napi-rs/cross-toolchain-<host>-target-<arch>@<its @napi-rs/cross-toolchain
// version>` (1.0.5 today), which the registry does not have (x86_64 exists at
// 1.0.0, aarch64 at 1.0.3), and its unpacking needs @napi-rs/lzma, whose
// binding npm skips on Node < 22. The CLI skips its download when
// `~/.napi-rs/cross-toolchain/<version>/<triple>/package.json` exists, so this
// script unpacks the published toolchain there itself (`tar xJf`). Idempotent:
// a complete toolchain is left alone; a partial one is never left behind.
//
//   node scripts/release-toolchain.mjs [triple]   # prints the toolchain dir

import { spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/**
 * What the registry actually serves, per `<host arch>/<target triple>`: the
 * package, a version that exists and its integrity (from `npm view`).
 */
export const TOOLCHAINS = {
  'x64/x86_64-unknown-linux-gnu': {
    pkg: '@napi-rs/cross-toolchain-x64-target-x86_64',
    version: '1.0.0',
    integrity: 'sha512-lecoghCfoTAX9MLFcIx9/nL9M8xdkZ9n8Pki8qjKUNzjiq1zbECdEbzIZAMMHRtrXxifK9dAyYuh8gSxNbr2og==',
  },
  'x64/aarch64-unknown-linux-gnu': {
    pkg: '@napi-rs/cross-toolchain-x64-target-aarch64',
    version: '1.0.3',
    integrity: 'sha512-EMFcy/ahFsmCY3BI1tMC3wRUYZ+cDuILg7nP1micaKXW1tO1+RvUB1CC6QYe+cv2W4Tuz9wr3qcFExWyjgWf2w==',
  },
}

/** The @napi-rs/cross-toolchain version the installed @napi-rs/cli reads (names its cache dir). */
export function cliToolchainVersion() {
  const cliRequire = createRequire(createRequire(path.join(root, 'package.json')).resolve('@napi-rs/cli/package.json'))
  return cliRequire('@napi-rs/cross-toolchain/package.json').version
}

/** Where `napi build --use-napi-cross` looks for the toolchain of `triple`. */
export function toolchainDir(triple) {
  return path.join(os.homedir(), '.napi-rs', 'cross-toolchain', cliToolchainVersion(), triple)
}

function isComplete(dir, triple) {
  return fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'bin', `${triple}-gcc`))
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
  return r.stdout
}

/**
 * Make sure the toolchain for `triple` is unpacked where the CLI looks for it;
 * return its directory. `log` gets one line when something is downloaded.
 */
export function ensureCrossToolchain(triple = 'x86_64-unknown-linux-gnu', { log = (m) => console.error(m) } = {}) {
  const key = `${process.arch}/${triple}`
  const spec = TOOLCHAINS[key]
  if (!spec) {
    throw new Error(
      `vmtap: no napi-rs cross toolchain for ${triple} on a ${process.arch} host ` +
        `(known: ${Object.keys(TOOLCHAINS).join(', ')}); build it on a matching runner instead`,
    )
  }
  const dest = toolchainDir(triple)
  if (isComplete(dest, triple)) return dest

  const t0 = Date.now()
  log(`vmtap: fetching ${spec.pkg}@${spec.version} from the npm registry into ${dest}`)
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmtap-cross-'))
  const partial = `${dest}.partial-${process.pid}`
  try {
    const packed = JSON.parse(
      run('npm', ['pack', `${spec.pkg}@${spec.version}`, '--json', '--pack-destination', work], { cwd: work }),
    )
    const tgz = path.join(work, packed[0].filename)
    const sri = `sha512-${crypto.createHash('sha512').update(fs.readFileSync(tgz)).digest('base64')}`
    if (sri !== spec.integrity)
      throw new Error(`${spec.pkg}@${spec.version}: integrity ${sri}, expected ${spec.integrity}`)
    run('tar', ['xzf', tgz, '-C', work])
    fs.rmSync(tgz)
    const xz = path.join(work, 'package', `${triple}.tar.xz`)
    fs.rmSync(partial, { recursive: true, force: true })
    fs.mkdirSync(partial, { recursive: true })
    run('tar', ['xJf', xz, '-C', partial])
    if (!isComplete(partial, triple)) throw new Error(`${xz} holds no bin/${triple}-gcc`)
    fs.rmSync(dest, { recursive: true, force: true }) // an incomplete leftover
    fs.renameSync(partial, dest)
    fs.writeFileSync(
      path.join(dest, '.vmtap-source.json'),
      `${JSON.stringify({ package: spec.pkg, version: spec.version, integrity: spec.integrity })}\n`,
    )
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
    fs.rmSync(partial, { recursive: true, force: true })
  }
  log(`vmtap: cross toolchain ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
  return dest
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    console.log(ensureCrossToolchain(process.argv[2]))
  } catch (e) {
    console.error(e.message)
    process.exit(1)
  }
}
