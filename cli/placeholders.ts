// The placeholders of `vmtap exec`'s arguments: {ifname}, {fds}, {netdev}...

import { cloudHypervisorNet, type HandedDevice, qemuDevice, qemuNetdev } from '../index'
import { UsageError } from './errors'
import type { NicSpec } from './flags'

export type Format = 'qemu' | 'cloud-hypervisor'

// {ifname} {fds} {fd} {vhostfds} {vhostfd} {netdev} {device}, optionally
// followed by a NIC index: {fds1}. Other braces are left alone.
const PLACEHOLDER_RE = /\{(ifname|fds|fd|vhostfds|vhostfd|netdev|device)(0|[1-9][0-9]*)?\}/g

/** The QEMU netdev id of NIC i. */
function netdevId(i: number): string {
  return `net${i}`
}

/**
 * Check every placeholder against what the NICs will be, before any device
 * exists: the index names a NIC, {fd}/{vhostfd} need one queue,
 * {vhostfd(s)} need vhost=on, {device} needs the QEMU format.
 */
export function checkPlaceholders(args: readonly string[], nics: readonly NicSpec[], format: Format): void {
  for (const arg of args) {
    for (const m of arg.matchAll(PLACEHOLDER_RE)) {
      const [whole, what, index] = m
      const i = index === undefined ? 0 : Number(index)
      if (i >= nics.length) {
        const have =
          nics.length === 1
            ? 'there is one NIC (index 0)'
            : `there are ${nics.length} NICs (indexes 0-${nics.length - 1})`
        throw new UsageError(`${whole} names NIC ${i}, but ${have}`)
      }
      const nic = nics[i]
      const queues = nic.queues ?? 1
      if ((what === 'fd' || what === 'vhostfd') && queues !== 1) {
        throw new UsageError(
          `${whole} is for a one-queue device, but NIC ${i} has ${queues} queues; use {${what}s${index ?? ''}}`,
        )
      }
      if ((what === 'vhostfd' || what === 'vhostfds') && nic.vhost !== 'on') {
        throw new UsageError(
          `${whole} needs vhost=on for NIC ${i} (--vhost on); {netdev${index ?? ''}} adds the vhost fds whenever there are some`,
        )
      }
      if (what === 'device' && format !== 'qemu')
        throw new UsageError(`${whole} is a QEMU -device value; it has no meaning with --format ${format}`)
      if ((what === 'netdev' || what === 'device') && nic.mode === 'tun')
        throw new UsageError(`${whole} needs a TAP device, but NIC ${i} is --mode tun (a VMM's NIC is Ethernet)`)
    }
  }
}

/** The value of one placeholder for a handed device. */
function placeholderValue(what: string, d: HandedDevice, i: number, format: Format): string {
  switch (what) {
    case 'ifname':
      return d.ifname
    case 'fds':
      return d.tapFds.join(':')
    case 'fd':
      return String(d.tapFds[0])
    case 'vhostfds':
      return d.vhostFds.join(':')
    case 'vhostfd':
      return String(d.vhostFds[0])
    case 'netdev':
      return format === 'qemu' ? qemuNetdev(d, netdevId(i)) : cloudHypervisorNet(d)
    case 'device':
      return qemuDevice(d, { id: netdevId(i) })
  }
  throw new Error(`unknown placeholder ${what}`)
}

/** Replace the placeholders of `args` with what `devices` (from handOff) are in the child. */
export function substitute(args: readonly string[], devices: readonly HandedDevice[], format: Format): string[] {
  return args.map((arg) =>
    arg.replace(PLACEHOLDER_RE, (_whole, what: string, index: string | undefined) => {
      const i = index === undefined ? 0 : Number(index)
      return placeholderValue(what, devices[i], i, format)
    }),
  )
}
