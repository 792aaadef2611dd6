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
// The Rust standard library of the target comes from rustup's toolchain when
// it has one (x86_64 here: rustup cannot download other targets on our
// machines), else from Debian's rustc-web, whose standard library for other
// architectures is packaged per architecture: aarch64 is
// `libstd-rust-web-dev:arm64` (after `dpkg --add-architecture arm64`), which
// dpkg keeps at exactly rustc-web's version (Multi-Arch: same). Such a build
// runs rustup's cargo with RUSTC=/usr/bin/rustc (rustc-web); @napi-rs/cli
// reads RUSTC too. See rustEnvFor().
//
//   node scripts/release-toolchain.mjs [triple]   # prints the toolchain dir and the rustc for triple

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

/**
 * The targets a release is cross-built for on this host: the gnu targets we
 * have a napi-rs cross toolchain for (x64 host: x86_64 and aarch64), in
 * TOOLCHAINS order; empty on other hosts.
 */
export function crossTargets(hostArch = process.arch) {
  return Object.keys(TOOLCHAINS)
    .filter((k) => k.startsWith(`${hostArch}/`))
    .map((k) => k.slice(hostArch.length + 1))
}

/** Debian's architecture name of a Rust target's CPU. */
const DEBIAN_ARCH = { x86_64: 'amd64', aarch64: 'arm64' }

/** Debian's rustc (package rustc-web); VMTAP_DEBIAN_RUSTC overrides the path. */
export const DEBIAN_RUSTC = process.env.VMTAP_DEBIAN_RUSTC || '/usr/bin/rustc'

/** Whether `rustc` has the standard library of `triple` (its target-libdir holds a libstd rlib). */
export function rustcHasTarget(rustc, triple, env = process.env) {
  const r = spawnSync(rustc, ['--print', 'target-libdir', '--target', triple], { encoding: 'utf8', env })
  if (r.status !== 0) return false
  const dir = r.stdout.trim()
  try {
    return fs.readdirSync(dir).some((f) => /^libstd-.*\.rlib$/.test(f))
  } catch {
    return false
  }
}

/** `rustc -V` of `rustc`, or null. */
function rustcVersion(rustc, env = process.env) {
  const r = spawnSync(rustc, ['-V'], { encoding: 'utf8', env })
  return r.status === 0 ? r.stdout.trim() : null
}

/**
 * The environment cargo (and @napi-rs/cli) needs to build `triple`, and which
 * rustc that is: `{ env: {}, rustc: 'rustc' }` when the default rustc
 * (rustup's, on PATH) has the target's standard library, else
 * `{ env: { RUSTC: DEBIAN_RUSTC } }` when Debian's rustc-web has it. A RUSTC
 * set by the caller is used as is (and must have it). Throws with what to
 * install otherwise.
 */
export function rustEnvFor(triple, env = process.env) {
  if (env.RUSTC) {
    if (rustcHasTarget(env.RUSTC, triple, env))
      return { env: {}, rustc: env.RUSTC, version: rustcVersion(env.RUSTC, env) }
    throw new Error(`vmtap: RUSTC=${env.RUSTC} has no standard library for ${triple}`)
  }
  if (rustcHasTarget('rustc', triple, env)) return { env: {}, rustc: 'rustc', version: rustcVersion('rustc', env) }
  if (fs.existsSync(DEBIAN_RUSTC) && rustcHasTarget(DEBIAN_RUSTC, triple, env)) {
    return { env: { RUSTC: DEBIAN_RUSTC }, rustc: DEBIAN_RUSTC, version: rustcVersion(DEBIAN_RUSTC, env) }
  }
  const arch = DEBIAN_ARCH[triple.split('-')[0]]
  throw new Error(
    `vmtap: no Rust standard library for ${triple}: the default rustc lacks it (rustup cannot download targets here) ` +
      `and ${DEBIAN_RUSTC} (Debian's rustc-web) is missing or lacks it.` +
      (arch
        ? ` Install it: dpkg --add-architecture ${arch} && apt-get update && apt-get install --no-install-recommends rustc-web libstd-rust-web-dev:${arch}` +
          ' (.ci/run does this)'
        : ''),
  )
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
    const triple = process.argv[2] ?? 'x86_64-unknown-linux-gnu'
    console.log(ensureCrossToolchain(triple))
    const { rustc, version } = rustEnvFor(triple)
    console.log(`${rustc} (${version})`)
  } catch (e) {
    console.error(e.message)
    process.exit(1)
  }
}
