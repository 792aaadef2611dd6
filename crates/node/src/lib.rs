//! The vmtap Node.js addon: argument conversion and errors around
//! `vmtap-core`, nothing else. The public API, its validation and its types
//! are in `index.ts`; this file receives already-validated, normalized
//! arguments and re-checks only their types and ranges (a bad call from
//! elsewhere gets a TypeError/RangeError, never undefined behaviour).
//!
//! Exported functions (internal; see `NativeBinding` in index.ts):
//! - `open(name, queues, vnetHdr, vhost, tunPath, vhostPath, config)` →
//!   `[handle, ifname, flags, features, tapFds, vhostFds]`
//! - `close(handle)` → `boolean` (whether it was open)
//! - `openAsync(...)` (as `open`), `closeAsync(handle)` → Promises; the work runs on the
//!   libuv pool
//! - `closeAll(handles, maxThreads)` → Promise of per-handle `null | Error`
//! - `probeFeatures(tunPath, vhostPath)` → `{ raw: number | null, vhostNet }`
//! - `getTunFeatures(fd)` → `number | null`
//! - `constants` → frozen object of `<linux/if_tun.h>` values
//! - device methods taking the handle first: `setPersist`, `setOwner`,
//!   `setGroup`, `get/setVnetHdrSize`, `setOffloads` (→ applied bits),
//!   `setQueueEnabled`, `setLinkUp`, `linkInfo`, `setMtu`, `setMac`,
//!   `bridgeAdd`, `bridgeDel`
//! - `probeOffloads(tunPath)` → accepted bits; `deleteTap(name, tunPath)`
//! - `sendFds(sock, data, fds, timeoutMs)`, `recvFds(sock, maxBytes, maxFds,
//!   timeoutMs)` → Promises (SCM_RIGHTS over a Unix stream socket)

mod napi;

use std::ffi::{CStr, CString};
use std::os::fd::{BorrowedFd, IntoRawFd};
use std::sync::Mutex;

use napi::{
    napi_env, napi_type_tag, napi_value, AsyncTask, Env, JsError, JsResult, Prop, Value, ValueType,
};
use vmtap_core::sys::consts;
use vmtap_core::{fdpass, link, Error, OpenOptions, RealSys, Tap, Tristate};

/// The native side of a `TapDevice`: the core's `Tap`, taken out on close.
struct Handle {
    tap: Mutex<Option<Tap>>,
}

static HANDLE_TAG: napi_type_tag = napi_type_tag {
    lower: 0x766d_7461_705f_6831,
    upper: 0x9d4c_1f0e_52a7_3b68,
};

/// Core error → JS error. Kernel errors carry `code` (errno name), `errno`
/// (negative, as in Node's fs errors), `syscall`, `path`, `ifname`.
fn js_error(e: Error) -> JsError {
    let message = e.to_string();
    match e {
        Error::Os(os) => {
            let mut props = vec![
                (c"errno", Prop::Int(-(os.errno as i32))),
                (c"syscall", Prop::Str(os.syscall.to_owned())),
            ];
            if let Some(p) = os.path {
                props.push((c"path", Prop::Str(p)));
            }
            if let Some(n) = os.ifname {
                props.push((c"ifname", Prop::Str(n)));
            }
            props.push((c"vmtapError", Prop::Int(1)));
            JsError::Error {
                code: vmtap_core::error::errno_name(os.errno).to_owned(),
                message,
                props,
            }
        }
        Error::InvalidArgument { range: true, .. } => JsError::Range {
            code: "ERR_OUT_OF_RANGE",
            message,
        },
        Error::InvalidArgument { .. } => JsError::Type {
            code: "ERR_INVALID_ARG_VALUE",
            message,
        },
        Error::Closed => JsError::Error {
            code: "ERR_VMTAP_CLOSED".into(),
            message,
            props: Vec::new(),
        },
    }
}

fn arg(args: &[Value], i: usize, env: Env) -> JsResult<Value> {
    match args.get(i) {
        Some(v) => Ok(*v),
        None => env.undefined(),
    }
}

fn want(env: Env, v: Value, what: &str) -> JsResult<Tristate> {
    Ok(match env.int_in(v, 0, 2, what)? {
        0 => Tristate::Off,
        1 => Tristate::Auto,
        _ => Tristate::On,
    })
}

fn c_path(s: String, what: &str) -> JsResult<CString> {
    CString::new(s).map_err(|_| JsError::Type {
        code: "ERR_INVALID_ARG_VALUE",
        message: format!("{what} must not contain NUL bytes"),
    })
}

/// `None` for `null`/`undefined`, else `f(value)`.
fn optional<T>(env: Env, v: Value, f: impl FnOnce(Value) -> JsResult<T>) -> JsResult<Option<T>> {
    match env.type_of(v)? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        _ => f(v).map(Some),
    }
}

fn mac_of(env: Env, v: Value, what: &str) -> JsResult<[u8; 6]> {
    let s = env.string_of(v, what)?;
    link::parse_mac(&s).ok_or_else(|| JsError::Type {
        code: "ERR_INVALID_ARG_VALUE",
        message: format!("{what} must be a MAC address like 52:54:00:12:34:56"),
    })
}

/// The arguments of `open(name, queues, vnetHdr: 0|1|2, vhost: 0|1|2,
/// tunPath | null, vhostPath | null, config | null)`; `config` is `{
/// exclusive, uniqueName, persist, owner, group, vnetHdrSize, offloads, mtu,
/// mac, bridge, up }` (optional members null) or null for none. Positional,
/// so the usual open reads no property at all.
fn open_options(env: Env, args: &[Value]) -> JsResult<OpenOptions> {
    let mut opts = OpenOptions {
        name: env.string_of(arg(args, 0, env)?, "name")?,
        queues: env.int_in(arg(args, 1, env)?, 1, 256, "queues")? as u32,
        vnet_hdr: want(env, arg(args, 2, env)?, "vnetHdr")?,
        vhost: want(env, arg(args, 3, env)?, "vhost")?,
        ..OpenOptions::default()
    };
    if let Some(p) = optional(env, arg(args, 4, env)?, |v| env.string_of(v, "tunPath"))? {
        opts.tun_path = c_path(p, "tunPath")?;
    }
    if let Some(p) = optional(env, arg(args, 5, env)?, |v| env.string_of(v, "vhostPath"))? {
        opts.vhost_path = c_path(p, "vhostPath")?;
    }
    let c = arg(args, 6, env)?;
    if matches!(env.type_of(c)?, ValueType::Null | ValueType::Undefined) {
        return Ok(opts);
    }
    let get = |k: &CStr| env.get(c, k);
    let u32_opt = |k: &CStr, what: &str, min: i64, max: i64| -> JsResult<Option<u32>> {
        optional(env, get(k)?, |v| {
            env.int_in(v, min, max, what).map(|n| n as u32)
        })
    };
    opts.exclusive = env.bool_of(get(c"exclusive")?, "exclusive")?;
    opts.unique_name = env.bool_of(get(c"uniqueName")?, "uniqueName")?;
    opts.persist = env.bool_of(get(c"persist")?, "persist")?;
    opts.owner = u32_opt(c"owner", "owner", 0, u32::MAX as i64 - 1)?;
    opts.group = u32_opt(c"group", "group", 0, u32::MAX as i64 - 1)?;
    opts.vnet_hdr_size = u32_opt(c"vnetHdrSize", "vnetHdrSize", 10, 20)?.map(|n| n as i32);
    opts.offloads = u32_opt(c"offloads", "offloads", 0, 0x7f)?;
    opts.mtu = u32_opt(c"mtu", "mtu", 68, 65535)?;
    opts.mac = optional(env, get(c"mac")?, |v| mac_of(env, v, "mac"))?;
    opts.bridge = optional(env, get(c"bridge")?, |v| env.string_of(v, "bridge"))?;
    opts.up = env.bool_of(get(c"up")?, "up")?;
    Ok(opts)
}

/// `[handle, ifname, flags, features, tapFds, vhostFds]`: an array, which is
/// cheaper to build than an object with named properties.
fn tap_result(env: Env, tap: Tap) -> JsResult<Value> {
    let out = env.array(6)?;
    env.set_element(out, 1, env.string(tap.ifname())?)?;
    env.set_element(out, 2, env.uint32(u32::from(tap.flags()))?)?;
    env.set_element(out, 3, env.uint32(tap.features())?)?;
    env.set_element(out, 4, env.int_array(&tap.raw_tap_fds())?)?;
    env.set_element(out, 5, env.int_array(&tap.raw_vhost_fds())?)?;
    let handle = env.external(
        Handle {
            tap: Mutex::new(Some(tap)),
        },
        &HANDLE_TAG,
    )?;
    env.set_element(out, 0, handle)?;
    Ok(out)
}

fn open(env: Env, args: &[Value]) -> JsResult<Value> {
    let opts = open_options(env, args)?;
    let tap = vmtap_core::open_tap(&RealSys, &opts).map_err(js_error)?;
    tap_result(env, tap)
}

fn handle<'e>(env: &'e Env, args: &[Value]) -> JsResult<&'e Handle> {
    let v = arg(args, 0, *env)?;
    env.external_ref::<Handle>(v, &HANDLE_TAG, "handle")
}

fn take(h: &Handle) -> Option<Tap> {
    h.tap.lock().unwrap_or_else(|p| p.into_inner()).take()
}

/// `close(handle)` → whether it was open. Every fd is released even when
/// one fails to close (then a TapError says so).
fn close(env: Env, args: &[Value]) -> JsResult<Value> {
    let h = handle(&env, args)?;
    match take(h) {
        None => env.boolean(false),
        Some(tap) => {
            tap.close().map_err(js_error)?;
            env.boolean(true)
        }
    }
}

/// `openAsync(opts)` → Promise of what `open` returns; the syscalls run on
/// the libuv pool.
fn open_async(env: Env, args: &[Value]) -> JsResult<Value> {
    let opts = open_options(env, args)?;
    AsyncTask::spawn(
        env,
        "vmtap.openTap",
        move || vmtap_core::open_tap(&RealSys, &opts),
        |env, r| match r {
            Ok(tap) => tap_result(env, tap),
            Err(e) => Err(js_error(e)),
        },
    )
}

/// `closeAsync(handle)` → Promise<boolean>: the device is taken out of the
/// handle at once (on the JS thread) and its fds closed on the libuv pool.
fn close_async(env: Env, args: &[Value]) -> JsResult<Value> {
    let tap = take(handle(&env, args)?);
    AsyncTask::spawn(
        env,
        "vmtap.close",
        move || tap.map(Tap::close),
        |env, r| match r {
            None => env.boolean(false),
            Some(Ok(_)) => env.boolean(true),
            Some(Err(e)) => Err(js_error(e)),
        },
    )
}

/// `closeAll(handles, maxThreads)` → Promise<Array<null | Error>>: every
/// device is taken out at once; one pool task closes them on up to
/// `maxThreads` threads of its own. Per handle: null (closed, or already
/// closed) or the error of that device.
fn close_all(env: Env, args: &[Value]) -> JsResult<Value> {
    let list = arg(args, 0, env)?;
    let n = env.array_len(list, "handles")?;
    let mut slots: Vec<Option<Tap>> = Vec::with_capacity(n as usize);
    for i in 0..n {
        let v = env.element(list, i)?;
        let h = env.external_ref::<Handle>(v, &HANDLE_TAG, "handles[i]")?;
        slots.push(take(h));
    }
    let threads = env.int_in(arg(args, 1, env)?, 1, 1024, "maxThreads")? as usize;
    AsyncTask::spawn(
        env,
        "vmtap.closeAll",
        move || {
            let (idx, taps): (Vec<usize>, Vec<Tap>) = slots
                .into_iter()
                .enumerate()
                .filter_map(|(i, t)| t.map(|t| (i, t)))
                .unzip();
            let mut out: Vec<Option<Error>> = vec![None; n as usize];
            for (i, r) in idx.into_iter().zip(vmtap_core::close_all(taps, threads)) {
                out[i] = r.err();
            }
            out
        },
        |env, out| {
            let arr = env.array(out.len())?;
            for (i, e) in out.into_iter().enumerate() {
                let v = match e {
                    None => env.null()?,
                    Some(e) => env.error_value(&js_error(e))?,
                };
                env.set_element(arr, i as u32, v)?;
            }
            Ok(arr)
        },
    )
}

/// Run `f` on the open device behind `args[0]`; a closed one is ERR_VMTAP_CLOSED.
fn with_tap<R>(env: Env, args: &[Value], f: impl FnOnce(&Tap) -> Result<R, Error>) -> JsResult<R> {
    let h = handle(&env, args)?;
    let guard = h.tap.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(tap) => f(tap).map_err(js_error),
        None => Err(js_error(Error::Closed)),
    }
}

fn undefined_after(env: Env, r: JsResult<()>) -> JsResult<Value> {
    r?;
    env.undefined()
}

fn set_persist(env: Env, args: &[Value]) -> JsResult<Value> {
    let on = env.bool_of(arg(args, 1, env)?, "persist")?;
    undefined_after(env, with_tap(env, args, |t| t.set_persist(&RealSys, on)))
}

fn set_owner(env: Env, args: &[Value]) -> JsResult<Value> {
    let uid = env.int_in(arg(args, 1, env)?, 0, u32::MAX as i64 - 1, "uid")? as u32;
    undefined_after(env, with_tap(env, args, |t| t.set_owner(&RealSys, uid)))
}

fn set_group(env: Env, args: &[Value]) -> JsResult<Value> {
    let gid = env.int_in(arg(args, 1, env)?, 0, u32::MAX as i64 - 1, "gid")? as u32;
    undefined_after(env, with_tap(env, args, |t| t.set_group(&RealSys, gid)))
}

fn get_vnet_hdr_size(env: Env, args: &[Value]) -> JsResult<Value> {
    let n = with_tap(env, args, |t| t.get_vnet_hdr_size(&RealSys))?;
    env.int32(n)
}

fn set_vnet_hdr_size(env: Env, args: &[Value]) -> JsResult<Value> {
    let n = env.int_in(arg(args, 1, env)?, 10, 20, "size")? as i32;
    undefined_after(
        env,
        with_tap(env, args, |t| t.set_vnet_hdr_size(&RealSys, n)),
    )
}

fn set_offloads(env: Env, args: &[Value]) -> JsResult<Value> {
    let bits = env.int_in(arg(args, 1, env)?, 0, 0x7f, "offloads")? as u32;
    let applied = with_tap(env, args, |t| t.set_offloads(&RealSys, bits))?;
    env.uint32(applied)
}

fn set_queue_enabled(env: Env, args: &[Value]) -> JsResult<Value> {
    let index = env.int_in(arg(args, 1, env)?, 0, 255, "index")? as usize;
    let on = env.bool_of(arg(args, 2, env)?, "enabled")?;
    undefined_after(
        env,
        with_tap(env, args, |t| t.set_queue_enabled(&RealSys, index, on)),
    )
}

fn set_link_up(env: Env, args: &[Value]) -> JsResult<Value> {
    let up = env.bool_of(arg(args, 1, env)?, "up")?;
    undefined_after(env, with_tap(env, args, |t| t.set_link_up(&RealSys, up)))
}

fn link_info(env: Env, args: &[Value]) -> JsResult<Value> {
    let info = with_tap(env, args, |t| t.get_link_info(&RealSys))?;
    let o = env.object()?;
    env.set(o, c"up", env.boolean(info.flags & link::IFF_UP != 0)?)?;
    env.set(o, c"mtu", env.uint32(info.mtu)?)?;
    env.set(o, c"mac", env.string(&link::format_mac(&info.mac))?)?;
    env.set(o, c"ifindex", env.int32(info.ifindex)?)?;
    Ok(o)
}

fn set_mtu(env: Env, args: &[Value]) -> JsResult<Value> {
    let mtu = env.int_in(arg(args, 1, env)?, 68, 65535, "mtu")? as u32;
    undefined_after(env, with_tap(env, args, |t| t.set_mtu(&RealSys, mtu)))
}

fn set_mac(env: Env, args: &[Value]) -> JsResult<Value> {
    let mac = mac_of(env, arg(args, 1, env)?, "mac")?;
    undefined_after(env, with_tap(env, args, |t| t.set_mac(&RealSys, &mac)))
}

fn bridge(env: Env, args: &[Value], add: bool) -> JsResult<Value> {
    let br = env.string_of(arg(args, 1, env)?, "bridge")?;
    undefined_after(
        env,
        with_tap(env, args, |t| {
            if add {
                t.attach_to_bridge(&RealSys, &br)
            } else {
                t.detach_from_bridge(&RealSys, &br)
            }
        }),
    )
}

fn bridge_add(env: Env, args: &[Value]) -> JsResult<Value> {
    bridge(env, args, true)
}

fn bridge_del(env: Env, args: &[Value]) -> JsResult<Value> {
    bridge(env, args, false)
}

fn probe_offloads(env: Env, args: &[Value]) -> JsResult<Value> {
    let tun = c_path(env.string_of(arg(args, 0, env)?, "tunPath")?, "tunPath")?;
    let bits = vmtap_core::probe_offloads(&RealSys, &tun).map_err(js_error)?;
    env.uint32(bits)
}

fn delete_tap(env: Env, args: &[Value]) -> JsResult<Value> {
    let name = env.string_of(arg(args, 0, env)?, "name")?;
    let tun = c_path(env.string_of(arg(args, 1, env)?, "tunPath")?, "tunPath")?;
    vmtap_core::delete_tap(&RealSys, &name, &tun).map_err(js_error)?;
    env.undefined()
}

fn probe_features(env: Env, args: &[Value]) -> JsResult<Value> {
    let tun = c_path(env.string_of(arg(args, 0, env)?, "tunPath")?, "tunPath")?;
    let vhost = c_path(env.string_of(arg(args, 1, env)?, "vhostPath")?, "vhostPath")?;
    let f = vmtap_core::probe_features(&RealSys, &tun, &vhost);
    let out = env.object()?;
    let raw = match f.raw {
        Some(r) => env.uint32(r)?,
        None => env.null()?,
    };
    env.set(out, c"raw", raw)?;
    env.set(out, c"vhostNet", env.boolean(f.vhost_net)?)?;
    Ok(out)
}

fn get_tun_features(env: Env, args: &[Value]) -> JsResult<Value> {
    let fd = env.int_in(arg(args, 0, env)?, 0, i32::MAX as i64, "fd")? as i32;
    // SAFETY: the fd is only used for one ioctl during this call; if it is
    // not open the ioctl fails with EBADF and we return null.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match vmtap_core::get_tun_features(&RealSys, borrowed) {
        Some(v) => env.uint32(v),
        None => env.null(),
    }
}

fn constants(env: Env) -> JsResult<Value> {
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
    set(c"MAX_QUEUES", env.uint32(vmtap_core::MAX_QUEUES))?;
    env.freeze(o)?;
    Ok(o)
}

fn timeout_of(env: Env, v: Value) -> JsResult<Option<std::time::Duration>> {
    optional(env, v, |v| {
        env.int_in(v, 0, i32::MAX as i64, "timeoutMs")
            .map(|ms| std::time::Duration::from_millis(ms as u64))
    })
}

/// vmtap's duplicate of the socket fd in `args[0]`, made here on the JS
/// thread: once the work is queued, the caller may close its socket and the
/// number may be reused, but the duplicate still names the same socket.
fn stream_socket(env: Env, args: &[Value]) -> JsResult<fdpass::StreamSocket> {
    let fd = env.int_in(arg(args, 0, env)?, 0, i32::MAX as i64, "socket")? as i32;
    fdpass::StreamSocket::dup(fd).map_err(js_error)
}

/// `sendFds(socketFd, data: Buffer, fds: number[], timeoutMs | null)` →
/// Promise<number> (bytes sent). Runs on the libuv pool: EAGAIN waits in poll.
fn send_fds(env: Env, args: &[Value]) -> JsResult<Value> {
    let sock = stream_socket(env, args)?;
    let data = env.bytes_of(arg(args, 1, env)?, "data")?;
    let fds: Vec<i32> = env
        .int_array_of(arg(args, 2, env)?, 0, i32::MAX as i64, "fds")?
        .into_iter()
        .map(|n| n as i32)
        .collect();
    let timeout = timeout_of(env, arg(args, 3, env)?)?;
    AsyncTask::spawn(
        env,
        "vmtap.sendFds",
        move || fdpass::send_fds(&sock, &data, &fds, timeout),
        |env, r| match r {
            Ok(n) => env.double(n as f64),
            Err(e) => Err(js_error(e)),
        },
    )
}

/// `recvFds(socketFd, maxBytes, maxFds, timeoutMs | null)` → Promise of
/// `{ data: Buffer, fds: number[], truncated }`; the fds are the caller's.
fn recv_fds(env: Env, args: &[Value]) -> JsResult<Value> {
    let sock = stream_socket(env, args)?;
    let max_bytes = env.int_in(arg(args, 1, env)?, 1, 1 << 30, "maxBytes")? as usize;
    let max_fds = env.int_in(arg(args, 2, env)?, 0, fdpass::SCM_MAX_FD as i64, "maxFds")? as usize;
    let timeout = timeout_of(env, arg(args, 3, env)?)?;
    AsyncTask::spawn(
        env,
        "vmtap.recvFds",
        move || fdpass::recv_fds(&sock, max_bytes, max_fds, timeout),
        |env, r| {
            let got = r.map_err(js_error)?;
            let raw: Vec<i32> = got.fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
            let o = env.object()?;
            env.set(o, c"data", env.buffer(&got.data)?)?;
            env.set(o, c"fds", env.int_array(&raw)?)?;
            env.set(o, c"truncated", env.boolean(got.truncated)?)?;
            Ok(o)
        },
    )
}

fn register(env: Env, exports: Value) -> JsResult<()> {
    env.export(exports, c"open", open)?;
    env.export(exports, c"close", close)?;
    env.export(exports, c"openAsync", open_async)?;
    env.export(exports, c"closeAsync", close_async)?;
    env.export(exports, c"closeAll", close_all)?;
    env.export(exports, c"probeFeatures", probe_features)?;
    env.export(exports, c"getTunFeatures", get_tun_features)?;
    env.export(exports, c"setPersist", set_persist)?;
    env.export(exports, c"setOwner", set_owner)?;
    env.export(exports, c"setGroup", set_group)?;
    env.export(exports, c"getVnetHdrSize", get_vnet_hdr_size)?;
    env.export(exports, c"setVnetHdrSize", set_vnet_hdr_size)?;
    env.export(exports, c"setOffloads", set_offloads)?;
    env.export(exports, c"setQueueEnabled", set_queue_enabled)?;
    env.export(exports, c"setLinkUp", set_link_up)?;
    env.export(exports, c"linkInfo", link_info)?;
    env.export(exports, c"setMtu", set_mtu)?;
    env.export(exports, c"setMac", set_mac)?;
    env.export(exports, c"bridgeAdd", bridge_add)?;
    env.export(exports, c"bridgeDel", bridge_del)?;
    env.export(exports, c"probeOffloads", probe_offloads)?;
    env.export(exports, c"deleteTap", delete_tap)?;
    env.export(exports, c"sendFds", send_fds)?;
    env.export(exports, c"recvFds", recv_fds)?;
    env.set(exports, c"constants", constants(env)?)?;
    Ok(())
}

/// Called by Node once per environment (the main thread and each Worker);
/// nothing JS is kept in statics.
///
/// # Safety
/// Called by Node with a valid env and exports object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(raw: napi_env, exports: napi_value) -> napi_value {
    // SAFETY: Node passes the env of the environment being initialised.
    let env = unsafe { Env::from_raw(raw) };
    let exports = napi::Value::from_raw(exports);
    match std::panic::catch_unwind(|| register(env, exports)) {
        Ok(Ok(())) => exports.raw(),
        Ok(Err(e)) => {
            env.throw(e);
            std::ptr::null_mut()
        }
        Err(_) => std::ptr::null_mut(),
    }
}

/// The Node-API version this addon is written against.
#[no_mangle]
pub extern "C" fn node_api_module_get_api_version_v1() -> i32 {
    8
}
