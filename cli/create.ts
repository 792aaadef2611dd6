// `vmtap create`: a persistent TAP device, like `ip tuntap add` done right (or a
// persistent macvtap, like `ip link add ... type macvtap`).

import type { Command } from 'commander'

import type { TapDevice } from '../index'
import { renameOptions, UsageError } from './errors'
import {
  addHostFlags,
  addLinkFlags,
  addMacvtapFlags,
  addNetnsFlag,
  HOST_HELP,
  isMacvtapNic,
  type NicSpec,
  openNic,
  parseInteger,
  type TapOnlyOptions,
} from './flags'

export interface CreateFlags extends Omit<NicSpec, 'vhost'> {
  /** Accepted for compatibility: create always makes a persistent device. */
  persist?: boolean
  owner?: number
  group?: number
}

/** Create a persistent device (a macvtap with --macvtap); returns its name (a %d template filled in). */
export function runCreate(o: CreateFlags): string {
  if (isMacvtapNic(o)) {
    for (const flag of ['owner', 'group'] as const) {
      if (o[flag] !== undefined) {
        throw new UsageError(
          `--${flag} cannot be combined with --macvtap: a macvtap has no owner or group (its device node's permissions decide)`,
        )
      }
    }
  } else if (o.name === undefined) {
    throw new UsageError("required option '--name <name>' not specified (or give --macvtap LINK)")
  }
  // A TAP device: a new one (never attach to one that exists), owned as asked.
  const tapOnly: TapOnlyOptions = { exclusive: true }
  if (o.owner !== undefined) tapOnly.owner = o.owner
  if (o.group !== undefined) tapOnly.group = o.group
  let tap: TapDevice
  try {
    tap = openNic(o, { persist: true }, tapOnly)
  } catch (e) {
    throw renameOptions(e, null)
  }
  tap.close()
  return tap.ifname
}

const CREATE_HELP = `
Like "ip tuntap add ... mode tap", but multi-queue, vnet_hdr and ownership done
right. --persist is required: a device that is not persistent would vanish as soon
as vmtap exits (use vmtap exec to run a VM with a temporary one). The device must
not exist yet (EBUSY). Prints the device name (a %d in NAME filled in).

--mode tun makes a TUN device (IP packets: no MAC, bridge or vnet header) instead.

--queues Q with Q > 1 makes a multi-queue device; whoever attaches later chooses
how many queues (up to 256). --owner/--group let that uid/gid attach without
CAP_NET_ADMIN (a name: --owner "$(id -u qemu)").

--macvtap LINK makes a persistent macvtap on the host device LINK instead (mode
--macvtap-mode, default bridge; --name optional: the kernel picks macvtap%d).
Its device node is /dev/tap<ifindex> (made by devtmpfs or udev; another
namespace's macvtap with the same ifindex may hold that name); the guest must
use its MAC (ip link show NAME). No --owner/--group (the node's permissions
decide), no --bridge. vmtap delete NAME removes it.

Examples:
  vmtap create --persist --name vm0 --queues 4 --owner "$(id -u qemu)" --bridge br0 --up
  vmtap exec --name vm0 --queues 4 -- qemu-system-x86_64 ... -netdev {netdev} -device {device}
  vmtap delete vm0
  vmtap create --macvtap eth0 --name mvt0 --up
  vmtap create --name vm1 --up --address 192.0.2.1/32 --route 192.0.2.2/32 --proxy-arp --forwarding
${HOST_HELP}
`

/** Add `create` to the program. */
export function addCreateCommand(program: Command, onStatus: (status: number) => void): void {
  const cmd = program
    .command('create')
    .description('create a persistent TAP device (or macvtap)')
    .usage('--name NAME [options] | --macvtap LINK [options]')
    .option('--persist', 'the device outlives vmtap (always so; accepted for compatibility)')
    .option('--name <name>', 'device name, or a template like vm%d (required unless --macvtap)')
    .option('--queues <n>', 'more than 1 makes a multi-queue device', parseInteger)
    .option('--owner <uid>', 'this uid may attach without CAP_NET_ADMIN', parseInteger)
    .option('--group <gid>', 'members of this gid may attach without CAP_NET_ADMIN', parseInteger)
  addMacvtapFlags(
    addNetnsFlag(addHostFlags(addLinkFlags(cmd, "the host-side MAC (unicast), or a macvtap's (the guest's)"))),
  )
    .addHelpText('after', CREATE_HELP)
    .action((opts: CreateFlags) => {
      process.stdout.write(`${runCreate(opts)}\n`)
      onStatus(0)
    })
}
