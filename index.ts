/**
 * vmtap: Linux TAP devices for virtual machines.
 *
 * `openTap()` does what Ganeti's `netdev.OpenTap(name, features)` does — one
 * `/dev/net/tun` fd per queue, IFF_VNET_HDR / IFF_MULTI_QUEUE only when the
 * kernel reports them, one `/dev/vhost-net` fd per queue when asked — and
 * returns a typed `TapDevice` owning close-on-exec fds ready for
 * `qemu -netdev tap,fds=...,vhostfds=...`.
 *
 * This file is the public entry: it documents and re-exports what is public,
 * and nothing else. Each part lives in its own module under lib/:
 *
 * - lib/device.ts   TapDevice, openTap, openTapAsync, closeAll
 * - lib/options.ts  openTap's options and their validation
 * - lib/host.ts     probeFeatures, getTunFeatures, probeOffloads, deleteTap, hostMacFor
 * - lib/handoff.ts  handOff and the QEMU / cloud-hypervisor argument formatters
 * - lib/fdpass.ts   sendFds / recvFds (SCM_RIGHTS)
 * - lib/packet.ts   frames from Node: TapDevice.frames(), frameStream(), writeFrame(); virtio-net headers
 *                   (loaded on first use by lib/device.ts)
 * - lib/qmp.ts      the QMP client and NIC hot-plug (loaded on first use, lib/qmp-lazy.ts)
 * - lib/errors.ts   TapError and the one table of error codes
 * - lib/limits.ts, lib/constants.ts   the numbers
 * - lib/native.ts, lib/validate.ts    internals: the addon's loader, argument checks
 *
 * Arguments are validated before any syscall; the native addon (crates/node,
 * over the Rust core in crates/tap) does the kernel work.
 */

export { constants, type TunConstants, virtioNet } from './lib/constants'
export { closeAll, type CloseAllOptions, type LinkInfo, openTap, openTapAsync, TapDevice } from './lib/device'
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
export { type Limits, limits } from './lib/limits'
export type { FrameIterator, FramesOptions, TapFrame, VirtioNetHeader } from './lib/packet'
export { checkOpenTapOptions, type LinkOptions, type Offloads, type OpenTapOptions } from './lib/options'
export type { HotpluggedNic, HotplugNicOptions, QmpConnectOptions, QmpEvent } from './lib/qmp'
export { connectQmp, hotplugNic, QmpClient, QmpError, unplugNic } from './lib/qmp-lazy'
export type { Tristate } from './lib/validate'
