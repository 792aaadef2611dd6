// `vmtap create`: a persistent TAP device, like `ip tuntap add` done right.

import type { Command } from 'commander'

import { openTap, type TapDevice } from '../index'
import { renameOptions, UsageError } from './errors'
import { addLinkFlags, type NicSpec, nicOpenOptions, parseInteger } from './flags'

export interface CreateFlags extends Omit<NicSpec, 'vhost' | 'name'> {
  persist?: boolean
  name: string
  owner?: number
  group?: number
}

/** Create a persistent device; returns its name (a %d template filled in). */
export function runCreate(o: CreateFlags): string {
  if (!o.persist) {
    throw new UsageError(
      'create needs --persist: a device that is not persistent vanishes as soon as vmtap exits; run a VM with a temporary device with vmtap exec instead',
    )
  }
  const opts = { ...nicOpenOptions(o), persist: true, exclusive: true }
  if (o.owner !== undefined) opts.owner = o.owner
  if (o.group !== undefined) opts.group = o.group
  let tap: TapDevice
  try {
    tap = openTap(opts)
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

Examples:
  vmtap create --persist --name vm0 --queues 4 --owner "$(id -u qemu)" --bridge br0 --up
  vmtap exec --name vm0 --queues 4 -- qemu-system-x86_64 ... -netdev {netdev} -device {device}
  vmtap delete vm0
`

/** Add `create` to the program. */
export function addCreateCommand(program: Command, onStatus: (status: number) => void): void {
  const cmd = program
    .command('create')
    .description('create a persistent TAP device (needs --persist)')
    .usage('--persist --name NAME [options]')
    .option('--persist', 'required: the device outlives vmtap')
    .requiredOption('--name <name>', 'device name, or a template like vm%d')
    .option('--queues <n>', 'more than 1 makes a multi-queue device', parseInteger)
    .option('--owner <uid>', 'this uid may attach without CAP_NET_ADMIN', parseInteger)
    .option('--group <gid>', 'members of this gid may attach without CAP_NET_ADMIN', parseInteger)
  addLinkFlags(cmd, 'the host-side MAC (unicast)')
    .addHelpText('after', CREATE_HELP)
    .action((opts: CreateFlags) => {
      process.stdout.write(`${runCreate(opts)}\n`)
      onStatus(0)
    })
}
