//! The vmtap Node.js addon: argument conversion and errors around
//! `vmtap-core`, nothing else. The public API, its validation and its types
//! are in `index.ts`; this file receives already-validated, normalized
//! arguments and re-checks only their types and ranges (a bad call from
//! elsewhere gets a TypeError/RangeError, never undefined behaviour).
//!
//! Exported functions (internal; see `NativeBinding` in index.ts):
//! - `open(opts)` → `{ handle, ifname, tapFds, vhostFds, flags, features }`
//! - `close(handle)` → `boolean` (whether it was open)
//! - `probeFeatures(tunPath, vhostPath)` → `{ raw: number | null, vhostNet }`
//! - `getTunFeatures(fd)` → `number | null`
//! - `constants` → frozen object of `<linux/if_tun.h>` values

mod napi;

use std::ffi::{CStr, CString};
use std::os::fd::BorrowedFd;
use std::sync::Mutex;

use napi::{napi_env, napi_type_tag, napi_value, Env, JsError, JsResult, Prop, Value};
use vmtap_core::sys::consts;
use vmtap_core::{Error, OpenOptions, RealSys, Tap, Want};

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

fn want(env: Env, v: Value, what: &str) -> JsResult<Want> {
    Ok(match env.int_in(v, 0, 2, what)? {
        0 => Want::Off,
        1 => Want::Auto,
        _ => Want::On,
    })
}

fn c_path(s: String, what: &str) -> JsResult<CString> {
    CString::new(s).map_err(|_| JsError::Type {
        code: "ERR_INVALID_ARG_VALUE",
        message: format!("{what} must not contain NUL bytes"),
    })
}

/// `open({ name, queues, vnetHdr: 0|1|2, vhost: 0|1|2, tunPath, vhostPath })`.
fn open_options(env: Env, o: Value) -> JsResult<OpenOptions> {
    let mut opts = OpenOptions {
        name: env.string_of(env.get(o, c"name")?, "name")?,
        queues: env.int_in(env.get(o, c"queues")?, 1, 256, "queues")? as u32,
        vnet_hdr: want(env, env.get(o, c"vnetHdr")?, "vnetHdr")?,
        vhost: want(env, env.get(o, c"vhost")?, "vhost")?,
        ..OpenOptions::default()
    };
    opts.tun_path = c_path(
        env.string_of(env.get(o, c"tunPath")?, "tunPath")?,
        "tunPath",
    )?;
    opts.vhost_path = c_path(
        env.string_of(env.get(o, c"vhostPath")?, "vhostPath")?,
        "vhostPath",
    )?;
    Ok(opts)
}

fn tap_result(env: Env, tap: Tap) -> JsResult<Value> {
    let out = env.object()?;
    env.set(out, c"ifname", env.string(tap.ifname())?)?;
    env.set(out, c"tapFds", env.int_array(&tap.raw_tap_fds())?)?;
    env.set(out, c"vhostFds", env.int_array(&tap.raw_vhost_fds())?)?;
    env.set(out, c"flags", env.uint32(u32::from(tap.flags()))?)?;
    env.set(out, c"features", env.uint32(tap.features())?)?;
    let handle = env.external(
        Handle {
            tap: Mutex::new(Some(tap)),
        },
        &HANDLE_TAG,
    )?;
    env.set(out, c"handle", handle)?;
    Ok(out)
}

fn open(env: Env, args: &[Value]) -> JsResult<Value> {
    let opts = open_options(env, arg(args, 0, env)?)?;
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

fn close(env: Env, args: &[Value]) -> JsResult<Value> {
    let h = handle(&env, args)?;
    env.boolean(take(h).map(Tap::close).is_some())
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
    match vmtap_core::tun_features(&RealSys, borrowed) {
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
    set(c"MAX_QUEUES", env.uint32(vmtap_core::MAX_QUEUES))?;
    env.freeze(o)?;
    Ok(o)
}

fn register(env: Env, exports: Value) -> JsResult<()> {
    env.export(exports, c"open", open)?;
    env.export(exports, c"close", close)?;
    env.export(exports, c"probeFeatures", probe_features)?;
    env.export(exports, c"getTunFeatures", get_tun_features)?;
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
