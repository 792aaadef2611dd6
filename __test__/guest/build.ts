// Builds the end-to-end test guest: a Debian kernel and an initramfs with
// busybox-static, the virtio-net modules (decompressed) and init.sh as /init.
//
//   npx tsx __test__/guest/build.ts      # build if missing, print the paths
//
// Output: .cache/guest/<kernel version>-<key>/{vmlinuz,initrd.gz,manifest.json}.
// The key hashes the kernel version, the kernel image, init.sh, busybox and
// the module list, so a change to any of them builds a new guest; an
// existing one is reused. Nothing here needs root: the initramfs (newc cpio,
// gzip) is written by this file, device nodes included, so neither cpio nor
// fakeroot is needed.
//
// Needs (Debian): linux-image-amd64 (or any linux-image-*: /boot/vmlinuz-V
// and /lib/modules/V), busybox-static; xz-utils / zstd only if the kernel's
// modules are .ko.xz / .ko.zst (Debian 12's are plain .ko).

import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { gunzipSync, gzipSync } from 'node:zlib'

/** Bump when the layout of the initramfs changes. */
const FORMAT = 1

/** The modules the guest needs; their dependencies are added from modules.dep. */
const ROOT_MODULES = ['virtio_pci', 'virtio_net']

export const repoRoot = resolve(__dirname, '..', '..')
export const cacheRoot = join(repoRoot, '.cache', 'guest')
export const initScript = join(__dirname, 'init.sh')

export interface Guest {
  /** The kernel release, e.g. `6.1.0-56-amd64`. */
  kver: string
  /** Path of the kernel image (a copy in the cache). */
  kernel: string
  /** Path of the gzipped newc initramfs. */
  initrd: string
  /** Module names in load order. */
  modules: string[]
  /** Whether this call built it (false: reused from the cache). */
  built: boolean
}

export class GuestBuildError extends Error {}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex')

/** Natural comparison of version strings (6.1.0-10 < 6.1.0-9 is wrong; this says 9 < 10). */
function compareVersions(a: string, b: string): number {
  const pa = a.split(/(\d+)/)
  const pb = b.split(/(\d+)/)
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? ''
    const y = pb[i] ?? ''
    if (x === y) continue
    if (/^\d+$/.test(x) && /^\d+$/.test(y)) return Number(x) - Number(y)
    return x < y ? -1 : 1
  }
  return 0
}

/** The guest kernel: $VMTAP_GUEST_KERNEL (a release), else the newest /boot/vmlinuz-* with its modules. */
export function findKernel(): { kver: string; image: string; modDir: string } {
  const want = process.env.VMTAP_GUEST_KERNEL
  let releases: string[]
  try {
    releases = readdirSync('/boot')
      .filter((f) => f.startsWith('vmlinuz-'))
      .map((f) => f.slice('vmlinuz-'.length))
  } catch {
    releases = []
  }
  releases = releases.filter((v) => existsSync(join('/lib/modules', v, 'modules.dep')))
  if (want) releases = releases.filter((v) => v === want)
  releases.sort(compareVersions)
  const kver = releases.at(-1)
  if (!kver) {
    throw new GuestBuildError(
      want
        ? `guest kernel ${want}: /boot/vmlinuz-${want} or /lib/modules/${want}/modules.dep is missing`
        : 'no guest kernel: need /boot/vmlinuz-<release> and /lib/modules/<release>/modules.dep; ' +
            'install one with: apt-get install --no-install-recommends linux-image-amd64',
    )
  }
  return { kver, image: join('/boot', `vmlinuz-${kver}`), modDir: join('/lib/modules', kver) }
}

/** busybox-static's binary, checked to be static (no PT_INTERP): the initramfs has no libc. */
export function findBusybox(): string {
  const path = process.env.VMTAP_GUEST_BUSYBOX ?? '/bin/busybox'
  let elf: Buffer
  try {
    elf = readFileSync(path)
  } catch {
    throw new GuestBuildError(
      `no ${path}: install busybox-static (apt-get install --no-install-recommends busybox-static)`,
    )
  }
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2) throw new GuestBuildError(`${path} is not a 64-bit ELF file`)
  const phoff = Number(elf.readBigUInt64LE(0x20))
  const phentsize = elf.readUInt16LE(0x36)
  const phnum = elf.readUInt16LE(0x38)
  for (let i = 0; i < phnum; i++) {
    if (elf.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) {
      throw new GuestBuildError(
        `${path} is dynamically linked; the guest needs busybox-static (apt-get install busybox-static)`,
      )
    }
  }
  return path
}

/** The modules to load, dependencies first, as paths relative to modDir (from modules.dep). */
export function resolveModules(
  modDir: string,
  roots: readonly string[] = ROOT_MODULES,
): { name: string; path: string }[] {
  const dep = new Map<string, { path: string; deps: string[] }>()
  const nameOf = (p: string) =>
    p
      .replace(/^.*\//, '')
      .replace(/\.ko(\.(xz|zst|gz))?$/, '')
      .replace(/-/g, '_')
  for (const line of readFileSync(join(modDir, 'modules.dep'), 'utf8').split('\n')) {
    const m = line.match(/^([^:]+):\s*(.*)$/)
    if (!m) continue
    dep.set(nameOf(m[1]), { path: m[1], deps: m[2].split(/\s+/).filter(Boolean).map(nameOf) })
  }
  let builtin = new Set<string>()
  try {
    builtin = new Set(readFileSync(join(modDir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(nameOf))
  } catch {
    // no modules.builtin: treat nothing as built in
  }
  const order: { name: string; path: string }[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string) => {
    if (state.get(name) === 'done') return
    if (state.get(name) === 'visiting') throw new GuestBuildError(`module dependency cycle at ${name}`)
    const d = dep.get(name)
    if (!d) {
      if (builtin.has(name)) return
      throw new GuestBuildError(`module ${name} is neither in ${modDir}/modules.dep nor built in`)
    }
    state.set(name, 'visiting')
    // modules.dep lists a module's dependencies in the reverse of load order
    // (modprobe loads them right to left).
    ;[...d.deps].reverse().forEach(visit)
    state.set(name, 'done')
    order.push({ name, path: d.path })
  }
  roots.forEach(visit)
  return order
}

/** A module file's contents, decompressed (busybox insmod reads plain ELF only). */
function readModule(file: string): Buffer {
  if (file.endsWith('.ko')) return readFileSync(file)
  if (file.endsWith('.ko.gz')) return gunzipSync(readFileSync(file))
  const tool = file.endsWith('.ko.xz') ? 'xz' : file.endsWith('.ko.zst') ? 'zstd' : undefined
  if (!tool) throw new GuestBuildError(`${file}: unknown module compression`)
  try {
    return execFileSync(tool, ['-dc', file], { maxBuffer: 256 << 20 })
  } catch (e) {
    throw new GuestBuildError(
      `${file}: ${tool} -dc failed (${(e as Error).message}); install ${tool === 'xz' ? 'xz-utils' : 'zstd'}`,
    )
  }
}

// --- newc cpio ---------------------------------------------------------------

interface Entry {
  name: string
  mode: number // including the file type bits
  data?: Buffer
  rdev?: [number, number]
}

const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const S_IFLNK = 0o120000
const S_IFCHR = 0o020000

/** The SVR4 "newc" format the kernel unpacks (Documentation/driver-api/early-userspace/buffer-format.rst). */
export function cpioNewc(entries: readonly Entry[]): Buffer {
  const parts: Buffer[] = []
  let offset = 0
  const push = (b: Buffer) => {
    parts.push(b)
    offset += b.length
  }
  const pad4 = () => {
    const n = (4 - (offset % 4)) % 4
    if (n) push(Buffer.alloc(n))
  }
  const hex = (n: number) => n.toString(16).padStart(8, '0')
  const all = [...entries, { name: 'TRAILER!!!', mode: 0 }]
  all.forEach((e, i) => {
    const data = e.data ?? Buffer.alloc(0)
    const name = Buffer.from(`${e.name}\0`)
    const [rmaj, rmin] = e.rdev ?? [0, 0]
    const fields = [
      i + 1,
      e.mode,
      0,
      0,
      (e.mode & S_IFDIR) === S_IFDIR ? 2 : 1,
      0,
      data.length,
      0,
      0,
      rmaj,
      rmin,
      name.length,
      0,
    ]
    push(Buffer.from(`070701${fields.map(hex).join('')}`, 'ascii'))
    push(name)
    pad4()
    push(data)
    pad4()
  })
  return Buffer.concat(parts)
}

// --- build -------------------------------------------------------------------

/** Build the guest unless the cache has it. */
export function buildGuest(options: { log?: (line: string) => void } = {}): Guest {
  const log = options.log ?? (() => {})
  const { kver, image, modDir } = findKernel()
  const busybox = findBusybox()
  const modules = resolveModules(modDir)
  const init = readFileSync(initScript)
  let kernelImage: Buffer
  try {
    kernelImage = readFileSync(image)
  } catch (e) {
    throw new GuestBuildError(`cannot read ${image}: ${(e as Error).message}`)
  }
  const busyboxImage = readFileSync(busybox)
  const key = sha256(
    JSON.stringify({
      FORMAT,
      kver,
      kernel: sha256(kernelImage),
      init: sha256(init),
      busybox: sha256(busyboxImage),
      modules: modules.map((m) => m.path),
    }),
  ).slice(0, 16)
  const dir = join(cacheRoot, `${kver}-${key}`)
  const guest = {
    kver,
    kernel: join(dir, 'vmlinuz'),
    initrd: join(dir, 'initrd.gz'),
    modules: modules.map((m) => m.name),
  }
  if (existsSync(join(dir, 'manifest.json'))) return { ...guest, built: false }

  log(`building the test guest in ${dir} (kernel ${kver}, modules ${guest.modules.join(' ')})`)
  const entries: Entry[] = []
  const dirEntry = (name: string) => entries.push({ name, mode: S_IFDIR | 0o755 })
  for (const d of ['bin', 'dev', 'etc', 'lib', 'lib/modules', 'proc', 'sys', 'tmp', 'root']) dirEntry(d)
  entries.push({ name: 'dev/console', mode: S_IFCHR | 0o600, rdev: [5, 1] })
  entries.push({ name: 'dev/null', mode: S_IFCHR | 0o666, rdev: [1, 3] })
  entries.push({ name: 'bin/busybox', mode: S_IFREG | 0o755, data: busyboxImage })
  entries.push({ name: 'bin/sh', mode: S_IFLNK | 0o777, data: Buffer.from('busybox') })
  entries.push({ name: 'init', mode: S_IFREG | 0o755, data: init })
  for (const m of modules) {
    entries.push({ name: `lib/modules/${m.name}.ko`, mode: S_IFREG | 0o644, data: readModule(join(modDir, m.path)) })
  }
  entries.push({ name: 'etc/vmtap-modules', mode: S_IFREG | 0o644, data: Buffer.from(`${guest.modules.join('\n')}\n`) })
  const initrd = gzipSync(cpioNewc(entries), { level: 6 })

  mkdirSync(cacheRoot, { recursive: true })
  const tmp = join(cacheRoot, `.tmp-${process.pid}-${Date.now()}`)
  mkdirSync(tmp)
  try {
    writeFileSync(join(tmp, 'vmlinuz'), kernelImage)
    writeFileSync(join(tmp, 'initrd.gz'), initrd)
    writeFileSync(
      join(tmp, 'manifest.json'),
      `${JSON.stringify({ ...guest, key, kernelSource: image, busybox, FORMAT }, null, 2)}\n`,
    )
    try {
      renameSync(tmp, dir)
    } catch (e) {
      // Another process built the same guest at the same time: use theirs.
      if (!existsSync(join(dir, 'manifest.json'))) throw e
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true })
  }
  // Guests built from an older init.sh or kernel are of no further use.
  for (const old of readdirSync(cacheRoot)) {
    if (!old.startsWith('.') && join(cacheRoot, old) !== dir)
      rmSync(join(cacheRoot, old), { recursive: true, force: true })
  }
  log(`built ${guest.initrd} (${statSync(guest.initrd).size} bytes)`)
  return { ...guest, built: true }
}

if (require.main === module) {
  try {
    const g = buildGuest({ log: (l) => console.error(l) })
    console.log(JSON.stringify(g, null, 2))
  } catch (e) {
    console.error(`build.ts: ${(e as Error).message}`)
    process.exit(1)
  }
}
