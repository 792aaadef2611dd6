// Values from <linux/if_tun.h> (no native code here); a test checks them against the addon's.

/** Values from `<linux/if_tun.h>`. */
export interface TunConstants {
  readonly TUNSETIFF: number
  readonly TUNGETIFF: number
  readonly TUNGETFEATURES: number
  readonly TUNSETPERSIST: number
  readonly TUNSETOWNER: number
  readonly TUNSETGROUP: number
  readonly TUNSETOFFLOAD: number
  readonly TUNGETVNETHDRSZ: number
  readonly TUNSETVNETHDRSZ: number
  readonly TUNSETQUEUE: number
  readonly IFF_TUN: number
  readonly IFF_TAP: number
  readonly IFF_NO_PI: number
  readonly IFF_ONE_QUEUE: number
  readonly IFF_VNET_HDR: number
  readonly IFF_MULTI_QUEUE: number
  readonly IFF_ATTACH_QUEUE: number
  readonly IFF_DETACH_QUEUE: number
  readonly IFF_PERSIST: number
  readonly IFF_TUN_EXCL: number
  readonly IFF_NAPI: number
  readonly IFF_NAPI_FRAGS: number
  readonly IFF_NO_CARRIER: number
  readonly TUN_F_CSUM: number
  readonly TUN_F_TSO4: number
  readonly TUN_F_TSO6: number
  readonly TUN_F_TSO_ECN: number
  readonly TUN_F_UFO: number
  readonly TUN_F_USO4: number
  readonly TUN_F_USO6: number
  readonly MAX_QUEUES: number
}

/** Values from `<linux/if_tun.h>` (TUNSETIFF, IFF_TAP, ...), as the kernel defines them. */
export const constants: TunConstants = Object.freeze({
  TUNSETIFF: 0x400454ca,
  TUNGETIFF: 0x800454d2,
  TUNGETFEATURES: 0x800454cf,
  TUNSETPERSIST: 0x400454cb,
  TUNSETOWNER: 0x400454cc,
  TUNSETGROUP: 0x400454ce,
  TUNSETOFFLOAD: 0x400454d0,
  TUNGETVNETHDRSZ: 0x800454d7,
  TUNSETVNETHDRSZ: 0x400454d8,
  TUNSETQUEUE: 0x400454d9,
  IFF_TUN: 0x0001,
  IFF_TAP: 0x0002,
  IFF_NO_PI: 0x1000,
  IFF_ONE_QUEUE: 0x2000,
  IFF_VNET_HDR: 0x4000,
  IFF_MULTI_QUEUE: 0x0100,
  IFF_ATTACH_QUEUE: 0x0200,
  IFF_DETACH_QUEUE: 0x0400,
  IFF_PERSIST: 0x0800,
  IFF_TUN_EXCL: 0x8000,
  IFF_NAPI: 0x0010,
  IFF_NAPI_FRAGS: 0x0020,
  IFF_NO_CARRIER: 0x0040,
  TUN_F_CSUM: 0x01,
  TUN_F_TSO4: 0x02,
  TUN_F_TSO6: 0x04,
  TUN_F_TSO_ECN: 0x08,
  TUN_F_UFO: 0x10,
  TUN_F_USO4: 0x20,
  TUN_F_USO6: 0x40,
  MAX_QUEUES: 256,
})

/** `virtio_net_hdr` values (virtio 1.x, `<linux/virtio_net.h>`). */
export const virtioNet = Object.freeze({
  /** flags: the checksum from `csumStart` + `csumOffset` on is left to the reader. */
  F_NEEDS_CSUM: 1,
  /** flags: the checksum was checked. */
  F_DATA_VALID: 2,
  /** flags: RSC coalescing info. */
  F_RSC_INFO: 4,
  GSO_NONE: 0,
  GSO_TCPV4: 1,
  GSO_UDP: 3,
  GSO_TCPV6: 4,
  GSO_UDP_L4: 5,
  /** gsoType bit: TCP with ECN. */
  GSO_ECN: 0x80,
})
