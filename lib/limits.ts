// The numbers vmtap's argument checks use, in one place. They are the Rust
// core's (crates/tap/src/rules.rs): the addon exports the core's own values
// as `limits`, and a test checks that these equal them.

/** Limits of the kernel and of vmtap, as the core enforces them. */
export interface Limits {
  /** Queues of one TAP device or macvtap (the kernel's MAX_TAP_QUEUES, 256 in both drivers). */
  readonly maxQueues: number
  /** The smallest MTU (IPv4's minimum). */
  readonly minMtu: number
  /** The largest MTU SIOCSIFMTU carries. */
  readonly maxMtu: number
  /** The largest MTU a TAP device takes. */
  readonly tapMaxMtu: number
  /** The virtio-net header sizes TUNSETVNETHDRSZ takes. */
  readonly vnetHdrSizes: readonly number[]
  /** Every TUNSETOFFLOAD bit vmtap knows. */
  readonly offloadMask: number
  /** The largest uid/gid (2**32 - 2: -1 means "none" to the kernel). */
  readonly maxId: number
  /** The longest interface name, in bytes (IFNAMSIZ - 1). */
  readonly maxNameBytes: number
  /** The most fds one message carries (SCM_MAX_FD). */
  readonly scmMaxFd: number
  /** The most bytes one recvFds reads. */
  readonly maxRecvBytes: number
  /** The most threads closeAll uses. */
  readonly maxCloseThreads: number
  /** The longest network namespace name (`ip netns` names are file names). */
  readonly maxNetnsNameBytes: number
  /** The longest tag (openTap's `tag`, stored in the interface alias as `vmtap:tag=<tag>`), in bytes. */
  readonly maxTagBytes: number
  /** The most addresses one call puts on a device (openTap's `addresses`). */
  readonly maxAddresses: number
  /** The most routes one call adds through a device (openTap's `routes`). */
  readonly maxRoutes: number
  /** The longest transmit queue (what SIOCSIFTXQLEN carries: 2**31 - 1). */
  readonly maxTxQueueLen: number
  /** The most opens openTapAsync hands the addon in one call (it batches calls made in the same tick). */
  readonly maxOpenBatch: number
  /** The longest frame `writeFrame` takes whatever the MTU (a GSO frame: 64 KiB and a link header), without its vnet header. */
  readonly maxFrameBytes: number
  /** The shortest frame a TAP device takes: its Ethernet header. */
  readonly minTapFrameBytes: number
  /** The shortest packet a TUN device takes: an IPv4 header. */
  readonly minTunPacketBytes: number
  /** What a TAP frame may carry beyond the MTU: the Ethernet header and one VLAN tag. */
  readonly tapFrameOverhead: number
}

/** See {@link Limits}. */
export const limits: Limits = Object.freeze({
  maxQueues: 256,
  minMtu: 68,
  maxMtu: 65535,
  tapMaxMtu: 65521,
  vnetHdrSizes: Object.freeze([10, 12, 20]),
  offloadMask: 0x7f,
  maxId: 2 ** 32 - 2,
  maxNameBytes: 15,
  scmMaxFd: 253,
  maxRecvBytes: 2 ** 30,
  maxCloseThreads: 1024,
  maxNetnsNameBytes: 255,
  maxTagBytes: 64,
  maxAddresses: 256,
  maxRoutes: 256,
  maxTxQueueLen: 2 ** 31 - 1,
  maxOpenBatch: 64,
  maxFrameBytes: 65535 + 18,
  minTapFrameBytes: 14,
  minTunPacketBytes: 20,
  tapFrameOverhead: 18,
})
