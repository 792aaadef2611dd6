// What the host supports, and the host-level calls that take no device.

import { constants } from './constants'
import { native } from './native'
import { bitsToOffloads, type Offloads } from './options'
import {
  type NetnsSpec,
  netnsOf,
  snapshotOptions,
  TUN_PATH,
  VHOST_PATH,
  validateDeviceName,
  validateFd,
  validateMac,
  validatePath,
} from './validate'

/** What this host supports (from TUNGETFEATURES and /dev/vhost-net). */
export interface TapFeatures {
  /** TUNGETFEATURES, or null when /dev/net/tun cannot be opened. */
  raw: number | null
  tap: boolean
  noPi: boolean
  oneQueue: boolean
  vnetHdr: boolean
  multiQueue: boolean
  /** Whether /dev/vhost-net can be opened read-write by this process. */
  vhostNet: boolean
}

/** Where the host-level calls find the devices. */
export interface TunPathOptions {
  /** The TUN/TAP clone device. Default `/dev/net/tun`. */
  tunPath?: string
  /** The network namespace to act in (as openTap's `netns`). Default: the caller's. */
  netns?: NetnsSpec
}

/**
 * Ask the kernel what it supports (in `netns` when given). Never throws for a
 * missing device: `raw` is null; a namespace that cannot be entered is a
 * TapError.
 */
export function probeFeatures(options?: TunPathOptions & { vhostPath?: string }): TapFeatures {
  const o = snapshotOptions(options, 'options', ['tunPath', 'vhostPath', 'netns'])
  const tunPath = validatePath(o.tunPath, 'options.tunPath', TUN_PATH)
  const vhostPath = validatePath(o.vhostPath, 'options.vhostPath', VHOST_PATH)
  const netns = netnsOf(o.netns)
  const c = constants
  const { raw, vhostNet } = native().probeFeatures(tunPath, vhostPath, netns)
  const has = (flag: number) => raw !== null && (raw & flag) !== 0
  return {
    raw,
    tap: has(c.IFF_TAP),
    noPi: has(c.IFF_NO_PI),
    oneQueue: has(c.IFF_ONE_QUEUE),
    vnetHdr: has(c.IFF_VNET_HDR),
    multiQueue: has(c.IFF_MULTI_QUEUE),
    vhostNet,
  }
}

/** TUNGETFEATURES for `fd`, or null when the ioctl fails (e.g. a regular file). */
export function getTunFeatures(fd: number): number | null {
  return native().getTunFeatures(validateFd(fd, 'fd'))
}

/**
 * Which offloads this kernel accepts (TUNSETOFFLOAD tried on a throwaway
 * kernel-named TAP device). Needs CAP_NET_ADMIN.
 */
export function probeOffloads(options?: TunPathOptions): Required<Offloads> {
  const o = snapshotOptions(options, 'options', ['tunPath', 'netns'])
  const tunPath = validatePath(o.tunPath, 'options.tunPath', TUN_PATH)
  return bitsToOffloads(native().probeOffloads(tunPath, netnsOf(o.netns)))
}

/**
 * Delete a persistent TAP or TUN device: attach to it, TUNSETPERSIST 0, close. A
 * device still held by a process disappears when that one closes it. A
 * macvtap (a persistent one from {@link openMacvtap}; its kind is read with
 * rtnetlink) is deleted with RTM_DELLINK at once, even while a process holds
 * its fds. With `netns`, the device of that name in that namespace.
 */
export function deleteTap(name: string, options?: TunPathOptions): void {
  const n = validateDeviceName(name, 'name')
  const o = snapshotOptions(options, 'options', ['tunPath', 'netns'])
  native().deleteTap(n, validatePath(o.tunPath, 'options.tunPath', TUN_PATH), netnsOf(o.netns))
}

/**
 * The host-side MAC for a guest's MAC, as libvirt and Ganeti derive it: the
 * first octet becomes 0xfe (0xfa if it already is 0xfe), so a bridge never
 * takes the guest's address as its own.
 */
export function hostMacFor(guestMac: string): string {
  const m = validateMac(guestMac, 'guestMac')
  return `${m.startsWith('fe') ? 'fa' : 'fe'}${m.slice(2)}`
}
