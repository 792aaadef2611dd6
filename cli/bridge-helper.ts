// `vmtap bridge-helper`: QEMU's bridge helper protocol (`-netdev
// bridge,br=BR,helper=...`), as a client of the broker: no setuid. QEMU runs
// `HELPER --use-vnet --fd=N --br=BR` (through /bin/sh -c when HELPER has
// spaces); the helper sends one tap fd over fd N (SCM_RIGHTS) and exits 0.

import type { Command } from 'commander'

import { requestTap, sendFds, type RequestTapOptions } from '../index'
import { UsageError } from './errors'
import { parseInteger } from './flags'

export interface BridgeHelperFlags {
  socket: string
  br?: string
  fd?: number
  useVnet?: boolean
  mtu?: number
  timeout?: number
}

/** Ask the broker for a device on the bridge and hand its fd to QEMU. */
export async function runBridgeHelper(o: BridgeHelperFlags): Promise<void> {
  if (o.br === undefined) throw new UsageError('--br=BRIDGE is missing (QEMU passes it from -netdev bridge,br=...)')
  if (o.fd === undefined) throw new UsageError('--fd=N is missing (QEMU passes its socket as --fd=N)')
  const options: RequestTapOptions = { bridge: o.br, vnetHdr: o.useVnet ? 'auto' : false, up: true }
  if (o.mtu !== undefined) options.mtu = o.mtu
  if (o.timeout !== undefined) options.timeoutMs = o.timeout
  const tap = await requestTap(o.socket, options)
  try {
    // QEMU reads one byte and one fd (net/tap.c recv_fd).
    await sendFds(o.fd, Buffer.from([0]), [tap.tapFds[0]], { timeoutMs: o.timeout ?? 30_000 })
  } finally {
    tap.close() // QEMU holds its own copy now; the device lives as long as QEMU
  }
}

const HELPER_HELP = `
QEMU's bridge helper, without setuid: an unprivileged QEMU gets its tap from the
broker (vmtap serve), whose policy must allow the bridge for QEMU's uid.

  qemu-system-x86_64 ... -netdev bridge,id=n0,br=br0,helper="/usr/bin/vmtap bridge-helper --socket /run/vmtap/broker.sock" \\
      -device virtio-net-pci,netdev=n0

QEMU appends --use-vnet --fd=N --br=BRIDGE. The device is single-queue (QEMU's
bridge netdev takes one fd), up, attached to BRIDGE, owned by QEMU's uid, and goes
away when QEMU exits. Add --mtu M (within the policy's mtu range) for a bridge
with a larger MTU. On refusal: one line on stderr and exit status 1, and QEMU
stops with "bridge helper failed".
`

/** Add `bridge-helper` to the program. */
export function addBridgeHelperCommand(program: Command, onStatus: (status: number) => void): void {
  program
    .command('bridge-helper')
    .description("QEMU's -netdev bridge helper, as a client of the broker (no setuid)")
    .usage('--socket PATH [--mtu M] (QEMU adds --use-vnet --fd=N --br=BRIDGE)')
    .requiredOption('--socket <path>', "the broker's socket (vmtap serve --socket)")
    .option('--br <bridge>', 'the bridge (from QEMU)')
    .option('--fd <n>', "QEMU's end of the socketpair (from QEMU)", parseInteger)
    .option('--use-vnet', 'IFF_VNET_HDR when the kernel has it (from QEMU)')
    .option('--mtu <mtu>', "the device's MTU (the policy's mtu range must allow it)", parseInteger)
    .option('--timeout <ms>', 'how long to wait for the broker (default 30000)', parseInteger)
    .addHelpText('after', HELPER_HELP)
    .action(async (opts: BridgeHelperFlags) => {
      await runBridgeHelper(opts)
      onStatus(0)
    })
}
