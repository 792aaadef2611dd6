//! The devices of the namespace: listTaps, tapHolders, gcTaps.

use vmtap_core::gc::{GcEntry, GcOptions, GcReport};
use vmtap_core::link::format_mac;
use vmtap_core::{Error, Holder, RealSys, TapInfo};

use crate::convert::{arg, c_path, netns_of, optional};
use crate::error::{self, JsError, JsResult};
use crate::napi::{AsyncTask, Env, Value};

/// `TapInfo` bits in `listTaps`' rows.
const TAP: u32 = 1;
const VNET_HDR: u32 = 2;
const MULTI_QUEUE: u32 = 4;
const PERSIST: u32 = 8;
const UP: u32 = 16;

fn string_or_null(env: Env, s: Option<&str>) -> JsResult<Value> {
    match s {
        Some(s) => env.string(s),
        None => env.null(),
    }
}

fn u32_or_null(env: Env, n: Option<u32>) -> JsResult<Value> {
    match n {
        Some(n) => env.uint32(n),
        None => env.null(),
    }
}

/// One device as a row: `[ifname, ifindex, bits, owner, group, queues,
/// disabledQueues, mtu, mac, master, tag]` (arrays are cheaper to build than
/// objects with named properties; TypeScript names the fields).
fn tap_row(env: Env, t: &TapInfo) -> JsResult<Value> {
    let bits = [
        (t.tap, TAP),
        (t.vnet_hdr, VNET_HDR),
        (t.multi_queue, MULTI_QUEUE),
        (t.persist, PERSIST),
        (t.up, UP),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |acc, (_, b)| acc | b);
    let mac = t.mac.map(|m| format_mac(&m));
    let row = env.array(11)?;
    let items = [
        env.string(&t.ifname)?,
        env.uint32(t.ifindex)?,
        env.uint32(bits)?,
        u32_or_null(env, t.owner)?,
        u32_or_null(env, t.group)?,
        env.uint32(t.queues)?,
        env.uint32(t.disabled_queues)?,
        env.uint32(t.mtu)?,
        string_or_null(env, mac.as_deref())?,
        string_or_null(env, t.master.as_deref())?,
        string_or_null(env, t.tag.as_deref())?,
    ];
    for (i, v) in items.into_iter().enumerate() {
        env.set_element(row, i as u32, v)?;
    }
    Ok(row)
}

/// `listTaps(netns | null)` → rows (see [`tap_row`]).
pub fn list_taps(env: Env, args: &[Value]) -> JsResult<Value> {
    let netns = netns_of(env, arg(env, args, 0)?)?;
    let taps = vmtap_core::list_taps(&RealSys, netns.as_ref())?;
    let out = env.array(taps.len())?;
    for (i, t) in taps.iter().enumerate() {
        env.set_element(out, i as u32, tap_row(env, t)?)?;
    }
    Ok(out)
}

/// `[{ pid, command, fds }]`.
pub fn holders_value(env: Env, holders: &[Holder]) -> JsResult<Value> {
    let out = env.array(holders.len())?;
    for (i, h) in holders.iter().enumerate() {
        let o = env.object()?;
        env.set(o, c"pid", env.uint32(h.pid)?)?;
        env.set(o, c"command", env.string(&h.command)?)?;
        env.set(o, c"fds", env.int_array(&h.fds)?)?;
        env.set_element(out, i as u32, o)?;
    }
    Ok(out)
}

/// `tapHolders(name)` → `[{ pid, command, fds }]`.
pub fn tap_holders(env: Env, args: &[Value]) -> JsResult<Value> {
    let name = env.string_of(arg(env, args, 0)?, "name")?;
    let holders = vmtap_core::tap_holders(&RealSys, &name)?;
    holders_value(env, &holders)
}

fn entry(env: Env, e: &GcEntry) -> JsResult<Value> {
    let o = env.object()?;
    env.set(o, c"ifname", env.string(&e.ifname)?)?;
    env.set(o, c"ifindex", env.uint32(e.ifindex)?)?;
    env.set(o, c"tag", env.string(&e.tag)?)?;
    Ok(o)
}

fn report(env: Env, r: GcReport) -> JsResult<Value> {
    let removed = env.array(r.removed.len())?;
    for (i, e) in r.removed.iter().enumerate() {
        env.set_element(removed, i as u32, entry(env, e)?)?;
    }
    let kept = env.array(r.kept.len())?;
    for (i, (e, h)) in r.kept.iter().enumerate() {
        let o = entry(env, e)?;
        env.set(o, c"holders", holders_value(env, h)?)?;
        env.set_element(kept, i as u32, o)?;
    }
    let failed = env.array(r.failed.len())?;
    for (i, (e, err)) in r.failed.into_iter().enumerate() {
        let o = entry(env, &e)?;
        let Some(v) = error::value_of(env, err.into()) else {
            return Err(JsError::Pending);
        };
        env.set(o, c"error", v)?;
        env.set_element(failed, i as u32, o)?;
    }
    let out = env.object()?;
    env.set(out, c"removed", removed)?;
    env.set(out, c"kept", kept)?;
    env.set(out, c"failed", failed)?;
    Ok(out)
}

/// `gcTaps(tag | null, dryRun, tunPath, netns | null)` → Promise of `{ removed, kept,
/// failed }`, collected on the libuv pool (closing a device waits for the
/// kernel's teardown); the core's argument rules are checked first.
pub fn gc_taps(env: Env, args: &[Value]) -> JsResult<Value> {
    let opts = GcOptions {
        tag: optional(env, arg(env, args, 0)?, |v| env.string_of(v, "tag"))?,
        dry_run: env.bool_of(arg(env, args, 1)?, "dryRun")?,
        tun_path: c_path(env, arg(env, args, 2)?, "tunPath")?,
        netns: netns_of(env, arg(env, args, 3)?)?,
    };
    if let Some(t) = &opts.tag {
        vmtap_core::rules::check_tag(t)?;
    }
    AsyncTask::spawn(
        env,
        "vmtap.gcTaps",
        move || vmtap_core::gc_taps(&RealSys, &opts),
        |env, r: Result<GcReport, Error>| report(env, r?),
    )
}
