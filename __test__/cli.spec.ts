// The vmtap command: the built CLI (dist/cli.js) run as a shell
// user would run it. Everything that may reach the kernel runs inside a
// network namespace the test creates (`ip netns exec NS node dist/cli.js`),
// so no device ever appears in the host's namespace.
import test from 'ava'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { constants as osConstants, release, tmpdir } from 'node:os'
import { join } from 'node:path'

import { shellStatus } from '../cli/exec'
import { parseNetSpec } from '../cli/flags'
import { checkPlaceholders, substitute } from '../cli/placeholders'
import { featureNames, hasCapNetAdmin } from '../cli/probe'
import { constants } from '../index'
import { ensureDistBuilt, ipLink, isRoot, rootTest, stagedPackage, type IpLink, type T } from './helpers'
import { withNetns } from './netns'

const repo = join(__dirname, '..')
const CLI = join(repo, 'dist', 'cli.js')
const CHILD = join(__dirname, 'fixtures', 'cli', 'child.js')
const NODE = process.execPath
const VHOST = existsSync('/dev/vhost-net')

// ---------------------------------------------------------------------------
// Running the CLI
// ---------------------------------------------------------------------------

// dist/ must be the build of the sources under test.
test.before(() => {
  ensureDistBuilt()
})

interface Ran {
  status: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

interface CliOptions {
  /** Run inside this network namespace (ip netns exec). */
  ns?: string
  /** A command prefix inside the namespace, e.g. setpriv. */
  wrap?: string[]
}

function command(args: readonly string[], o: CliOptions): [string, string[]] {
  // Another uid runs a copy it can read: the checkout may be under a 0700 directory.
  const cli = o.wrap ? join(stagedPackage(), 'dist', 'cli.js') : CLI
  const inner = [...(o.wrap ?? []), NODE, cli, ...args]
  return o.ns ? ['ip', ['netns', 'exec', o.ns, ...inner]] : [inner[0], inner.slice(1)]
}

/** Run `vmtap ARGS...` to completion. */
function cli(args: readonly string[], o: CliOptions = {}): Promise<Ran> {
  const [file, argv] = command(args, o)
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }))
  })
}

/** A failure: exactly one line on stderr, `vmtap: ... (CODE)`, nothing on stdout, and `status`. */
function assertError(t: T, r: Ran, status: number, code: string, message?: RegExp): void {
  t.is(r.status, status, `exit status; stderr: ${r.stderr}`)
  t.is(r.stdout, '')
  t.regex(r.stderr, /^vmtap: [^\n]+\n$/, 'one line on stderr')
  t.true(r.stderr.endsWith(` (${code})\n`), `code ${code} in: ${r.stderr}`)
  if (message) t.regex(r.stderr, message)
}

/** Interfaces in a namespace. */
function nsLinks(ns: string): string[] {
  const r = spawnSync('ip', ['-n', ns, '-j', 'link', 'show'], { encoding: 'utf8' })
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname).sort()
}

interface Report {
  argv: string[]
  fds: Record<string, { target: string; iff: string | null; flags: number }>
  links: Record<string, { mtu: number; flags: number; address: string; tunFlags: number; master: string | null }>
}

function parseReport(t: T, r: Ran): Report {
  t.is(r.status, 0, `vmtap exec failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Report
}

/** fd numbers of the report whose fdinfo has `iff:`, with the device. */
function tapFdsOf(rep: Report): Record<string, string> {
  return Object.fromEntries(Object.entries(rep.fds).flatMap(([fd, f]) => (f.iff ? [[fd, f.iff]] : [])))
}

// Kernel-free tests (help, usage errors) run as root too: inside one shared
// namespace then, in case a regression got as far as opening a device.
let sharedNs: string | undefined
test.before(() => {
  if (!isRoot) return
  sharedNs = `vmtap-cli-${process.pid}`
  spawnSync('ip', ['netns', 'add', sharedNs])
})
test.after.always(() => {
  if (sharedNs) spawnSync('ip', ['netns', 'del', sharedNs])
})
const safe = (args: readonly string[]) => cli(args, { ns: sharedNs })

// ---------------------------------------------------------------------------
// Help and usage errors (no root needed)
// ---------------------------------------------------------------------------

test('--help lists the commands; each command has --help with examples', async (t) => {
  const main = await safe(['--help'])
  t.is(main.status, 0)
  t.is(main.stderr, '')
  for (const c of ['probe', 'exec', 'create', 'delete']) t.regex(main.stdout, new RegExp(`^  ${c}\\b`, 'm'))
  for (const c of ['probe', 'exec', 'create', 'delete']) {
    const r = await safe([c, '--help'])
    t.is(r.status, 0, c)
    t.is(r.stderr, '')
    t.regex(r.stdout, new RegExp(`^Usage: vmtap ${c}`))
    t.regex(r.stdout, /\nExamples?:\n/)
  }
  const exec = await safe(['help', 'exec'])
  t.is(exec.status, 0)
  t.true(exec.stdout.includes('vmtap exec --queues 4 -- qemu-system-x86_64'))
  t.true(exec.stdout.includes('-netdev {netdev} -device virtio-net-pci,netdev=net0,mq=on,vectors=10'))
  for (const p of ['{ifname}', '{fds}', '{fd}', '{vhostfds}', '{netdev}', '{ifname1}', '--net KEY=VALUE'])
    t.true(exec.stdout.includes(p), p)
  const probe = await safe(['probe', '--help'])
  t.true(probe.stdout.includes('schema'))
})

test('--version prints the package version', async (t) => {
  const r = await safe(['--version'])
  t.is(r.status, 0)
  t.is(r.stdout.trim(), (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version)
})

const usageErrors: [string[], string, RegExp][] = [
  [[], 'ERR_USAGE', /no command/],
  [['nosuch'], 'ERR_USAGE', /unknown command 'nosuch'/],
  [['help', 'nosuch'], 'ERR_USAGE', /unknown/],
  [['probe', 'extra'], 'ERR_USAGE', /too many arguments/],
  [['probe', '--jsn'], 'ERR_USAGE', /unknown option '--jsn'; Did you mean --json\?/],
  [['exec'], 'ERR_USAGE', /missing required argument 'command'/],
  [['exec', '--vhost', 'maybe', '--', 'true'], 'ERR_USAGE', /Allowed choices are on, off, auto/],
  [['exec', '--vnet-hdr', 'yes', '--', 'true'], 'ERR_USAGE', /--vnet-hdr/],
  [['exec', '--format', 'xen', '--', 'true'], 'ERR_USAGE', /qemu, cloud-hypervisor/],
  [['exec', '--queues', 'x', '--', 'true'], 'ERR_USAGE', /--queues <n>' argument 'x' is invalid/],
  [['exec', '--queues', '0', '--', 'true'], 'ERR_OUT_OF_RANGE', /"--queues" is out of range/],
  [['exec', '--queues', '257', '--', 'true'], 'ERR_OUT_OF_RANGE', /<= 256/],
  [['exec', '--mtu', '67', '--', 'true'], 'ERR_OUT_OF_RANGE', /"--mtu"/],
  [['exec', '--mac', '01:00:5e:00:00:01', '--', 'true'], 'ERR_INVALID_ARG_VALUE', /'--mac' must be a unicast/],
  [['exec', '--name', 'a/b', '--', 'true'], 'ERR_INVALID_ARG_VALUE', /'--name'/],
  [['exec', '--bridge', 'br%d', '--', 'true'], 'ERR_INVALID_ARG_VALUE', /'--bridge'/],
  [
    ['exec', '--queues', '2', '--', 'echo', '{fd}'],
    'ERR_USAGE',
    /\{fd\} is for a one-queue device, but NIC 0 has 2 queues; use \{fds\}/,
  ],
  [['exec', '--', 'echo', 'x{fds1}'], 'ERR_USAGE', /\{fds1\} names NIC 1, but there is one NIC/],
  [['exec', '--', 'echo', '{vhostfds}'], 'ERR_USAGE', /needs vhost=on/],
  [['exec', '--net', 'foo=1', '--', 'true'], 'ERR_USAGE', /Unknown key 'foo'/],
  [['exec', '--net', 'queues', '--', 'true'], 'ERR_USAGE', /needs a value/],
  [['exec', '--net', 'mtu=1,mtu=2', '--', 'true'], 'ERR_USAGE', /given twice/],
  [['exec', '--net', 'up=maybe', '--', 'true'], 'ERR_USAGE', /up must be on or off/],
  [['exec', '--net', 'mtu=67', '--', 'true'], 'ERR_OUT_OF_RANGE', /"--net\[0\] mtu"/],
  [['exec', '--net', '', '--net', 'queues=0', '--', 'true'], 'ERR_OUT_OF_RANGE', /"--net\[1\] queues"/],
  [['exec', '--net', 'name=a', '--', 'echo', '{netdev2}'], 'ERR_USAGE', /names NIC 2/],
  [['exec', '--name', 'a', '--net', 'name=b', '--', 'true'], 'ERR_USAGE', /--name cannot be combined with --net/],
  [
    ['exec', '--format', 'cloud-hypervisor', '--vhost', 'on', '--', 'true'],
    'ERR_USAGE',
    /cloud-hypervisor takes no vhost-net fds/,
  ],
  [
    ['exec', '--format', 'cloud-hypervisor', '--', 'echo', '{device}'],
    'ERR_USAGE',
    /no meaning with --format cloud-hypervisor/,
  ],
  [['create', '--persist'], 'ERR_USAGE', /required option '--name <name>'/],
  [['create', '--persist', '--name', 'vm0', '--owner', '-1'], 'ERR_USAGE', /--owner <uid>' argument '-1' is invalid/],
  [['create', '--persist', '--name', 'vm0', '--owner', '4294967295'], 'ERR_OUT_OF_RANGE', /"--owner"/],
  [['create', '--persist', '--name', 'vm0', '--vhost', 'on'], 'ERR_USAGE', /unknown option '--vhost'/],
  [['delete'], 'ERR_USAGE', /missing required argument 'name'/],
  [['delete', 'vm%d'], 'ERR_INVALID_ARG_VALUE', /NAME must name the device to delete exactly/],
  [['delete', 'bad name!'], 'ERR_INVALID_ARG_VALUE', /NAME must name the device to delete exactly/],
]
for (const [args, code, message] of usageErrors) {
  test(`usage error → 2, one line: vmtap ${args.map((a) => (a === '' ? "''" : a)).join(' ')}`, async (t) => {
    assertError(t, await safe(args), 2, code, message)
  })
}

// ---------------------------------------------------------------------------
// The pure helpers (imported from cli/)
// ---------------------------------------------------------------------------

test('--net groups parse to NIC specs', (t) => {
  t.deepEqual(parseNetSpec('name=vm%d,queues=4,vhost=auto,vnet-hdr=on,bridge=br0,mtu=9000,mac=fe:54:00:12:34:56,up'), {
    name: 'vm%d',
    queues: 4,
    vhost: 'auto',
    vnetHdr: 'on',
    bridge: 'br0',
    mtu: 9000,
    mac: 'fe:54:00:12:34:56',
    up: true,
  })
  t.deepEqual(parseNetSpec(''), {})
  t.deepEqual(parseNetSpec('up=off'), { up: false })
})

test('placeholders: substituted per NIC, checked before any device exists', (t) => {
  const devices = [
    { ifname: 'vm0', tapFds: [3, 4], vhostFds: [5, 6] },
    { ifname: 'vm1', tapFds: [7], vhostFds: [] },
  ]
  t.deepEqual(
    substitute(
      [
        '{ifname}',
        'fds={fds0},x',
        '{vhostfds}',
        '{netdev}',
        '{netdev1}',
        '{fd1}',
        '{ifname1}',
        '{device1}',
        '{other}',
        '{fds',
      ],
      devices,
      'qemu',
    ),
    [
      'vm0',
      'fds=3:4,x',
      '5:6',
      'tap,id=net0,fds=3:4,vhost=on,vhostfds=5:6',
      'tap,id=net1,fd=7',
      '7',
      'vm1',
      'virtio-net-pci,netdev=net1',
      '{other}',
      '{fds',
    ],
  )
  t.deepEqual(substitute(['{netdev}', '{netdev1}'], devices, 'cloud-hypervisor'), [
    'fd=[3,4],num_queues=4',
    'fd=[7],num_queues=2',
  ])
  const nics = [{ queues: 2, vhost: 'on' as const }, { vhost: 'auto' as const }]
  t.notThrows(() => checkPlaceholders(['{fds}', '{vhostfds0}', '{fd1}', '{netdev1}'], nics, 'qemu'))
  t.throws(() => checkPlaceholders(['{vhostfd1}'], nics, 'qemu'), { message: /needs vhost=on for NIC 1/ })
  t.throws(() => checkPlaceholders(['{fds2}'], nics, 'qemu'), { message: /there are 2 NICs \(indexes 0-1\)/ })
})

test('TUNGETFEATURES bits by name, CapEff bit 12, shell exit statuses', (t) => {
  t.deepEqual(
    featureNames(constants.IFF_TAP | constants.IFF_NO_PI | constants.IFF_VNET_HDR | constants.IFF_MULTI_QUEUE | 0x10),
    ['IFF_TAP', 'IFF_NAPI', 'IFF_MULTI_QUEUE', 'IFF_NO_PI', 'IFF_VNET_HDR'],
  )
  t.deepEqual(featureNames(0x80000), ['0x80000'])
  t.true(hasCapNetAdmin('Name:\tx\nCapEff:\t0000000000001000\n'))
  t.false(hasCapNetAdmin('CapEff:\t000001fffeffefff\n'))
  t.is(hasCapNetAdmin('nothing'), null)
  t.is(shellStatus(3, null), 3)
  t.is(shellStatus(null, 'SIGKILL'), 137)
  t.is(shellStatus(null, 'SIGTERM'), 143)
})

// ---------------------------------------------------------------------------
// probe
// ---------------------------------------------------------------------------

const OFFLOAD_KEYS = ['csum', 'tso4', 'tso6', 'ecn', 'ufo', 'uso4', 'uso6']

function assertProbeSchema(t: T, j: Record<string, any>): void {
  t.deepEqual(Object.keys(j).sort(), [
    'capNetAdmin',
    'features',
    'kernel',
    'maxQueues',
    'offloads',
    'offloadsUnknownReason',
    'schema',
    'tun',
    'vhostNet',
    'vnetHdr',
  ])
  t.is(j.schema, 1)
  t.is(j.kernel, release())
  t.is(typeof j.capNetAdmin, 'boolean')
  for (const node of [j.tun, j.vhostNet]) {
    t.deepEqual(Object.keys(node).sort(), ['error', 'exists', 'openable', 'path'])
    t.is(typeof node.exists, 'boolean')
    t.is(typeof node.openable, 'boolean')
    t.is(node.error === null, node.openable)
  }
  t.is(j.tun.path, '/dev/net/tun')
  t.is(j.vhostNet.path, '/dev/vhost-net')
  t.deepEqual(Object.keys(j.features).sort(), ['multiQueue', 'names', 'noPi', 'oneQueue', 'raw', 'tap', 'vnetHdr'])
  t.is(typeof j.features.raw, 'number')
  t.true(Array.isArray(j.features.names))
  for (const k of ['tap', 'noPi', 'oneQueue', 'vnetHdr', 'multiQueue']) t.is(typeof j.features[k], 'boolean', k)
  t.is(j.vnetHdr, j.features.vnetHdr)
  t.is(typeof j.maxQueues, 'number')
  t.true(j.offloads === null || typeof j.offloads === 'object')
  t.is(j.offloads === null, typeof j.offloadsUnknownReason === 'string')
}

rootTest('probe: the table and --json (schema 1) as root', async (t) => {
  await withNetns(async (ns) => {
    const json = await cli(['probe', '--json'], { ns })
    t.is(json.status, 0, json.stderr)
    t.is(json.stderr, '')
    const j = JSON.parse(json.stdout)
    assertProbeSchema(t, j)
    t.true(j.capNetAdmin)
    t.like(j.tun, { exists: true, openable: true, error: null })
    t.like(j.vhostNet, { exists: VHOST, openable: VHOST, error: VHOST ? null : 'ENOENT' })
    t.true(j.features.tap && j.features.noPi && j.features.vnetHdr && j.features.multiQueue)
    for (const n of ['IFF_TUN', 'IFF_TAP', 'IFF_NO_PI', 'IFF_VNET_HDR', 'IFF_MULTI_QUEUE'])
      t.true(j.features.names.includes(n), n)
    t.is(j.maxQueues, 256)
    t.deepEqual(Object.keys(j.offloads), OFFLOAD_KEYS)
    t.true(j.offloads.csum)
    t.is(j.offloadsUnknownReason, null)
    t.deepEqual(nsLinks(ns), ['lo'], 'the offload probe left no device')

    const table = await cli(['probe'], { ns })
    t.is(table.status, 0)
    const rows = table.stdout.trimEnd().split('\n')
    const keys = [
      'kernel',
      'CAP_NET_ADMIN',
      '/dev/net/tun',
      '/dev/vhost-net',
      'TUNGETFEATURES',
      'tap',
      'multi-queue',
      'vnet_hdr',
      'vhost-net',
      'offloads',
    ]
    t.deepEqual(
      rows.map((r) => r.split(/\s{2,}/)[0]),
      keys,
    )
    const column = rows[0].search(/\S+$/)
    for (const r of rows) t.is(r.search(/(?<=\s\s)\S/), column, `aligned: ${r}`)
    const row = (k: string) => rows.find((r) => r.startsWith(`${k} `))!.slice(column)
    t.is(row('kernel'), release())
    t.is(row('CAP_NET_ADMIN'), 'yes')
    t.is(row('/dev/net/tun'), 'present, read/write')
    t.is(row('/dev/vhost-net'), VHOST ? 'present, read/write' : 'absent (ENOENT)')
    t.regex(
      row('TUNGETFEATURES'),
      new RegExp(`^0x${j.features.raw.toString(16).padStart(4, '0')} ${j.features.names.join(' ')}$`),
    )
    t.is(row('multi-queue'), 'yes, up to 256 queues per device')
    t.is(row('vnet_hdr'), 'yes')
    t.is(row('offloads'), OFFLOAD_KEYS.filter((k) => j.offloads[k]).join(' '))
  })
})

const NOBODY = [
  'setpriv',
  '--reuid',
  '65534',
  '--regid',
  '65534',
  '--clear-groups',
  '--inh-caps=-all',
  '--bounding-set=-all',
]

rootTest('probe without CAP_NET_ADMIN: offloads unknown, not a failure', async (t) => {
  await withNetns(async (ns) => {
    const json = await cli(['probe', '--json'], { ns, wrap: NOBODY })
    t.is(json.status, 0, json.stderr)
    const j = JSON.parse(json.stdout)
    assertProbeSchema(t, j)
    t.false(j.capNetAdmin)
    t.is(j.offloads, null)
    t.is(j.offloadsUnknownReason, 'needs CAP_NET_ADMIN')
    t.is(j.tun.exists, true)
    const table = await cli(['probe'], { ns, wrap: NOBODY })
    t.is(table.status, 0)
    t.regex(table.stdout, /^CAP_NET_ADMIN +no$/m)
    t.regex(table.stdout, /^offloads +unknown \(needs CAP_NET_ADMIN\)$/m)
  })
})

// ---------------------------------------------------------------------------
// System errors
// ---------------------------------------------------------------------------

rootTest('system errors → 1 with the TapError message and code; spawn failures; nothing left behind', async (t) => {
  await withNetns(async (ns) => {
    assertError(
      t,
      await cli(['delete', 'nosuchdev'], { ns }),
      1,
      'ENODEV',
      /^vmtap: ENODEV: no such device, .*nosuchdev/,
    )

    const vhost = await cli(['exec', '--name', 'vmv0', '--vhost', 'on', '--', NODE, CHILD, 'report', '{vhostfds}'], {
      ns,
    })
    if (VHOST) {
      const rep = parseReport(t, vhost)
      t.true(rep.argv[0].split(':').every((fd) => rep.fds[fd]?.target === '/dev/vhost-net'))
    } else {
      assertError(t, vhost, 1, 'ENOENT', /^vmtap: ENOENT: no such file or directory, open '\/dev\/vhost-net': /)
    }
    t.deepEqual(nsLinks(ns), ['lo'])

    assertError(t, await cli(['exec', '--bridge', 'nobr0', '--', 'true'], { ns }), 1, 'ENODEV', /no bridge nobr0/)
    assertError(
      t,
      await cli(['exec', '--', '/nonexistent/vmtap-cmd', '{fds}'], { ns }),
      127,
      'ENOENT',
      /^vmtap: \/nonexistent\/vmtap-cmd: command not found/,
    )
    assertError(t, await cli(['exec', '--', 'vmtap-no-such-command'], { ns }), 127, 'ENOENT', /command not found/)
    // child.js is not executable (mode 0644)
    assertError(
      t,
      await cli(['exec', '--persist', '--name', 'vme0', '--', CHILD], { ns }),
      1,
      'EACCES',
      /permission denied/,
    )
    assertError(
      t,
      await cli(['exec', '--persist', '--name', 'vme1', '--', 'vmtap-no-such-command'], { ns }),
      127,
      'ENOENT',
    )
    t.deepEqual(nsLinks(ns), ['lo'], 'no device after failures, --persist included')
  })
})

// ---------------------------------------------------------------------------
// exec: fds, placeholders, link options
// ---------------------------------------------------------------------------

rootTest('exec: the fds arrive at the advertised numbers and the placeholders are filled', async (t) => {
  await withNetns(async (ns) => {
    const r = await cli(
      [
        'exec',
        '--name',
        'vmc%d',
        '--queues',
        '3',
        '--vhost',
        'off',
        '--',
        NODE,
        CHILD,
        'report',
        '{ifname}',
        '{fds}',
        '{netdev}',
        '{device}',
        'fds={fds0},x',
        '{other}',
        '{ifname0}',
      ],
      { ns },
    )
    const rep = parseReport(t, r)
    const [ifname, fds, netdev, device, embedded, other, ifname0] = rep.argv
    t.regex(ifname, /^vmc\d+$/)
    t.is(fds, '3:4:5')
    t.is(netdev, 'tap,id=net0,fds=3:4:5')
    t.is(device, 'virtio-net-pci,netdev=net0,mq=on,vectors=8')
    t.is(embedded, 'fds=3:4:5,x')
    t.is(other, '{other}')
    t.is(ifname0, ifname)
    // Exactly the advertised fds are tap fds, each attached to the device.
    t.deepEqual(tapFdsOf(rep), { 3: ifname, 4: ifname, 5: ifname })
    for (const fd of ['3', '4', '5']) t.is(rep.fds[fd].target, '/dev/net/tun')
    const flags = rep.links[ifname].tunFlags
    t.truthy(flags & constants.IFF_MULTI_QUEUE)
    t.truthy(flags & constants.IFF_VNET_HDR)
    t.falsy(flags & constants.IFF_PERSIST)
    t.deepEqual(nsLinks(ns), ['lo'], 'the device went with the child')
    // vmtap's stdout is a pipe here: it must not have made the shared open
    // file O_NONBLOCK under the command (QEMU's stdio would get EAGAIN).
    for (const fd of ['0', '1', '2']) t.is(rep.fds[fd].flags & 0o4000, 0, `fd ${fd} is blocking`)

    const one = parseReport(
      t,
      await cli(
        ['exec', '--name', 'vms0', '--vhost', 'off', '--', NODE, CHILD, 'report', '{fd}', '{netdev}', '{fds}'],
        { ns },
      ),
    )
    t.deepEqual(one.argv, ['3', 'tap,id=net0,fd=3', '3'])
    t.deepEqual(tapFdsOf(one), { 3: 'vms0' })

    // Without `--`: options after the command belong to the command.
    const bare = parseReport(
      t,
      await cli(['exec', '--vhost', 'off', NODE, CHILD, 'report', '--queues', '{fd}'], { ns }),
    )
    t.deepEqual(bare.argv, ['--queues', '3'])
    t.deepEqual(nsLinks(ns), ['lo'])
  })
})

rootTest('exec with two --net groups: indexed placeholders, per-NIC options, flags as defaults', async (t) => {
  await withNetns(async (ns) => {
    const r = await cli(
      [
        'exec',
        '--vhost',
        'off',
        '--mtu',
        '1400',
        '--net',
        'name=vma%d,queues=2,mtu=9000,up',
        '--net',
        'name=vmb0,vnet-hdr=off',
        '--',
        NODE,
        CHILD,
        'report',
        '{ifname}',
        '{ifname0}',
        '{fds0}',
        '{ifname1}',
        '{fds1}',
        '{fd1}',
        '{netdev0}',
        '{netdev1}',
        '{device1}',
      ],
      { ns },
    )
    const rep = parseReport(t, r)
    const [ifname, ifname0, fds0, ifname1, fds1, fd1, netdev0, netdev1, device1] = rep.argv
    t.regex(ifname, /^vma\d+$/)
    t.is(ifname0, ifname)
    t.is(fds0, '3:4')
    t.is(ifname1, 'vmb0')
    t.is(fds1, '5')
    t.is(fd1, '5')
    t.is(netdev0, 'tap,id=net0,fds=3:4')
    t.is(netdev1, 'tap,id=net1,fd=5')
    t.is(device1, 'virtio-net-pci,netdev=net1')
    t.deepEqual(tapFdsOf(rep), { 3: ifname, 4: ifname, 5: 'vmb0' })
    t.like(rep.links[ifname], { mtu: 9000 })
    t.is(rep.links[ifname].flags & 1, 1, 'up')
    t.truthy(rep.links[ifname].tunFlags & constants.IFF_MULTI_QUEUE)
    t.like(rep.links.vmb0, { mtu: 1400 }, '--mtu is the default of a group without mtu=')
    t.is(rep.links.vmb0.flags & 1, 0)
    t.falsy(rep.links.vmb0.tunFlags & constants.IFF_VNET_HDR, 'vnet-hdr=off')
    t.deepEqual(nsLinks(ns), ['lo'])
  })
})

rootTest('exec: --bridge, --mtu, --mac (host side) and --up are applied; --format cloud-hypervisor', async (t) => {
  await withNetns(async (ns) => {
    spawnSync('ip', ['-n', ns, 'link', 'add', 'br0', 'type', 'bridge'])
    const rep = parseReport(
      t,
      await cli(
        [
          'exec',
          '--name',
          'vml0',
          '--bridge',
          'br0',
          '--mtu',
          '9000',
          '--mac',
          'FE:54:00:12:34:56',
          '--up',
          '--',
          NODE,
          CHILD,
          'report',
        ],
        { ns },
      ),
    )
    t.like(rep.links.vml0, { mtu: 9000, address: 'fe:54:00:12:34:56', master: 'br0' })
    t.is(rep.links.vml0.flags & 1, 1)

    const ch = parseReport(
      t,
      await cli(
        [
          'exec',
          '--format',
          'cloud-hypervisor',
          '--queues',
          '2',
          '--',
          NODE,
          CHILD,
          'report',
          '{netdev}',
          '{fds}',
          '{ifname}',
        ],
        { ns },
      ),
    )
    t.deepEqual(ch.argv.slice(0, 2), ['fd=[3,4],num_queues=4', '3:4'])
    t.deepEqual(tapFdsOf(ch), { 3: ch.argv[2], 4: ch.argv[2] })
    t.false(
      Object.values(ch.fds).some((f) => f.target === '/dev/vhost-net'),
      'no vhost fds for cloud-hypervisor',
    )
    t.deepEqual(nsLinks(ns), ['br0', 'lo'])
  })
})

// ---------------------------------------------------------------------------
// exec: exit status, signals, persistence
// ---------------------------------------------------------------------------

rootTest("exec exits with the child's status, 128+N when it died of signal N", async (t) => {
  await withNetns(async (ns) => {
    const run = (...a: string[]) => cli(['exec', '--name', 'vmx0', '--', NODE, CHILD, ...a], { ns })
    const cases: [string[], number][] = [
      [['exit', '0'], 0],
      [['exit', '7'], 7],
      [['exit', '255'], 255],
      [['kill', 'SIGKILL'], 137],
      [['kill', 'SIGTERM'], 143],
    ]
    for (const [args, status] of cases) {
      const r = await run(...args)
      t.is(r.status, status, args.join(' '))
      t.is(r.stderr, '')
    }
    t.deepEqual(nsLinks(ns), ['lo'])
  })
})

/** Start `vmtap exec` in the background; resolves once the child printed "ready". */
function startWaiting(ns: string, args: string[]) {
  const [file, argv] = command(['exec', ...args], { ns })
  const p = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  p.stderr.on('data', (d) => (stderr += d))
  const done = new Promise<Ran>((resolve, reject) => {
    p.on('error', reject)
    p.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }))
  })
  const ready = new Promise<void>((resolve, reject) => {
    p.stdout.on('data', (d) => {
      stdout += d
      if (stdout.includes('ready\n')) resolve()
    })
    done.then((r) => reject(new Error(`vmtap exited before the child was ready: ${JSON.stringify(r)}`)), reject)
  })
  return { p, ready, done }
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  rootTest(`exec forwards ${sig} to the child and exits with its status; the device goes with it`, async (t) => {
    await withNetns(async (ns) => {
      const w = startWaiting(ns, ['--name', 'vmw0', '--queues', '2', '--', NODE, CHILD, 'wait'])
      try {
        await w.ready
        t.truthy(ipLink('vmw0', ns), 'the device exists while the child runs')
        // `ip netns exec` execs: the pid is vmtap's.
        t.true(readFileSync(`/proc/${w.p.pid}/cmdline`, 'utf8').includes(CLI))
        w.p.kill(sig)
        const r = await w.done
        t.is(r.stdout, `ready\ngot ${sig}\n`)
        t.is(r.status, 100 + osConstants.signals[sig])
        t.is(r.stderr, '')
        t.deepEqual(nsLinks(ns), ['lo'])
      } finally {
        w.p.kill('SIGKILL')
      }
    })
  })
}

rootTest('exec: a child that dies of the forwarded signal makes vmtap exit 128+N', async (t) => {
  await withNetns(async (ns) => {
    const w = startWaiting(ns, ['--', NODE, CHILD, 'wait-default'])
    try {
      await w.ready
      w.p.kill('SIGTERM')
      const r = await w.done
      t.is(r.status, 143)
      t.is(r.stdout, 'ready\n')
      t.deepEqual(nsLinks(ns), ['lo'])
    } finally {
      w.p.kill('SIGKILL')
    }
  })
})

function tunInfo(name: string, ns: string): NonNullable<NonNullable<IpLink['linkinfo']>['info_data']> | undefined {
  return ipLink(name, ns)?.linkinfo?.info_data
}

rootTest('exec --persist leaves the device; vmtap delete removes it', async (t) => {
  await withNetns(async (ns) => {
    const r = await cli(['exec', '--persist', '--name', 'vmp0', '--queues', '2', '--', NODE, CHILD, 'exit', '3'], {
      ns,
    })
    t.is(r.status, 3)
    t.like(tunInfo('vmp0', ns), { persist: true, multi_queue: true, numqueues: 0 })
    const del = await cli(['delete', 'vmp0'], { ns })
    t.is(del.status, 0, del.stderr)
    t.is(del.stdout + del.stderr, '')
    t.deepEqual(nsLinks(ns), ['lo'])
    assertError(t, await cli(['delete', 'vmp0'], { ns }), 1, 'ENODEV')
  })
})

// ---------------------------------------------------------------------------
// create / delete
// ---------------------------------------------------------------------------

rootTest('create --persist with --owner/--group, attach as that owner through exec, delete', async (t) => {
  await withNetns(async (ns) => {
    const c = await cli(
      [
        'create',
        '--persist',
        '--name',
        'vmo%d',
        '--queues',
        '4',
        '--owner',
        '65534',
        '--group',
        '65534',
        '--vnet-hdr',
        'on',
        '--mtu',
        '1400',
      ],
      { ns },
    )
    t.is(c.status, 0, c.stderr)
    t.is(c.stdout, 'vmo0\n')
    t.is(c.stderr, '')
    const link = ipLink('vmo0', ns)!
    t.is(link.mtu, 1400)
    const info = link.linkinfo!.info_data!
    t.like(info, { type: 'tap', persist: true, multi_queue: true, vnet_hdr: true, numqueues: 0 })
    t.true([65534, 'nobody'].includes(info.user as number | string), `user ${info.user}`)
    t.true([65534, 'nogroup', 'nobody'].includes(info.group as number | string), `group ${info.group}`)

    assertError(t, await cli(['create', '--persist', '--name', 'vmo0'], { ns }), 1, 'EBUSY', /already exists/)

    // The owner attaches all 4 queues without any capability (a 0666 tun
    // node bind-mounted over /dev/net/tun, as distributions ship it).
    const dir = mkdtempSync(join(tmpdir(), 'vmtap-cli-'))
    try {
      chmodSync(dir, 0o755)
      const as = (uid: number) =>
        cli(['exec', '--name', 'vmo0', '--queues', '4', '--', 'ip', '-d', '-j', 'link', 'show', 'dev', '{ifname}'], {
          ns,
          wrap: [
            'sh',
            '-c',
            `{ [ -e ${dir}/tun ] || mknod -m 666 ${dir}/tun c 10 200; } && mount --bind ${dir}/tun /dev/net/tun && exec "$@"`,
            'sh',
            'setpriv',
            `--reuid=${uid}`,
            `--regid=${uid}`,
            '--clear-groups',
            '--inh-caps=-all',
            '--bounding-set=-all',
          ],
        })
      const owner = await as(65534)
      t.is(owner.status, 0, owner.stderr)
      t.like((JSON.parse(owner.stdout) as IpLink[])[0].linkinfo!.info_data, { numqueues: 4, persist: true })
      assertError(t, await as(65533), 1, 'EPERM')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    t.like(tunInfo('vmo0', ns), { persist: true, numqueues: 0 }, 'exec leaves a device it did not create')

    const d = await cli(['delete', 'vmo0'], { ns })
    t.is(d.status, 0, d.stderr)
    t.deepEqual(nsLinks(ns), ['lo'])
  })
})

rootTest('create --persist with --bridge, --mac and --up; a single-queue device', async (t) => {
  await withNetns(async (ns) => {
    spawnSync('ip', ['-n', ns, 'link', 'add', 'br0', 'type', 'bridge'])
    const c = await cli(
      [
        'create',
        '--persist',
        '--name',
        'vmq0',
        '--bridge',
        'br0',
        '--mac',
        'fe:00:00:00:00:01',
        '--up',
        '--vnet-hdr',
        'off',
      ],
      { ns },
    )
    t.is(c.status, 0, c.stderr)
    const link = ipLink('vmq0', ns)!
    t.is(link.master, 'br0')
    t.is(link.address, 'fe:00:00:00:00:01')
    t.true(link.flags.includes('UP'))
    t.like(link.linkinfo!.info_data, { persist: true, multi_queue: false, vnet_hdr: false })
    t.is((await cli(['delete', 'vmq0'], { ns })).status, 0)
    t.deepEqual(nsLinks(ns), ['br0', 'lo'])
  })
})

rootTest('create needs no --persist (it always makes a persistent device); delete speaks of deleting', async (t) => {
  await withNetns(async (ns) => {
    const c = await cli(['create', '--name', 'vmnp0'], { ns })
    t.is(c.status, 0, c.stderr)
    t.is(c.stdout.trim(), 'vmnp0')
    t.like(ipLink('vmnp0', ns)!.linkinfo!.info_data, { persist: true })
    t.is((await cli(['delete', 'vmnp0'], { ns })).status, 0)
    assertError(
      t,
      await cli(['delete', 'lo'], { ns }),
      1,
      'EINVAL',
      /lo is not a TUN\/TAP device.*deleteTap removes TUN\/TAP devices only/,
    )
    t.deepEqual(nsLinks(ns), ['lo'])
  })
})

rootTest('--netns on create, exec, probe and delete: the device lives and is found in that namespace', async (t) => {
  await withNetns(async (ns) => {
    await withNetns(async (other) => {
      const c = await cli(['create', '--name', 'vmns0', '--netns', other], { ns })
      t.is(c.status, 0, c.stderr)
      t.truthy(ipLink('vmns0', other), 'created in the other namespace')
      t.is(ipLink('vmns0', ns), undefined, 'not in the one vmtap ran in')
      const p = await cli(['probe', '--json', '--netns', other], { ns })
      t.is(p.status, 0, p.stderr)
      t.not(JSON.parse(p.stdout).offloads, null, 'offloads probed in the other namespace')
      const e = await cli(['exec', '--name', 'vmns1', '--netns', other, '--', NODE, CHILD, 'report', '{fds}'], { ns })
      t.is(e.status, 0, e.stderr)
      const mq = await cli(['exec', '--net', `name=vmns2,queues=2,netns=${other}`, '--', 'true'], { ns })
      t.is(mq.status, 0, mq.stderr)
      t.is((await cli(['delete', '--netns', other, 'vmns0'], { ns })).status, 0)
      t.deepEqual(nsLinks(other), ['lo'])
      assertError(
        t,
        await cli(['delete', '--netns', 'vmtap-no-such', 'x0'], { ns }),
        1,
        'ENOENT',
        /no network namespace/,
      )
    })
  })
})

test('a copy of the package without its native binary fails at once with one clear line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-nobin-'))
  try {
    const staged = stagedPackage()
    for (const f of ['dist', 'package.json', 'node_modules']) cpSync(join(staged, f), join(dir, f), { recursive: true })
    const r = spawnSync(NODE, [join(dir, 'dist', 'cli.js'), 'probe'], {
      encoding: 'utf8',
      env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: '' },
    })
    assertError(t, { ...r, signal: null } as Ran, 1, 'ERR_VMTAP_NO_BINARY', /^vmtap: no native binary loads/)
    t.notRegex(r.stderr, /vmtap: vmtap:/, 'no doubled prefix')
    t.notRegex(r.stderr, /Tried: ?;/, 'no empty entry in the list of what was tried')
    t.regex(r.stderr, /Tried: [^;]+vmtap\.linux-[^;]+: not found; /)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
