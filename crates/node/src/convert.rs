//! The binding's arguments in Rust form: positional arguments, optional
//! values, Tristate, paths, MACs, `open`'s options. Types and integer width
//! only; every rule on the values is the core's.

use std::ffi::{CStr, CString};
use std::time::Duration;

use vmtap_core::{link, rules, Mode, OpenOptions, Tristate};

use crate::error::{JsError, JsResult};
use crate::napi::{Env, Value, ValueType};

/// Argument `i`, `undefined` when absent.
pub fn arg(env: Env, args: &[Value], i: usize) -> JsResult<Value> {
    match args.get(i) {
        Some(v) => Ok(*v),
        None => env.undefined(),
    }
}

/// `None` for `null`/`undefined`, else `f(value)`.
pub fn optional<T>(
    env: Env,
    v: Value,
    f: impl FnOnce(Value) -> JsResult<T>,
) -> JsResult<Option<T>> {
    match env.type_of(v)? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        _ => f(v).map(Some),
    }
}

/// `true` | `false` | `'auto'`.
pub fn tristate(env: Env, v: Value, what: &str) -> JsResult<Tristate> {
    match env.type_of(v)? {
        ValueType::Boolean => Ok(if env.bool_of(v, what)? {
            Tristate::On
        } else {
            Tristate::Off
        }),
        ValueType::String if env.string_of(v, what)? == "auto" => Ok(Tristate::Auto),
        ValueType::String => Err(JsError::arg_value(format!(
            "{what} must be true, false or 'auto'"
        ))),
        _ => Err(JsError::arg_type(format!(
            "{what} must be of type boolean or the string 'auto'"
        ))),
    }
}

/// A path string as the C string the core opens.
pub fn c_path(env: Env, v: Value, what: &str) -> JsResult<CString> {
    CString::new(env.string_of(v, what)?)
        .map_err(|_| JsError::arg_value(format!("{what} must not contain NUL bytes")))
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_of(env: Env, v: Value, what: &str) -> JsResult<[u8; 6]> {
    let s = env.string_of(v, what)?;
    link::parse_mac(&s).ok_or_else(|| {
        JsError::arg_value(format!(
            "{what} must be a MAC address like 52:54:00:12:34:56"
        ))
    })
}

/// A file descriptor number: fits i32, and the core's fd rule.
pub fn fd_of(env: Env, v: Value, what: &'static str) -> JsResult<i32> {
    let fd = env.i32_of(v, what)?;
    rules::check_fd(what, fd)?;
    Ok(fd)
}

/// `timeoutMs | null`.
pub fn timeout_of(env: Env, v: Value) -> JsResult<Option<Duration>> {
    optional(env, v, |v| {
        Ok(rules::timeout_from_ms(env.i32_of(v, "timeoutMs")?)?)
    })
}

/// `'tap'` | `'tun'`.
pub fn mode_of(env: Env, v: Value) -> JsResult<Mode> {
    match env.string_of(v, "mode")?.as_str() {
        "tap" => Ok(Mode::Tap),
        "tun" => Ok(Mode::Tun),
        _ => Err(JsError::arg_value("mode must be 'tap' or 'tun'")),
    }
}

/// The arguments of `open(name, queues, vnetHdr, vhost, tunPath | null,
/// vhostPath | null, config | null, mode | null)` (`mode`: `'tap'` when
/// null or absent); `config` is `{ exclusive, uniqueName,
/// persist, owner, group, vnetHdrSize, offloads, mtu, mac, bridge, up }`
/// (optional members null) or null for none. Positional, so the usual open
/// reads no property at all.
pub fn open_options(env: Env, args: &[Value]) -> JsResult<OpenOptions> {
    let mut opts = OpenOptions {
        name: env.string_of(arg(env, args, 0)?, "name")?,
        queues: env.u32_of(arg(env, args, 1)?, "queues")?,
        vnet_hdr: tristate(env, arg(env, args, 2)?, "vnetHdr")?,
        vhost: tristate(env, arg(env, args, 3)?, "vhost")?,
        ..OpenOptions::default()
    };
    if let Some(p) = optional(env, arg(env, args, 4)?, |v| c_path(env, v, "tunPath"))? {
        opts.tun_path = p;
    }
    if let Some(p) = optional(env, arg(env, args, 5)?, |v| c_path(env, v, "vhostPath"))? {
        opts.vhost_path = p;
    }
    if let Some(m) = optional(env, arg(env, args, 7)?, |v| mode_of(env, v))? {
        opts.mode = m;
    }
    let c = arg(env, args, 6)?;
    if matches!(env.type_of(c)?, ValueType::Null | ValueType::Undefined) {
        return Ok(opts);
    }
    let get = |k: &CStr| env.get(c, k);
    let u32_opt = |k: &CStr, what: &str| optional(env, get(k)?, |v| env.u32_of(v, what));
    opts.exclusive = env.bool_of(get(c"exclusive")?, "exclusive")?;
    opts.unique_name = env.bool_of(get(c"uniqueName")?, "uniqueName")?;
    opts.persist = env.bool_of(get(c"persist")?, "persist")?;
    opts.owner = u32_opt(c"owner", "owner")?;
    opts.group = u32_opt(c"group", "group")?;
    opts.vnet_hdr_size = optional(env, get(c"vnetHdrSize")?, |v| env.i32_of(v, "vnetHdrSize"))?;
    opts.offloads = u32_opt(c"offloads", "offloads")?;
    opts.mtu = u32_opt(c"mtu", "mtu")?;
    opts.mac = optional(env, get(c"mac")?, |v| mac_of(env, v, "mac"))?;
    opts.bridge = optional(env, get(c"bridge")?, |v| env.string_of(v, "bridge"))?;
    opts.up = env.bool_of(get(c"up")?, "up")?;
    Ok(opts)
}
