//! Devices: open (sync and on the libuv pool), close (one, one on the pool,
//! many at once), and the per-device functions taking the handle first.

use std::sync::{Arc, Mutex};

use vmtap_core::{link, rules, Error, RealSys, Tap};

use crate::convert::{arg, mac_of, open_options};
use crate::error::{JsError, JsResult};
use crate::napi::{napi_type_tag, AsyncTask, Env, Value};
use crate::packet::DeviceIo;

/// The native side of a `TapDevice`: the core's `Tap`, taken out on close,
/// its name (for errors after that), and what its packet I/O shares.
pub struct Handle {
    pub ifname: String,
    pub tap: Mutex<Option<Tap>>,
    pub io: Arc<DeviceIo>,
}

static HANDLE_TAG: napi_type_tag = napi_type_tag {
    lower: 0x766d_7461_705f_6831,
    upper: 0x9d4c_1f0e_52a7_3b68,
};

/// `[handle, ifname, flags, features, tapFds, vhostFds]`: an array, which is
/// cheaper to build than an object with named properties.
fn tap_result(env: Env, tap: Tap) -> JsResult<Value> {
    let out = env.array(6)?;
    env.set_element(out, 1, env.string(tap.ifname())?)?;
    env.set_element(out, 2, env.uint32(u32::from(tap.flags()))?)?;
    env.set_element(out, 3, env.uint32(tap.features())?)?;
    env.set_element(out, 4, env.int_array(&tap.raw_tap_fds())?)?;
    env.set_element(out, 5, env.int_array(&tap.raw_vhost_fds())?)?;
    let handle = Handle {
        ifname: tap.ifname().to_owned(),
        io: DeviceIo::new(&tap),
        tap: Mutex::new(Some(tap)),
    };
    env.set_element(out, 0, env.external(handle, &HANDLE_TAG)?)?;
    Ok(out)
}

/// `open(name, queues, vnetHdr, vhost, tunPath, vhostPath, config)`.
pub fn open(env: Env, args: &[Value]) -> JsResult<Value> {
    let opts = open_options(env, args)?;
    let tap = vmtap_core::open_tap(&RealSys, &opts)?;
    tap_result(env, tap)
}

/// `openAsync(...)` (as `open`) → Promise of what `open` returns; the
/// syscalls run on the libuv pool, the core's argument rules before.
pub fn open_async(env: Env, args: &[Value]) -> JsResult<Value> {
    let opts = open_options(env, args)?;
    rules::check_open(&opts)?;
    AsyncTask::spawn(
        env,
        "vmtap.openTap",
        move || vmtap_core::open_tap(&RealSys, &opts),
        |env, r| tap_result(env, r?),
    )
}

pub fn handle_at<'e>(env: &'e Env, args: &[Value], i: usize, what: &str) -> JsResult<&'e Handle> {
    env.external_ref::<Handle>(arg(*env, args, i)?, &HANDLE_TAG, what)
}

/// Take the device out of its handle (it counts as closed from now on),
/// then end its readers and reject its waiting writes, before any of its
/// fds is closed (their duplicates are closed here).
fn take(env: Env, h: &Handle) -> Option<Tap> {
    let tap = h.tap.lock().unwrap_or_else(|p| p.into_inner()).take();
    if tap.is_some() {
        h.io.end_all(env);
    }
    tap
}

/// `close(handle)` → whether it was open. Every fd is released even when
/// one fails to close (then the error says so).
pub fn close(env: Env, args: &[Value]) -> JsResult<Value> {
    match take(env, handle_at(&env, args, 0, "handle")?) {
        None => env.boolean(false),
        Some(tap) => {
            tap.close()?;
            env.boolean(true)
        }
    }
}

/// `closeAsync(handle)` → Promise<boolean>: the device is taken out of the
/// handle at once (on the JS thread) and its fds closed on the libuv pool.
pub fn close_async(env: Env, args: &[Value]) -> JsResult<Value> {
    let tap = take(env, handle_at(&env, args, 0, "handle")?);
    AsyncTask::spawn(
        env,
        "vmtap.close",
        move || tap.map(Tap::close),
        |env, r| match r {
            None => env.boolean(false),
            Some(r) => {
                r?;
                env.boolean(true)
            }
        },
    )
}

/// `closeAll(handles, maxThreads)` → Promise<Array<null | Error>>: once
/// every argument checked out, every device is taken out at once; one pool
/// task closes them on up to `maxThreads` threads of its own. Per handle:
/// null (closed, or already closed) or the error of that device.
pub fn close_all(env: Env, args: &[Value]) -> JsResult<Value> {
    let list = arg(env, args, 0)?;
    let n = env.array_len(list, "handles")?;
    let threads = env.u32_of(arg(env, args, 1)?, "maxThreads")? as usize;
    rules::check_close_threads(threads)?;
    let handles = (0..n)
        .map(|i| env.external_ref::<Handle>(env.element(list, i)?, &HANDLE_TAG, "handles[i]"))
        .collect::<JsResult<Vec<&Handle>>>()?;
    let slots: Vec<Option<Tap>> = handles.into_iter().map(|h| take(env, h)).collect();
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
                    Some(e) => match crate::error::value_of(env, e.into()) {
                        Some(v) => v,
                        None => return Err(JsError::Pending),
                    },
                };
                env.set_element(arr, i as u32, v)?;
            }
            Ok(arr)
        },
    )
}

/// Run `f` on the open device behind `args[0]`; a closed one is
/// `ERR_VMTAP_CLOSED` with its name.
fn with_tap<R>(env: Env, args: &[Value], f: impl FnOnce(&Tap) -> Result<R, Error>) -> JsResult<R> {
    let h = handle_at(&env, args, 0, "handle")?;
    let guard = h.tap.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(tap) => Ok(f(tap)?),
        None => Err(JsError::closed(Some(&h.ifname))),
    }
}

/// `with_tap` for the functions that return nothing.
fn do_tap(env: Env, args: &[Value], f: impl FnOnce(&Tap) -> Result<(), Error>) -> JsResult<Value> {
    with_tap(env, args, f)?;
    env.undefined()
}

pub fn set_persist(env: Env, args: &[Value]) -> JsResult<Value> {
    let on = env.bool_of(arg(env, args, 1)?, "persist")?;
    do_tap(env, args, |t| t.set_persist(&RealSys, on))
}

pub fn set_owner(env: Env, args: &[Value]) -> JsResult<Value> {
    let uid = env.u32_of(arg(env, args, 1)?, "uid")?;
    do_tap(env, args, |t| t.set_owner(&RealSys, uid))
}

pub fn set_group(env: Env, args: &[Value]) -> JsResult<Value> {
    let gid = env.u32_of(arg(env, args, 1)?, "gid")?;
    do_tap(env, args, |t| t.set_group(&RealSys, gid))
}

pub fn get_vnet_hdr_size(env: Env, args: &[Value]) -> JsResult<Value> {
    let n = with_tap(env, args, |t| t.get_vnet_hdr_size(&RealSys))?;
    env.int32(n)
}

pub fn set_vnet_hdr_size(env: Env, args: &[Value]) -> JsResult<Value> {
    let n = env.i32_of(arg(env, args, 1)?, "size")?;
    do_tap(env, args, |t| t.set_vnet_hdr_size(&RealSys, n))?;
    handle_at(&env, args, 0, "handle")?
        .io
        .set_hdr_len(n as usize);
    env.undefined()
}

/// `setOffloads(handle, bits)` → the bits applied.
pub fn set_offloads(env: Env, args: &[Value]) -> JsResult<Value> {
    let bits = env.u32_of(arg(env, args, 1)?, "offloads")?;
    let applied = with_tap(env, args, |t| t.set_offloads(&RealSys, bits))?;
    env.uint32(applied)
}

pub fn set_queue_enabled(env: Env, args: &[Value]) -> JsResult<Value> {
    let index = env.u32_of(arg(env, args, 1)?, "index")? as usize;
    let on = env.bool_of(arg(env, args, 2)?, "enabled")?;
    do_tap(env, args, |t| t.set_queue_enabled(&RealSys, index, on))
}

pub fn set_link_up(env: Env, args: &[Value]) -> JsResult<Value> {
    let up = env.bool_of(arg(env, args, 1)?, "up")?;
    do_tap(env, args, |t| t.set_link_up(&RealSys, up))
}

/// `getLinkInfo(handle)` → `{ up, mtu, mac, ifindex }`.
pub fn get_link_info(env: Env, args: &[Value]) -> JsResult<Value> {
    let info = with_tap(env, args, |t| t.get_link_info(&RealSys))?;
    let o = env.object()?;
    env.set(o, c"up", env.boolean(info.flags & link::IFF_UP != 0)?)?;
    env.set(o, c"mtu", env.uint32(info.mtu)?)?;
    env.set(o, c"mac", env.string(&link::format_mac(&info.mac))?)?;
    env.set(o, c"ifindex", env.int32(info.ifindex)?)?;
    Ok(o)
}

pub fn set_mtu(env: Env, args: &[Value]) -> JsResult<Value> {
    let mtu = env.u32_of(arg(env, args, 1)?, "mtu")?;
    do_tap(env, args, |t| t.set_mtu(&RealSys, mtu))?;
    handle_at(&env, args, 0, "handle")?.io.set_mtu(mtu);
    env.undefined()
}

pub fn set_mac(env: Env, args: &[Value]) -> JsResult<Value> {
    let mac = mac_of(env, arg(env, args, 1)?, "mac")?;
    do_tap(env, args, |t| t.set_mac(&RealSys, &mac))
}

pub fn attach_to_bridge(env: Env, args: &[Value]) -> JsResult<Value> {
    let br = env.string_of(arg(env, args, 1)?, "bridge")?;
    do_tap(env, args, |t| t.attach_to_bridge(&RealSys, &br))
}

pub fn detach_from_bridge(env: Env, args: &[Value]) -> JsResult<Value> {
    let br = env.string_of(arg(env, args, 1)?, "bridge")?;
    do_tap(env, args, |t| t.detach_from_bridge(&RealSys, &br))
}
