//! Devices: open (sync and on the libuv pool), adopt received fds, close (one, one on the pool,
//! many at once), and the per-device functions taking the handle first.

use std::sync::{Arc, Mutex};

use vmtap_core::{link, rules, Error, RealSys, Tap};

use crate::convert::{
    arg, bridge_port_of, cidr_of, mac_of, macvtap_options, open_options, optional,
};
use crate::error::ON_UNCLOSED;
use crate::error::{JsError, JsResult};
use crate::napi::external::Finalize;
use crate::napi::{napi_type_tag, AsyncTask, Env, Value};
use crate::packet::DeviceIo;

/// The native side of a `TapDevice`: the core's `Tap`, taken out on close,
/// and what its packet I/O shares (with the name, for errors after that).
pub struct Handle {
    pub tap: Mutex<Option<Tap>>,
    pub io: Arc<DeviceIo>,
}

/// The GC backstop: a `TapDevice` nobody closed became garbage. Its readers
/// are ended and its waiting writes rejected (as by a close), the device is
/// closed on a thread of its own (a teardown takes the kernel ~16 ms; the JS
/// thread never waits for it), and `onUnclosed(ifname)` from `init` is
/// called, which warns. No JS weak reference is involved: `FinalizationRegistry`
/// cost every open ~3.5 µs (see BENCHMARKS.md).
impl Finalize for Handle {
    fn finalize(self: Box<Self>, env: Env) {
        let Some(tap) = take(env, &self) else {
            return; // closed: nothing to do
        };
        let spawned = std::thread::Builder::new()
            .name("vmtap-gc-close".into())
            .stack_size(64 * 1024)
            .spawn(move || drop(tap));
        if let Err(e) = spawned {
            // No thread to be had: close here rather than leak.
            drop(e);
        }
        if let (Some(f), Ok(name)) = (env.instance_value(ON_UNCLOSED), env.string(&self.io.ifname))
        {
            if env.call(f, &[name]).is_err() {
                // An environment going away cannot run JS: nothing to warn.
                let _ = env.take_exception();
            }
        }
    }
}

static HANDLE_TAG: napi_type_tag = napi_type_tag {
    lower: 0x766d_7461_705f_6831,
    upper: 0x9d4c_1f0e_52a7_3b68,
};

/// `[handle, ifname, flags, features, tapFds, vhostFds, kind, mac]`: an
/// array, which is cheaper to build than an object with named properties.
/// `kind` is `'tap'` or `'macvtap'`; `mac` is a macvtap's MAC (the guest
/// NIC's), null for a TAP device.
fn tap_result(env: Env, tap: Tap) -> JsResult<Value> {
    let out = env.array(8)?;
    env.set_element(out, 1, env.string(tap.ifname())?)?;
    env.set_element(out, 2, env.uint32(u32::from(tap.flags()))?)?;
    env.set_element(out, 3, env.uint32(tap.features())?)?;
    env.set_element(out, 4, env.int_array(&tap.raw_tap_fds())?)?;
    env.set_element(out, 5, env.int_array(&tap.raw_vhost_fds())?)?;
    let kind = if tap.macvtap().is_some() {
        "macvtap"
    } else {
        "tap"
    };
    env.set_element(out, 6, env.string(kind)?)?;
    let mac = match tap.guest_mac() {
        Some(m) => env.string(&link::format_mac(&m))?,
        None => env.null()?,
    };
    env.set_element(out, 7, mac)?;
    let handle = Handle {
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

/// `openBatch(list)`: `list` holds up to [`rules::MAX_OPEN_BATCH`] argument arrays
/// of `open`; one task on the libuv pool opens them one after the other
/// (the kernel serialises device creation anyway: parallel opens only
/// contend, and each thread busy in the kernel takes a core from the event
/// loop). → Promise of an array with, per entry, what `open` returns or the
/// error it would have thrown; an entry whose arguments are refused opens
/// nothing.
pub fn open_batch(env: Env, args: &[Value]) -> JsResult<Value> {
    let list = arg(env, args, 0)?;
    let n = env.array_len(list, "list")? as usize;
    rules::check_open_batch(n)?;
    let mut jobs: Vec<Result<vmtap_core::OpenOptions, JsError>> = Vec::with_capacity(n);
    for i in 0..n as u32 {
        let item = env.element(list, i)?;
        let len = env.array_len(item, "list[i]")?.min(16);
        let item_args = (0..len)
            .map(|k| env.element(item, k))
            .collect::<JsResult<Vec<Value>>>()?;
        let job = open_options(env, &item_args).and_then(|o| {
            rules::check_open(&o)?;
            Ok(o)
        });
        if let Err(JsError::Pending) = job {
            return Err(JsError::Pending); // a JS exception is pending: it propagates
        }
        jobs.push(job);
    }
    AsyncTask::spawn(
        env,
        "vmtap.openTap",
        move || {
            jobs.into_iter()
                .map(|j| j.map(|o| vmtap_core::open_tap(&RealSys, &o).map_err(JsError::from)))
                .map(|r| r.and_then(|x| x))
                .collect::<Vec<Result<Tap, JsError>>>()
        },
        |env, results| {
            let out = env.array(results.len())?;
            for (i, r) in results.into_iter().enumerate() {
                let v = match r.and_then(|tap| tap_result(env, tap)) {
                    Ok(v) => v,
                    Err(e) => match crate::error::value_of(env, e) {
                        Some(v) => v,
                        None => return Err(JsError::Pending),
                    },
                };
                env.set_element(out, i as u32, v)?;
            }
            Ok(out)
        },
    )
}

/// `openMacvtap(link, mode, name, queues, vnetHdr, vhost, config, netns)`
/// → what `open` returns.
pub fn open_macvtap(env: Env, args: &[Value]) -> JsResult<Value> {
    let opts = macvtap_options(env, args)?;
    let tap = vmtap_core::open_macvtap(&RealSys, &opts)?;
    tap_result(env, tap)
}

/// `openMacvtapAsync(...)` (as `openMacvtap`) → Promise of the same; the
/// syscalls run on the libuv pool, the core's argument rules before.
pub fn open_macvtap_async(env: Env, args: &[Value]) -> JsResult<Value> {
    let opts = macvtap_options(env, args)?;
    rules::check_macvtap(&opts)?;
    AsyncTask::spawn(
        env,
        "vmtap.openMacvtap",
        move || vmtap_core::open_macvtap(&RealSys, &opts),
        |env, r| tap_result(env, r?),
    )
}

/// `adoptTap(tapFds, vhostFds)` → what `open` returns: the core checks the
/// fds with the kernel and takes them (on failure they stay the caller's).
pub fn adopt_tap(env: Env, args: &[Value]) -> JsResult<Value> {
    let max = rules::MAX_QUEUES as usize;
    let tap_fds = crate::fdpass::fd_list(env, arg(env, args, 0)?, "tapFds", max)?;
    let vhost_fds = crate::fdpass::fd_list(env, arg(env, args, 1)?, "vhostFds", max)?;
    let tap = vmtap_core::adopt_tap(&RealSys, &tap_fds, &vhost_fds)?;
    tap_result(env, tap)
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

/// Run `f` on the open device behind `args[0]` and its io; a closed one is
/// `ERR_VMTAP_CLOSED` with its name.
pub fn with_device<R>(
    env: Env,
    args: &[Value],
    f: impl FnOnce(&Tap, &Arc<DeviceIo>) -> JsResult<R>,
) -> JsResult<R> {
    let h = handle_at(&env, args, 0, "handle")?;
    let guard = h.tap.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(tap) => f(tap, &h.io),
        None => Err(JsError::closed(Some(&h.io.ifname))),
    }
}

/// [`with_device`] for the functions that need only the device.
fn with_tap<R>(env: Env, args: &[Value], f: impl FnOnce(&Tap) -> Result<R, Error>) -> JsResult<R> {
    with_device(env, args, |tap, _| Ok(f(tap)?))
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
    with_device(env, args, |t, io| {
        t.set_vnet_hdr_size(&RealSys, n)?;
        io.set_hdr_len(n as usize);
        Ok(())
    })?;
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

/// `getLinkInfo(handle)` → `{ ifname, up, mtu, mac, ifindex, carrier,
/// txQueueLen }`.
pub fn get_link_info(env: Env, args: &[Value]) -> JsResult<Value> {
    let info = with_tap(env, args, |t| t.get_link_info(&RealSys))?;
    let o = env.object()?;
    env.set(o, c"ifname", env.string(&info.ifname)?)?;
    env.set(o, c"up", env.boolean(info.flags & link::IFF_UP != 0)?)?;
    env.set(o, c"mtu", env.uint32(info.mtu)?)?;
    env.set(o, c"mac", env.string(&link::format_mac(&info.mac))?)?;
    env.set(o, c"ifindex", env.int32(info.ifindex)?)?;
    env.set(o, c"carrier", env.boolean(info.carrier)?)?;
    env.set(o, c"txQueueLen", env.uint32(info.tx_queue_len)?)?;
    Ok(o)
}

pub fn set_mtu(env: Env, args: &[Value]) -> JsResult<Value> {
    let mtu = env.u32_of(arg(env, args, 1)?, "mtu")?;
    with_device(env, args, |t, io| {
        t.set_mtu(&RealSys, mtu)?;
        io.set_mtu(mtu);
        Ok(())
    })?;
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

/// `setTag(handle, tag | null)`.
pub fn set_tag(env: Env, args: &[Value]) -> JsResult<Value> {
    let tag = optional(env, arg(env, args, 1)?, |v| env.string_of(v, "tag"))?;
    do_tap(env, args, |t| t.set_tag(&RealSys, tag.as_deref()))
}

/// `getStats(handle)` → `{ rxPackets, rxBytes, rxErrors, rxDropped,
/// txPackets, txBytes, txErrors, txDropped }` (numbers: exact up to 2**53).
pub fn get_stats(env: Env, args: &[Value]) -> JsResult<Value> {
    let s = with_tap(env, args, |t| t.get_stats(&RealSys))?;
    let o = env.object()?;
    for (k, v) in [
        (c"rxPackets", s.rx_packets),
        (c"rxBytes", s.rx_bytes),
        (c"rxErrors", s.rx_errors),
        (c"rxDropped", s.rx_dropped),
        (c"txPackets", s.tx_packets),
        (c"txBytes", s.tx_bytes),
        (c"txErrors", s.tx_errors),
        (c"txDropped", s.tx_dropped),
    ] {
        env.set(o, k, env.double(v as f64)?)?;
    }
    Ok(o)
}

/// `addAddress(handle, cidr)`.
pub fn add_address(env: Env, args: &[Value]) -> JsResult<Value> {
    let c = cidr_of(env, arg(env, args, 1)?, "cidr", rules::parse_address)?;
    do_tap(env, args, |t| t.add_address(&RealSys, &c))
}

/// `removeAddress(handle, cidr)`.
pub fn remove_address(env: Env, args: &[Value]) -> JsResult<Value> {
    let c = cidr_of(env, arg(env, args, 1)?, "cidr", rules::parse_address)?;
    do_tap(env, args, |t| t.remove_address(&RealSys, &c))
}

/// `addRoute(handle, dest)`.
pub fn add_route(env: Env, args: &[Value]) -> JsResult<Value> {
    let d = cidr_of(env, arg(env, args, 1)?, "dest", rules::parse_route)?;
    do_tap(env, args, |t| t.add_route(&RealSys, &d))
}

/// `removeRoute(handle, dest)`.
pub fn remove_route(env: Env, args: &[Value]) -> JsResult<Value> {
    let d = cidr_of(env, arg(env, args, 1)?, "dest", rules::parse_route)?;
    do_tap(env, args, |t| t.remove_route(&RealSys, &d))
}

pub fn set_proxy_arp(env: Env, args: &[Value]) -> JsResult<Value> {
    let on = env.bool_of(arg(env, args, 1)?, "on")?;
    do_tap(env, args, |t| t.set_proxy_arp(&RealSys, on))
}

pub fn set_proxy_ndp(env: Env, args: &[Value]) -> JsResult<Value> {
    let on = env.bool_of(arg(env, args, 1)?, "on")?;
    do_tap(env, args, |t| t.set_proxy_ndp(&RealSys, on))
}

pub fn set_forwarding(env: Env, args: &[Value]) -> JsResult<Value> {
    let on = env.bool_of(arg(env, args, 1)?, "on")?;
    do_tap(env, args, |t| t.set_forwarding(&RealSys, on))
}

/// `setBridgePort(handle, { isolated, learning, unicastFlood, hairpin })`.
pub fn set_bridge_port(env: Env, args: &[Value]) -> JsResult<Value> {
    let flags = bridge_port_of(env, arg(env, args, 1)?)?;
    do_tap(env, args, |t| t.set_bridge_port(&RealSys, &flags))
}

pub fn set_tx_queue_len(env: Env, args: &[Value]) -> JsResult<Value> {
    let n = env.u32_of(arg(env, args, 1)?, "txQueueLen")?;
    do_tap(env, args, |t| t.set_tx_queue_len(&RealSys, n))
}

pub fn set_carrier(env: Env, args: &[Value]) -> JsResult<Value> {
    let on = env.bool_of(arg(env, args, 1)?, "on")?;
    do_tap(env, args, |t| t.set_carrier(&RealSys, on))
}
