//! The host: what it supports, deleting a persistent device by name, and
//! the frozen `constants` and `limits` objects.

use std::ffi::CStr;
use std::os::fd::BorrowedFd;

use vmtap_core::rules;
use vmtap_core::sys::consts;
use vmtap_core::RealSys;

use crate::convert::{arg, c_path, fd_of, netns_of};
use crate::error::JsResult;
use crate::napi::{Env, Value};

/// `probeFeatures(tunPath, vhostPath, netns | null)` → `{ raw: number | null, vhostNet }`.
pub fn probe_features(env: Env, args: &[Value]) -> JsResult<Value> {
    let tun = c_path(env, arg(env, args, 0)?, "tunPath")?;
    let vhost = c_path(env, arg(env, args, 1)?, "vhostPath")?;
    let netns = netns_of(env, arg(env, args, 2)?)?;
    let f = vmtap_core::probe_features(&RealSys, &tun, &vhost, netns.as_ref())?;
    let out = env.object()?;
    let raw = match f.raw {
        Some(r) => env.uint32(r)?,
        None => env.null()?,
    };
    env.set(out, c"raw", raw)?;
    env.set(out, c"vhostNet", env.boolean(f.vhost_net)?)?;
    Ok(out)
}

/// `getTunFeatures(fd)` → `number | null`.
pub fn get_tun_features(env: Env, args: &[Value]) -> JsResult<Value> {
    let fd = fd_of(env, arg(env, args, 0)?, "fd")?;
    // SAFETY: fd is not negative (fd_of), so not the -1 BorrowedFd excludes;
    // it is used for one ioctl during this call only, and if it is not open
    // the ioctl fails with EBADF and the answer is null.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match vmtap_core::get_tun_features(&RealSys, borrowed) {
        Some(v) => env.uint32(v),
        None => env.null(),
    }
}

/// `probeOffloads(tunPath, netns | null)` → the offload bits the kernel accepts.
pub fn probe_offloads(env: Env, args: &[Value]) -> JsResult<Value> {
    let tun = c_path(env, arg(env, args, 0)?, "tunPath")?;
    let netns = netns_of(env, arg(env, args, 1)?)?;
    let bits = vmtap_core::probe_offloads(&RealSys, &tun, netns.as_ref())?;
    env.uint32(bits)
}

/// `deleteTap(name, tunPath, netns | null)`.
pub fn delete_tap(env: Env, args: &[Value]) -> JsResult<Value> {
    let name = env.string_of(arg(env, args, 0)?, "name")?;
    let tun = c_path(env, arg(env, args, 1)?, "tunPath")?;
    let netns = netns_of(env, arg(env, args, 2)?)?;
    vmtap_core::delete_tap(&RealSys, &name, &tun, netns.as_ref())?;
    env.undefined()
}

/// The `<linux/if_tun.h>` values, frozen.
pub fn constants(env: Env) -> JsResult<Value> {
    let o = env.object()?;
    let ulong = |v: libc::c_ulong| env.double(v as f64);
    let flag = |v: u16| env.uint32(u32::from(v));
    let set = |n: &CStr, v: JsResult<Value>| -> JsResult<()> { env.set(o, n, v?) };
    set(c"TUNSETIFF", ulong(consts::TUNSETIFF))?;
    set(c"TUNGETIFF", ulong(consts::TUNGETIFF))?;
    set(c"TUNGETFEATURES", ulong(consts::TUNGETFEATURES))?;
    set(c"TUNSETPERSIST", ulong(consts::TUNSETPERSIST))?;
    set(c"TUNSETOWNER", ulong(consts::TUNSETOWNER))?;
    set(c"TUNSETGROUP", ulong(consts::TUNSETGROUP))?;
    set(c"TUNSETOFFLOAD", ulong(consts::TUNSETOFFLOAD))?;
    set(c"TUNGETVNETHDRSZ", ulong(consts::TUNGETVNETHDRSZ))?;
    set(c"TUNSETVNETHDRSZ", ulong(consts::TUNSETVNETHDRSZ))?;
    set(c"TUNSETQUEUE", ulong(consts::TUNSETQUEUE))?;
    set(c"IFF_TUN", flag(consts::IFF_TUN))?;
    set(c"IFF_TAP", flag(consts::IFF_TAP))?;
    set(c"IFF_NO_PI", flag(consts::IFF_NO_PI))?;
    set(c"IFF_ONE_QUEUE", flag(consts::IFF_ONE_QUEUE))?;
    set(c"IFF_VNET_HDR", flag(consts::IFF_VNET_HDR))?;
    set(c"IFF_MULTI_QUEUE", flag(consts::IFF_MULTI_QUEUE))?;
    set(c"IFF_ATTACH_QUEUE", flag(consts::IFF_ATTACH_QUEUE))?;
    set(c"IFF_DETACH_QUEUE", flag(consts::IFF_DETACH_QUEUE))?;
    set(c"IFF_PERSIST", flag(consts::IFF_PERSIST))?;
    set(c"IFF_TUN_EXCL", flag(consts::IFF_TUN_EXCL))?;
    set(c"IFF_NAPI", flag(consts::IFF_NAPI))?;
    set(c"IFF_NAPI_FRAGS", flag(consts::IFF_NAPI_FRAGS))?;
    set(c"IFF_NO_CARRIER", flag(consts::IFF_NO_CARRIER))?;
    set(c"TUN_F_CSUM", env.uint32(consts::TUN_F_CSUM))?;
    set(c"TUN_F_TSO4", env.uint32(consts::TUN_F_TSO4))?;
    set(c"TUN_F_TSO6", env.uint32(consts::TUN_F_TSO6))?;
    set(c"TUN_F_TSO_ECN", env.uint32(consts::TUN_F_TSO_ECN))?;
    set(c"TUN_F_UFO", env.uint32(consts::TUN_F_UFO))?;
    set(c"TUN_F_USO4", env.uint32(consts::TUN_F_USO4))?;
    set(c"TUN_F_USO6", env.uint32(consts::TUN_F_USO6))?;
    set(c"MAX_QUEUES", env.uint32(rules::MAX_QUEUES))?;
    env.freeze(o)?;
    Ok(o)
}

/// The core's limits (`vmtap_core::rules`), frozen (the array too).
pub fn limits(env: Env) -> JsResult<Value> {
    let o = env.object()?;
    let set = |n: &CStr, v: JsResult<Value>| -> JsResult<()> { env.set(o, n, v?) };
    set(c"maxQueues", env.uint32(rules::MAX_QUEUES))?;
    set(c"minMtu", env.uint32(rules::MIN_MTU))?;
    set(c"maxMtu", env.uint32(rules::MAX_MTU))?;
    set(c"tapMaxMtu", env.uint32(rules::TAP_MAX_MTU))?;
    let sizes = env.int_array(&rules::VNET_HDR_SIZES)?;
    env.freeze(sizes)?;
    set(c"vnetHdrSizes", Ok(sizes))?;
    set(c"offloadMask", env.uint32(rules::ALL_OFFLOADS))?;
    set(c"maxId", env.uint32(rules::MAX_ID))?;
    set(c"maxNameBytes", env.uint32(rules::MAX_NAME_BYTES as u32))?;
    set(c"scmMaxFd", env.uint32(rules::SCM_MAX_FD as u32))?;
    set(c"maxRecvBytes", env.uint32(rules::MAX_RECV_BYTES as u32))?;
    set(
        c"maxNetnsNameBytes",
        env.uint32(rules::MAX_NETNS_NAME_BYTES as u32),
    )?;
    set(
        c"maxCloseThreads",
        env.uint32(rules::MAX_CLOSE_THREADS as u32),
    )?;
    set(c"maxTagBytes", env.uint32(rules::MAX_TAG_BYTES as u32))?;
    set(c"maxAddresses", env.uint32(rules::MAX_ADDRESSES as u32))?;
    set(c"maxRoutes", env.uint32(rules::MAX_ROUTES as u32))?;
    set(c"maxTxQueueLen", env.uint32(rules::MAX_TX_QUEUE_LEN))?;
    set(c"maxOpenBatch", env.uint32(rules::MAX_OPEN_BATCH as u32))?;
    set(c"maxFrameBytes", env.uint32(rules::MAX_FRAME_BYTES as u32))?;
    set(
        c"minTapFrameBytes",
        env.uint32(rules::MIN_TAP_FRAME_BYTES as u32),
    )?;
    set(
        c"minTunPacketBytes",
        env.uint32(rules::MIN_TUN_PACKET_BYTES as u32),
    )?;
    set(
        c"tapFrameOverhead",
        env.uint32(rules::TAP_FRAME_OVERHEAD as u32),
    )?;
    env.freeze(o)?;
    Ok(o)
}
