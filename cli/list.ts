// `vmtap list`: the TUN/TAP devices of this network namespace, as a table or
// JSON (schema 1).

import type { Command } from 'commander'

import { listTaps, type TapInfo } from '../index'
import { addNetnsFlag } from './flags'

/** `vmtap list --json`, schema 1. */
export interface ListReport {
  schema: 1
  /** listTaps(), in ifindex order. */
  taps: TapInfo[]
}

const HEADER = ['NAME', 'INDEX', 'TYPE', 'QUEUES', 'FLAGS', 'MTU', 'MAC', 'MASTER', 'OWNER', 'TAG']

/** One table row per device; `-` for what a device does not have. */
export function listRow(t: TapInfo): string[] {
  const flags = [t.up && 'up', t.persist && 'persist', t.multiQueue && 'multi_queue', t.vnetHdr && 'vnet_hdr'].filter(
    Boolean,
  )
  const id = (n: number | null) => (n === null ? '-' : String(n))
  return [
    t.ifname,
    String(t.ifindex),
    t.type,
    t.disabledQueues > 0 ? `${t.queues}+${t.disabledQueues}` : String(t.queues),
    flags.length ? flags.join(',') : '-',
    String(t.mtu),
    t.mac ?? '-',
    t.master ?? '-',
    t.owner === null && t.group === null ? '-' : `${id(t.owner)}:${id(t.group)}`,
    t.tag ?? '-',
  ]
}

/** The human table: a header, one row per device, columns aligned. */
export function listTable(taps: readonly TapInfo[]): string {
  if (taps.length === 0) return 'no TUN/TAP devices in this network namespace\n'
  const rows = [HEADER, ...taps.map(listRow)]
  const widths = HEADER.map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n')}\n`
}

const LIST_HELP = `
Every TUN/TAP device of this network namespace, from one netlink dump (no ip, no
sysfs), in ifindex order:
  QUEUES  attached queues; +N: N more attached but disabled (TUNSETQUEUE). A
          single-queue device shows 1 while an fd is attached, else 0.
  FLAGS   up, persist, multi_queue, vnet_hdr
  OWNER   TUNSETOWNER:TUNSETGROUP, - when unset
  TAG     the vmtap tag (openTap's tag, vmtap create/exec --tag), from the
          interface alias vmtap:tag=TAG

--json prints one object (schema 1):
  schema  1
  taps    [{ ifname: string, ifindex: number, type: "tap"|"tun", vnetHdr: bool,
             multiQueue: bool, persist: bool, owner: number|null, group: number|null,
             queues: number, disabledQueues: number, mtu: number, mac: string|null,
             up: bool, master: string|null, tag: string|null }]

Examples:
  vmtap list
  vmtap list --json | jq -r '.taps[] | select(.persist and .queues == 0) | .ifname'
`

/** Add `list` to the program. */
export function addListCommand(program: Command, onStatus: (status: number) => void): void {
  const cmd = program
    .command('list')
    .description('list the TUN/TAP devices of this network namespace')
    .option('--json', 'print JSON (schema 1) instead of a table')
  addNetnsFlag(cmd)
    .addHelpText('after', LIST_HELP)
    .action((opts: { json?: boolean; netns?: string }) => {
      const taps = listTaps(opts.netns === undefined ? {} : { netns: opts.netns })
      const report: ListReport = { schema: 1, taps }
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : listTable(taps))
      onStatus(0)
    })
}
