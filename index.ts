/**
 * vmtap: Linux TAP devices for virtual machines.
 *
 * `openTap()` does what Ganeti's `netdev.OpenTap(name, features)` does — one
 * `/dev/net/tun` fd per queue, IFF_VNET_HDR / IFF_MULTI_QUEUE only when the
 * kernel reports them, one `/dev/vhost-net` fd per queue when asked — and
 * returns a typed `TapDevice` owning close-on-exec fds ready for
 * `qemu -netdev tap,fds=...,vhostfds=...`. `openMacvtap()` makes the other
 * kind of VM NIC, a macvtap on a host device (libvirt's "direct"
 * interface), and returns the same `TapDevice`.
 *
 * This file is the public entry: it documents and re-exports what is public,
 * and nothing else. Each part lives in its own module under lib/:
 *
 * - lib/device.ts   TapDevice, openTap, openTapAsync, openMacvtap, openMacvtapAsync, adoptTap, closeAll
 * - lib/options.ts  openTap's and openMacvtap's options and their validation
 * - lib/net.ts      addresses and routes in CIDR form: the core's rules
 * - lib/host.ts     probeFeatures, getTunFeatures, probeOffloads, deleteTap, hostMacFor
 * - lib/inventory.ts listTaps, tapHolders, gcTaps: the devices of the namespace
 * - lib/handoff.ts  handOff and the QEMU / cloud-hypervisor argument formatters
 * - lib/fdpass.ts   sendFds / recvFds (SCM_RIGHTS)
 * - lib/packet.ts   frames from Node: TapDevice.frames(), frameStream(), writeFrame(); virtio-net headers
 *                   (loaded on first use by lib/device.ts)
 * - lib/qmp.ts      the QMP client and NIC hot-plug (loaded on first use, lib/qmp-lazy.ts)
 * - lib/peer.ts     peerCredentials (SO_PEERCRED, SO_PEERGROUPS)
 * - lib/broker/     the privileged broker: policy, protocol, server, client (loaded on first use, lib/broker-lazy.ts)
 * - lib/errors.ts   TapError and the one table of error codes
 * - lib/limits.ts, lib/constants.ts   the numbers
 * - lib/native.ts, lib/validate.ts    internals: the addon's loader, argument checks
 *
 * Arguments are validated before any syscall; the native addon (crates/node,
 * over the Rust core in crates/tap) does the kernel work.
 */

export { constants, type TunConstants, virtioNet } from './lib/constants'
export type { BrokerLogEntry, BrokerOptions } from './lib/broker/server'
export type { Policy, PolicyInput, PolicyLoadOptions, PolicyRule, PolicyRuleInput } from './lib/broker/policy'
export type { RemoteTapOptions } from './lib/broker/protocol'
export type { RequestTapOptions } from './lib/broker/client'
export { Broker, createBroker, loadPolicy, PolicyError, parsePolicy, requestTap } from './lib/broker-lazy'
export {
  adoptTap,
  closeAll,
  type CloseAllOptions,
  type LinkInfo,
  openMacvtap,
  openMacvtapAsync,
  openTap,
  openTapAsync,
  TapDevice,
} from './lib/device'
export { TapError, type TapErrorFields } from './lib/errors'
export {
  type FdSocket,
  type ReceivedFds,
  type RecvFdsOptions,
  recvFds,
  type SendFdsOptions,
  sendFds,
} from './lib/fdpass'
export {
  cloudHypervisorArgs,
  cloudHypervisorNet,
  type CloudHypervisorNetOptions,
  type HandedDevice,
  type HandOff,
  handOff,
  type HandOffOptions,
  type HandOffSource,
  qemuArgs,
  qemuDevice,
  qemuNetdev,
  type QemuNetOptions,
  type StdioEntry,
} from './lib/handoff'
export {
  deleteTap,
  getTunFeatures,
  hostMacFor,
  probeFeatures,
  probeOffloads,
  type TapFeatures,
  type TunPathOptions,
} from './lib/host'
export {
  type GcEntry,
  type GcFailed,
  type GcKept,
  type GcResult,
  type GcTapsOptions,
  gcTaps,
  type HoldersOptions,
  type InventoryOptions,
  listTaps,
  type TapHolder,
  tapHolders,
  type TapInfo,
  type TapStats,
} from './lib/inventory'
export { type Limits, limits } from './lib/limits'
export {
  type BridgePortFlags,
  checkOpenMacvtapOptions,
  checkOpenTapOptions,
  type HostOptions,
  type LinkOptions,
  type MacvtapMode,
  type Offloads,
  type OpenMacvtapOptions,
  type OpenTapOptions,
} from './lib/options'
export { type PeerCredentials, peerCredentials } from './lib/peer'
export type { FrameIterator, FramesOptions, TapFrame, VirtioNetHeader } from './lib/packet'
export type { HotpluggedNic, HotplugNicOptions, QmpConnectOptions, QmpEvent } from './lib/qmp'
export { connectQmp, hotplugNic, QmpClient, QmpError, unplugNic } from './lib/qmp-lazy'
export type { NetnsSpec, Tristate } from './lib/validate'
