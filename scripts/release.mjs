#!/usr/bin/env node
// The release flow up to (not including) publishing, the napi-rs way:
//
//   1. build   the addon with the napi-rs cross toolchain (`node scripts/build.mjs
//              --native-only --cross`: glibc 2.17 sysroot) for every gnu target
//              this host can build (an x86_64 host: x86_64 and aarch64, see
//              release-toolchain.mjs; --target narrows it) into
//              <out>/artifacts/bindings-<triple>/, unless --artifacts names a
//              directory of already-built binaries (CI's downloaded artifacts);
//              gnu binaries must need no symbol newer than GLIBC_2.17
//   2. stage   <out>/package/: the main package as it is published (package.json
//              without the development-only fields, README, LICENSE, dist/
//              compiled fresh) and npm/<platform>/ (from `napi create-npm-dirs`)
//   3. napi artifacts   copies vmtap.<platform>.node into npm/<platform>/
//   4. napi prepublish --skip-optional-publish --no-gh-release  fills
//              optionalDependencies (publishes nothing; npm_config_dry_run=true
//              as a safety net); entries for targets not built here are filled
//              the same way (`vmtap-<platform>: <version>`), so the staged
//              package.json is the one CI publishes
//   5. npm pack  every platform package that has its binary, and the main one,
//              into <out>/tarballs/; <out>/release.json describes the result
//
// Nothing in the checkout changes (everything is under <out>), and nothing is
// written to a registry. Publishing (CI, on a version tag) is
// `napi prepublish -t npm` + `npm publish` in <out>/package; see
// .github/workflows/CI.yml (job publish).
//
//   node scripts/release.mjs [--out DIR] [--artifacts DIR] [--target TRIPLE]... [--all-targets] [--quiet]
//
//   --out DIR        where everything goes (default target/npm-release)
//   --target TRIPLE  build only these targets (repeatable; default: every one this host can build)
//   --artifacts DIR  use the vmtap.<platform>.node files found under DIR instead of building
//   --all-targets    fail unless every napi.targets entry has a binary (publishing)
//   --refuse-publish the checkout's `prepublishOnly`: explain where publishing happens, exit 1

import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { crossTargets } from './release-toolchain.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(path.join(root, 'package.json'))

/** The fields of package.json that only the repository needs. */
const DEV_ONLY_FIELDS = ['scripts', 'devDependencies', 'ava']
/** The newest glibc symbol version a gnu binary may need (RHEL/CentOS 7's glibc). */
export const GLIBC_FLOOR = '2.17'

/** napi-rs's platform names of the Rust targets we publish. */
export function platformOf(triple) {
  const [arch, , , abi] = triple.split('-')
  const a = { x86_64: 'x64', aarch64: 'arm64' }[arch]
  if (!a || !abi) throw new Error(`vmtap: unsupported target ${triple}`)
  return `linux-${a}-${abi}`
}

function parseArgs(argv) {
  const opts = {
    out: path.join(root, 'target', 'npm-release'),
    artifacts: null,
    targets: [],
    allTargets: false,
    quiet: false,
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--out') opts.out = path.resolve(argv[++i])
    else if (a === '--artifacts') opts.artifacts = path.resolve(argv[++i])
    else if (a === '--target') opts.targets.push(argv[++i])
    else if (a === '--all-targets') opts.allTargets = true
    else if (a === '--quiet') opts.quiet = true
    else throw new Error(`vmtap release: unknown argument ${a}`)
  }
  return opts
}

function run(cmd, args, { cwd = root, env = process.env, capture = false, quiet = false } = {}) {
  const r = spawnSync(cmd, args, {
    cwd,
    env,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: capture
      ? ['ignore', 'pipe', quiet ? 'pipe' : 'inherit']
      : ['ignore', quiet ? 'pipe' : 'inherit', quiet ? 'pipe' : 'inherit'],
  })
  if (r.status !== 0) {
    const tail = quiet ? `\n${r.stdout ?? ''}${r.stderr ?? ''}`.trimEnd() : ''
    throw new Error(
      `vmtap release: ${path.basename(cmd)} ${args.join(' ')} failed (exit ${r.status ?? r.signal})${tail}`,
    )
  }
  return r.stdout
}

/**
 * The symbol versions an ELF shared object needs, from its SHT_GNU_verneed
 * section (what `objdump -T` prints per symbol): { 'libc.so.6': ['GLIBC_2.2.5', ...] }.
 * Plain JS, so any architecture's binary can be checked on any host.
 */
export function elfVersionNeeds(file) {
  const b = fs.readFileSync(file)
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`)
  if (b[4] !== 2 || b[5] !== 1) throw new Error(`${file}: only 64-bit little-endian ELF is supported`)
  const shoff = Number(b.readBigUInt64LE(0x28))
  const shentsize = b.readUInt16LE(0x3a)
  const shnum = b.readUInt16LE(0x3c)
  const sections = []
  for (let i = 0; i < shnum; i++) {
    const h = shoff + i * shentsize
    sections.push({
      type: b.readUInt32LE(h + 4),
      offset: Number(b.readBigUInt64LE(h + 0x18)),
      size: Number(b.readBigUInt64LE(h + 0x20)),
      link: b.readUInt32LE(h + 0x28),
      info: b.readUInt32LE(h + 0x2c),
    })
  }
  const cstr = (off) => b.toString('latin1', off, b.indexOf(0, off))
  const needs = {}
  for (const s of sections.filter((x) => x.type === 0x6ffffffe)) {
    const strtab = sections[s.link].offset
    let vn = s.offset
    for (let i = 0; i < s.info; i++) {
      const cnt = b.readUInt16LE(vn + 2)
      const lib = cstr(strtab + b.readUInt32LE(vn + 4))
      let aux = vn + b.readUInt32LE(vn + 8)
      for (let j = 0; j < cnt; j++) {
        ;(needs[lib] ??= []).push(cstr(strtab + b.readUInt32LE(aux + 8)))
        const next = b.readUInt32LE(aux + 12)
        if (!next) break
        aux += next
      }
      const next = b.readUInt32LE(vn + 12)
      if (!next) break
      vn += next
    }
  }
  return needs
}

/** Every GLIBC_x.y version `file` needs, as 'x.y', sorted ascending. */
export function glibcVersions(file) {
  const all = Object.values(elfVersionNeeds(file)).flat()
  const versions = [
    ...new Set(all.filter((v) => v.startsWith('GLIBC_') && /^GLIBC_[0-9.]+$/.test(v)).map((v) => v.slice(6))),
  ]
  return versions.sort(compareVersions)
}

export function compareVersions(a, b) {
  const pa = a.split('.').map(Number)
  const pb = b.split('.').map(Number)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0)
    if (d) return d
  }
  return 0
}

function hostTriple() {
  return run('rustc', ['-vV'], { capture: true, quiet: true }).match(/^host: (\S+)$/m)[1]
}

function findFiles(dir, name) {
  const out = []
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...findFiles(p, name))
    else if (e.name === name) out.push(p)
  }
  return out
}

export function release(options = {}) {
  const opts = { ...parseArgs([]), ...options }
  const log = opts.quiet ? () => {} : (m) => console.error(`vmtap release: ${m}`)
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))
  const { binaryName, targets } = pkg.napi
  const napi = path.join(path.dirname(require.resolve('@napi-rs/cli/package.json')), 'dist', 'cli.js')
  const durations = {}
  const time = (name, fn) => {
    const t0 = Date.now()
    const r = fn()
    durations[name] = (Date.now() - t0) / 1000
    return r
  }

  // 1. The binaries.
  let artifactsDir = opts.artifacts
  if (!artifactsDir) {
    const triples = opts.targets.length ? opts.targets : crossTargets().length ? crossTargets() : [hostTriple()]
    artifactsDir = path.join(opts.out, 'artifacts')
    fs.rmSync(artifactsDir, { recursive: true, force: true })
    const t0 = Date.now()
    for (const triple of triples) {
      if (!targets.includes(triple)) throw new Error(`vmtap release: ${triple} is not in package.json's napi.targets`)
      const dest = path.join(artifactsDir, `bindings-${triple}`)
      fs.mkdirSync(dest, { recursive: true })
      log(`building ${triple} with the napi-rs cross toolchain`)
      time(`build ${triple}`, () =>
        run(
          process.execPath,
          [
            path.join(root, 'scripts', 'build.mjs'),
            '--native-only',
            '--cross',
            '--',
            '--target',
            triple,
            '--output-dir',
            dest,
          ],
          {
            quiet: opts.quiet,
          },
        ),
      )
    }
    durations.build = (Date.now() - t0) / 1000
  }
  const binaries = {}
  for (const triple of targets) {
    const file = `${binaryName}.${platformOf(triple)}.node`
    const found = findFiles(artifactsDir, file)
    if (found.length > 1)
      throw new Error(`vmtap release: ${file} found twice under ${artifactsDir}: ${found.join(', ')}`)
    if (found.length) binaries[triple] = found[0]
  }
  const built = targets.filter((t) => binaries[t])
  const missing = targets.filter((t) => !binaries[t])
  if (!built.length) throw new Error(`vmtap release: no ${binaryName}.<platform>.node under ${artifactsDir}`)
  if (opts.allTargets && missing.length)
    throw new Error(`vmtap release: no binary for ${missing.join(', ')} under ${artifactsDir}`)

  const glibc = {}
  for (const triple of built.filter((t) => t.endsWith('-gnu'))) {
    const versions = glibcVersions(binaries[triple])
    const max = versions.at(-1) ?? null
    glibc[triple] = max
    if (max && compareVersions(max, GLIBC_FLOOR) > 0) {
      throw new Error(
        `vmtap release: ${binaries[triple]} needs GLIBC_${max}; a release binary may need at most GLIBC_${GLIBC_FLOOR} (build with --cross)`,
      )
    }
    log(`${path.basename(binaries[triple])}: needs at most GLIBC_${max}`)
  }

  // 2. The staged packages.
  const stage = path.join(opts.out, 'package')
  const tarballs = path.join(opts.out, 'tarballs')
  fs.rmSync(stage, { recursive: true, force: true })
  fs.rmSync(tarballs, { recursive: true, force: true })
  fs.mkdirSync(stage, { recursive: true })
  fs.mkdirSync(tarballs, { recursive: true })
  const manifest = { ...pkg }
  for (const f of DEV_ONLY_FIELDS) delete manifest[f]
  manifest.napi = { ...pkg.napi, targets: built } // for `napi artifacts` / `prepublish` below; restored after
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  for (const f of fs.readdirSync(root)) {
    if (/^(README|LICEN[CS]E|COPYING|NOTICE)(\..*)?$/i.test(f)) fs.copyFileSync(path.join(root, f), path.join(stage, f))
  }
  time('tsc', () =>
    run(process.execPath, [
      require.resolve('typescript/bin/tsc'),
      '-p',
      'tsconfig.build.json',
      '--outDir',
      path.join(stage, 'dist'),
    ]),
  )
  for (const triple of built) {
    const p = platformOf(triple)
    const src = path.join(root, 'npm', p)
    if (!fs.existsSync(path.join(src, 'package.json')))
      throw new Error(`vmtap release: ${src} is missing; run napi create-npm-dirs`)
    fs.cpSync(src, path.join(stage, 'npm', p), { recursive: true, filter: (s) => !s.endsWith('.node') })
  }

  // 3. napi artifacts (it also copies the binaries next to package.json, for
  // napi's generated loader; `files` leaves them out, and so do we).
  run(process.execPath, [napi, 'artifacts', '--cwd', stage, '--output-dir', artifactsDir, '--npm-dir', 'npm'], {
    quiet: opts.quiet,
  })
  for (const f of fs.readdirSync(stage)) if (f.endsWith('.node')) fs.rmSync(path.join(stage, f))

  // 4. napi prepublish, publishing nothing.
  const env = { ...process.env, npm_config_dry_run: 'true' }
  for (const k of ['GITHUB_REPOSITORY', 'GITHUB_TOKEN', 'NODE_AUTH_TOKEN', 'NPM_TOKEN']) delete env[k]
  run(
    process.execPath,
    [napi, 'prepublish', '--cwd', stage, '-t', 'npm', '--skip-optional-publish', '--no-gh-release'],
    { env, quiet: opts.quiet },
  )
  const staged = JSON.parse(fs.readFileSync(path.join(stage, 'package.json'), 'utf8'))
  staged.napi = pkg.napi
  staged.optionalDependencies = { ...staged.optionalDependencies }
  for (const triple of targets) staged.optionalDependencies[`${pkg.name}-${platformOf(triple)}`] ??= pkg.version
  staged.optionalDependencies = Object.fromEntries(
    Object.entries(staged.optionalDependencies).sort(([a], [b]) => a.localeCompare(b)),
  )
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(staged, null, 2)}\n`)

  // 5. npm pack.
  const pack = (dir) =>
    JSON.parse(
      run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tarballs], {
        cwd: dir,
        capture: true,
        quiet: true,
      }),
    )[0]
  const packed = { main: null, platforms: {} }
  time('pack', () => {
    for (const triple of built) {
      const p = pack(path.join(stage, 'npm', platformOf(triple)))
      packed.platforms[platformOf(triple)] = {
        file: path.join(tarballs, p.filename),
        name: p.name,
        files: p.files.map((f) => f.path).sort(),
      }
    }
    const m = pack(stage)
    packed.main = { file: path.join(tarballs, m.filename), name: m.name, files: m.files.map((f) => f.path).sort() }
  })

  const summary = {
    name: pkg.name,
    version: pkg.version,
    built,
    missing,
    glibc,
    stage,
    tarballs: packed,
    optionalDependencies: staged.optionalDependencies,
    durations,
  }
  fs.writeFileSync(path.join(opts.out, 'release.json'), `${JSON.stringify(summary, null, 2)}\n`)
  log(
    `tarballs in ${tarballs}: ${[packed.main, ...Object.values(packed.platforms)].map((t) => path.basename(t.file)).join(', ')}`,
  )
  if (missing.length) log(`not built here (their packages are not packed): ${missing.join(', ')}`)
  return summary
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--refuse-publish')) {
    console.error(
      'vmtap: the checkout is not what gets published (its package.json has the build scripts and no optionalDependencies).\n' +
        'Publish the staged packages instead: node scripts/release.mjs --artifacts <dir with every target> --all-targets, then in\n' +
        'target/npm-release/package: napi prepublish -t npm (publishes vmtap-<platform>) and npm publish. CI does this on a v* tag.',
    )
    process.exit(1)
  }
  try {
    const s = release(parseArgs(process.argv.slice(2)))
    console.log(JSON.stringify(s, null, 2))
  } catch (e) {
    console.error(e.message)
    process.exit(1)
  }
}
