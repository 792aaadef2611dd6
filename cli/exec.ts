// `vmtap exec`: open TAP device(s), run a command with their fds, wait for it.

import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process'
import { constants as osConstants } from 'node:os'

import { type Command, Option } from 'commander'

import { handOff, limits, type TapDevice } from '../index'
import { EXIT_NOT_FOUND, EXIT_SYSTEM, renameOptions, SpawnError, UsageError } from './errors'
import {
  addHostFlags,
  addLinkFlags,
  addMacvtapFlags,
  addNetnsFlag,
  checkNic,
  HOST_HELP,
  type NicSpec,
  openNic,
  parseInteger,
  parseNetSpec,
  tristateOption,
} from './flags'
import { checkPlaceholders, type Format, substitute } from './placeholders'

export interface ExecFlags extends NicSpec {
  persist?: boolean
  format: Format
  /** The --net groups (undefined: none given). */
  net?: NicSpec[]
}

/** The NICs of an `exec`: one from the flags, or one per --net group with the flags as defaults. */
export function nicsOf(o: ExecFlags): NicSpec[] {
  const defaults: NicSpec = {}
  const shared = [
    'mode',
    'queues',
    'vhost',
    'vnetHdr',
    'bridge',
    'mtu',
    'up',
    'netns',
    'tag',
    'proxyArp',
    'proxyNdp',
    'forwarding',
    'txqueuelen',
    'bridgePort',
  ] as const
  for (const k of shared) {
    if (o[k] !== undefined) (defaults as Record<string, unknown>)[k] = o[k]
  }
  const groups = o.net ?? []
  let nics: NicSpec[]
  if (groups.length === 0) {
    nics = [
      {
        ...defaults,
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(o.mac !== undefined ? { mac: o.mac } : {}),
        ...(o.macvtap !== undefined ? { macvtap: o.macvtap } : {}),
        ...(o.macvtapMode !== undefined ? { macvtapMode: o.macvtapMode } : {}),
        ...(o.address !== undefined ? { address: o.address } : {}),
        ...(o.route !== undefined ? { route: o.route } : {}),
      },
    ]
  } else {
    if (o.name !== undefined)
      throw new UsageError('--name cannot be combined with --net; give each NIC its name=... in its --net group')
    if (o.mac !== undefined)
      throw new UsageError('--mac cannot be combined with --net; give each NIC its mac=... in its --net group')
    if (o.macvtap !== undefined || o.macvtapMode !== undefined) {
      throw new UsageError(
        '--macvtap and --macvtap-mode cannot be combined with --net; give a NIC macvtap=LINK[,macvtap-mode=MODE] in its --net group',
      )
    }
    if (o.address !== undefined)
      throw new UsageError('--address cannot be combined with --net; give each NIC its address=... in its --net group')
    if (o.route !== undefined)
      throw new UsageError('--route cannot be combined with --net; give each NIC its route=... in its --net group')
    nics = groups.map((g) => ({ ...defaults, ...g }))
  }
  return nics.map((nic, i) => {
    const where = groups.length === 0 ? '--vhost' : `--net[${i}] vhost`
    if (o.format === 'cloud-hypervisor') {
      if (nic.vhost !== undefined && nic.vhost !== 'off') {
        throw new UsageError(
          `${where} ${nic.vhost}: cloud-hypervisor takes no vhost-net fds (it does virtio-net itself or vhost-user)`,
        )
      }
      return { ...nic, vhost: 'off' }
    }
    // A TUN device takes no vhost-net fds: 'auto' means none for it.
    return { ...nic, vhost: nic.vhost ?? (nic.mode === 'tun' ? 'off' : 'auto') }
  })
}

const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

const SPAWN_ERRORS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  ENOEXEC: 'exec format error',
  ENOTDIR: 'not a directory',
  E2BIG: 'argument list too long',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in system',
  EAGAIN: 'resource temporarily unavailable',
}

function spawnError(file: string, e: NodeJS.ErrnoException): SpawnError {
  const code = e.code ?? 'EIO'
  if (code === 'ENOENT') return new SpawnError(`${file}: command not found`, code, EXIT_NOT_FOUND)
  return new SpawnError(`cannot run ${file}: ${SPAWN_ERRORS[code] ?? e.message}`, code, EXIT_SYSTEM)
}

/** The exit status of a shell for a child that ended with (code, signal). */
export function shellStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  const n = signal ? (osConstants.signals as Record<string, number>)[signal] : undefined
  return 128 + (n ?? 0)
}

function closeQuietly(taps: readonly TapDevice[]): void {
  for (const t of taps) {
    try {
      t.close()
    } catch {
      // closing is best effort on the way out
    }
  }
}

/** Open the NICs, run the command with their fds, wait for it; resolves with the exit status. */
export async function runExec(command: readonly string[], o: ExecFlags): Promise<number> {
  const [file, ...args] = command
  if (file === undefined || file === '')
    throw new UsageError('exec needs a command: vmtap exec [options] -- COMMAND [ARGS...]')
  const nics = nicsOf(o)
  checkPlaceholders(args, nics, o.format)

  // Catch the forwarded signals before anything is opened: one that arrives
  // while the devices are being set up is handled once this synchronous
  // section is over, and goes to the command (or nowhere, if it could not
  // start) instead of killing vmtap between spawn and setting up forwarding.
  let child: ChildProcess | undefined
  const forward = (sig: NodeJS.Signals) => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        child.kill(sig)
      } catch {
        // it is exiting
      }
    }
  }
  for (const sig of FORWARDED_SIGNALS) process.on(sig, forward)
  const unforward = () => {
    for (const sig of FORWARDED_SIGNALS) process.off(sig, forward)
  }

  const taps: TapDevice[] = []
  let started: ChildProcess
  try {
    // Check every NIC's options before opening the first, so a bad value in
    // the second group never creates (and bridges) the first device.
    const grouped = (o.net ?? []).length !== 0
    nics.forEach((nic, i) => {
      try {
        checkNic(nic, grouped ? (f) => `--net[${i}] ${f}` : undefined)
      } catch (e) {
        throw renameOptions(e, grouped ? i : null)
      }
    })
    nics.forEach((nic, i) => {
      try {
        taps.push(openNic(nic))
      } catch (e) {
        throw renameOptions(e, grouped ? i : null)
      }
    })
    const handed = handOff(taps, { stdio: 'inherit' })
    const argv = substitute(args, handed.devices, o.format)
    try {
      started = child = spawn(file, argv, { stdio: handed.stdio as StdioOptions })
    } catch (e) {
      throw spawnError(file, e as NodeJS.ErrnoException)
    }
  } catch (e) {
    closeQuietly(taps)
    unforward()
    throw e
  }

  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: NodeJS.ErrnoException }>(
    (resolve) => {
      started.once('error', (error) => resolve({ error }))
      started.once('exit', (code, signal) => resolve({ code, signal }))
    },
  )

  if (started.pid === undefined) {
    // Spawning failed (ENOENT, EACCES...): the error event comes next.
    closeQuietly(taps)
    const r = await ended
    unforward()
    throw 'error' in r ? spawnError(file, r.error) : new SpawnError(`cannot run ${file}`, 'EIO', EXIT_SYSTEM)
  }

  // The command runs with its own copies of the fds. Make the devices
  // persistent now (only now: a failed start leaves nothing behind), then
  // close ours, so each device lives exactly as long as the command holds it.
  // A macvtap would not go with the command's fds, and closing ours deletes
  // it: a non-persistent one is kept until the command has exited.
  let persistError: unknown = null
  if (o.persist) {
    for (const t of taps) {
      try {
        t.setPersist(true)
      } catch (e) {
        persistError ??= e
      }
    }
  }
  const untilExit = o.persist ? [] : taps.filter((t) => t.kind === 'macvtap')
  closeQuietly(taps.filter((t) => !untilExit.includes(t)))
  if (persistError !== null) {
    // Rare (the fds are ours); do not leave a VM running that the caller
    // believes has a persistent NIC.
    forward('SIGTERM')
    await ended
    closeQuietly(taps)
    unforward()
    throw persistError
  }

  const r = await ended
  closeQuietly(untilExit)
  unforward()
  if ('error' in r) throw spawnError(file, r.error)
  return shellStatus(r.code, r.signal)
}

const EXEC_HELP = `
Opens the TAP device(s), runs COMMAND with their fds and waits for it. COMMAND
gets vmtap's stdin, stdout and stderr, then the fds from 3 up: NIC by NIC, its
tap fds (one per queue) then its vhost-net fds. vmtap closes its own copies once
COMMAND has started, so a device lives exactly as long as COMMAND holds it; with
--persist it stays afterwards (remove it with vmtap delete NAME). A persistent
device that existed before (vmtap create) is attached to and never removed.

Placeholders, replaced in ARGS (also inside a word; other braces are left alone):
  {ifname}    the interface name, e.g. tap0
  {fds}       the tap fds as COMMAND sees them, colon-separated: 3:4:5:6
  {fd}        the tap fd of a one-queue device (an error with several queues)
  {vhostfds}  the vhost-net fds, colon-separated (needs --vhost on)
  {vhostfd}   the vhost-net fd of a one-queue device (needs --vhost on)
  {netdev}    the whole QEMU -netdev value, e.g. tap,id=net0,fds=3:4,vhost=on,vhostfds=5:6
              (vhost only when there are vhost fds); with --format cloud-hypervisor
              the --net value, e.g. fd=[3,4],num_queues=4
  {device}    a QEMU -device value: virtio-net-pci,netdev=net0,mq=on,vectors=10
  NIC i's netdev id is net<i>. Append i to address NIC i of several --net groups:
  {ifname1} {fds1} {netdev1}...; without a number they mean NIC 0.

Several NICs: one --net group per NIC, in order:
  --net KEY=VALUE[,KEY=VALUE...]   keys: mode, name, queues, vhost, vnet-hdr,
                                   bridge, mtu, mac, up (or up=on|off), netns, tag,
                                   macvtap, macvtap-mode, address and route (each
                                   repeatable), proxy-arp, proxy-ndp, forwarding
                                   (alone: on), txqueuelen
  --mode, --queues, --vhost, --vnet-hdr, --bridge, --mtu, --up, --netns, --tag,
  --proxy-arp, --proxy-ndp, --forwarding, --txqueuelen and --bridge-port given
  outside a group are defaults for every group; --name, --mac, --macvtap,
  --macvtap-mode, --address and --route (one device each) cannot be combined
  with --net.

--mode tun opens a TUN device (IP packets) for programs that take one, such as
a user-space network stack; {netdev} and {device} need TAP devices (the VMMs'
NICs are Ethernet).

--vhost defaults to auto (vhost-net fds when the host has them) with QEMU and to
off with --format cloud-hypervisor, which takes none. --mac is the host-side MAC
of the TAP device; the guest's MAC goes on QEMU's -device.

macvtap (libvirt's "direct" NIC): --macvtap LINK (macvtap=LINK in a --net group)
makes the NIC a macvtap on the host device LINK instead of a TAP device, in mode
--macvtap-mode (bridge, vepa, private or passthru; default bridge). Its fds are
passed like a TAP device's. The guest must use the macvtap's MAC (it receives
nothing else): {device} and {netdev} with --format cloud-hypervisor carry it;
--mac sets it. No --bridge. vmtap keeps the macvtap until COMMAND exits, then
deletes it (with --persist it stays: vmtap delete NAME).

Exit status: COMMAND's; 128+N when it died of signal N; 127 when it does not
exist; 1 when vmtap fails (a TapError, a spawn failure); 2 for a usage error.
SIGINT, SIGTERM and SIGHUP are forwarded to COMMAND.

Examples:
  vmtap exec --queues 4 -- qemu-system-x86_64 -enable-kvm -m 1G -smp 4 -drive file=vm.qcow2 \\
      -netdev {netdev} -device virtio-net-pci,netdev=net0,mq=on,vectors=10
  vmtap exec --name vm%d --bridge br0 --up --queues 2 -- qemu-system-x86_64 ... \\
      -netdev {netdev} -device {device},mac=52:54:00:12:34:56
  vmtap exec --net name=lan%d,queues=2,bridge=br0,up --net name=wan%d -- qemu-system-x86_64 ... \\
      -netdev {netdev0} -device {device0} -netdev {netdev1} -device {device1}
  vmtap exec --format cloud-hypervisor --queues 2 -- cloud-hypervisor --kernel vmlinux ... --net {netdev}
  vmtap exec --name vm0 -- sh -c 'echo "{ifname} has fd {fd}"; ls -l /proc/self/fd'
  vmtap exec --macvtap eth0 --queues 2 --up -- qemu-system-x86_64 ... -netdev {netdev} -device {device}
  vmtap exec --name vm%d --up --address 192.0.2.1/32 --route 192.0.2.2/32 --proxy-arp --forwarding \\
      -- qemu-system-x86_64 ... -netdev {netdev} -device {device}
${HOST_HELP}
`

/** Add `exec` to the program. */
export function addExecCommand(program: Command, onStatus: (status: number) => void): void {
  const cmd = program
    .command('exec')
    .description('open TAP device(s) and run COMMAND with their fds; placeholders in ARGS name them')
    .usage('[options] -- COMMAND [ARGS...]')
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('--name <name>', "device name or template: vm0, vm%d (default: the kernel's tap%d)")
    .option('--queues <n>', `queues (1-${limits.maxQueues}); more than 1 makes a multi-queue device`, parseInteger)
    .addOption(
      tristateOption(
        '--vhost <mode>',
        'vhost-net fds; on: required, auto: when the host has them (default: auto; off for cloud-hypervisor)',
      ),
    )
  addMacvtapFlags(
    addNetnsFlag(addHostFlags(addLinkFlags(cmd, "the host-side MAC of the TAP device, or a macvtap's (the guest's)"))),
  )
    .option('--persist', 'keep the device(s) after COMMAND exits (remove with vmtap delete)')
    .addOption(new Option('--format <vmm>', 'what {netdev} is').choices(['qemu', 'cloud-hypervisor']).default('qemu'))
    .option(
      '--net <group>',
      'one NIC per group, repeatable: KEY=VALUE,... (see below)',
      (v: string, prev?: NicSpec[]) => [...(prev ?? []), parseNetSpec(v)],
    )
    .passThroughOptions()
    .addHelpText('after', EXEC_HELP)
    .action(async (command: string[], opts: ExecFlags) => {
      onStatus(await runExec(command, opts))
    })
}
