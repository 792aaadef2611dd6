//! The binding's arguments in Rust form: positional arguments, optional
//! values, Tristate, paths, MACs, `open`'s options. Types and integer width
//! only; every rule on the values is the core's.

use std::ffi::{CStr, CString};
use std::time::Duration;

use vmtap_core::netns::NetNsSpec;
use vmtap_core::{
    link, rules, BridgePortFlags, IpCidr, MacvtapOptions, Mode, OpenOptions, RealSys, Tristate,
};

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

/// `netns | null`: a path or bare name (string), or an fd (number) that is
/// duplicated here, on the calling (JS) thread, before any work moves.
pub fn netns_of(env: Env, v: Value) -> JsResult<Option<NetNsSpec>> {
    optional(env, v, |v| match env.type_of(v)? {
        ValueType::String => Ok(NetNsSpec::Path(env.string_of(v, "netns")?)),
        ValueType::Number => Ok(NetNsSpec::dup_fd(&RealSys, env.i32_of(v, "netns")?)?),
        _ => Err(JsError::arg_type(
            "netns must be a path, a namespace name or an fd number".to_owned(),
        )),
    })
}

/// The core's rule for a CIDR string: [`rules::parse_address`] or
/// [`rules::parse_route`].
pub type CidrRule = fn(&'static str, &str) -> vmtap_core::Result<IpCidr>;

/// One CIDR string, parsed by `parse`.
pub fn cidr_of(env: Env, v: Value, what: &'static str, parse: CidrRule) -> JsResult<IpCidr> {
    Ok(parse(what, &env.string_of(v, what)?)?)
}

/// An array of CIDR strings, each parsed by the core's rule (`parse`):
/// `addresses` / `routes`. Its length is checked before any is read.
pub fn cidr_list(
    env: Env,
    v: Value,
    what: &'static str,
    max: usize,
    parse: CidrRule,
) -> JsResult<Vec<IpCidr>> {
    let len = env.array_len(v, what)?;
    rules::check_list_len(what, len as usize, max)?;
    (0..len)
        .map(|i| cidr_of(env, env.element(v, i)?, what, parse))
        .collect()
}

/// `{ isolated, learning, unicastFlood, hairpin }`, each a boolean or
/// null/undefined (left alone).
pub fn bridge_port_of(env: Env, v: Value) -> JsResult<BridgePortFlags> {
    env.expect(v, ValueType::Object, "bridgePort")?;
    let flag = |k: &CStr, what: &str| optional(env, env.get(v, k)?, |x| env.bool_of(x, what));
    Ok(BridgePortFlags {
        isolated: flag(c"isolated", "bridgePort.isolated")?,
        learning: flag(c"learning", "bridgePort.learning")?,
        unicast_flood: flag(c"unicastFlood", "bridgePort.unicastFlood")?,
        hairpin: flag(c"hairpin", "bridgePort.hairpin")?,
    })
}

/// The arguments of `open(name, queues, vnetHdr, vhost, tunPath | null,
/// vhostPath | null, config | null, netns | null, mode | null)` (`mode`:
/// `'tap'` when null or absent); `config` is `{ exclusive,
/// uniqueName, persist, owner, group, ownerless, vnetHdrSize, offloads, mtu,
/// mac, bridge, up, tag, addresses, routes, proxyArp, proxyNdp, forwarding,
/// bridgePort, txQueueLen }` (optional members null; `tag` and the ones
/// after it may be absent too) or null for none. Positional, so the usual
/// open reads no property at all.
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
    opts.netns = netns_of(env, arg(env, args, 7)?)?;
    if let Some(m) = optional(env, arg(env, args, 8)?, |v| mode_of(env, v))? {
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
    opts.ownerless = env.bool_of(get(c"ownerless")?, "ownerless")?;
    opts.vnet_hdr_size = optional(env, get(c"vnetHdrSize")?, |v| env.i32_of(v, "vnetHdrSize"))?;
    opts.offloads = u32_opt(c"offloads", "offloads")?;
    opts.mtu = u32_opt(c"mtu", "mtu")?;
    opts.mac = optional(env, get(c"mac")?, |v| mac_of(env, v, "mac"))?;
    opts.bridge = optional(env, get(c"bridge")?, |v| env.string_of(v, "bridge"))?;
    opts.up = env.bool_of(get(c"up")?, "up")?;
    opts.tag = optional(env, get(c"tag")?, |v| env.string_of(v, "tag"))?;
    let bool_opt = |k: &CStr, what: &str| optional(env, get(k)?, |v| env.bool_of(v, what));
    let cidrs = |k: &CStr, what, max, parse| {
        optional(env, get(k)?, |v| cidr_list(env, v, what, max, parse))
            .map(Option::unwrap_or_default)
    };
    opts.addresses = cidrs(
        c"addresses",
        "addresses",
        rules::MAX_ADDRESSES,
        rules::parse_address,
    )?;
    opts.routes = cidrs(c"routes", "routes", rules::MAX_ROUTES, rules::parse_route)?;
    opts.proxy_arp = bool_opt(c"proxyArp", "proxyArp")?;
    opts.proxy_ndp = bool_opt(c"proxyNdp", "proxyNdp")?;
    opts.forwarding = bool_opt(c"forwarding", "forwarding")?;
    opts.bridge_port = optional(env, get(c"bridgePort")?, |v| bridge_port_of(env, v))?;
    opts.tx_queue_len = u32_opt(c"txQueueLen", "txQueueLen")?;
    Ok(opts)
}

/// The arguments of `openMacvtap(link, mode, name, queues, vnetHdr, vhost,
/// config | null, netns | null)`; `config` is `{ vhostPath, mac, mtu, up,
/// persist, tag }` (members null or absent) or null. The mode is a string
/// the core parses (`bridge`, `vepa`, `private`, `passthru`).
pub fn macvtap_options(env: Env, args: &[Value]) -> JsResult<MacvtapOptions> {
    let mode = env.string_of(arg(env, args, 1)?, "mode")?;
    let mut opts = MacvtapOptions {
        link: env.string_of(arg(env, args, 0)?, "link")?,
        mode: rules::parse_macvtap_mode(&mode)?,
        name: env.string_of(arg(env, args, 2)?, "name")?,
        queues: env.u32_of(arg(env, args, 3)?, "queues")?,
        vnet_hdr: tristate(env, arg(env, args, 4)?, "vnetHdr")?,
        vhost: tristate(env, arg(env, args, 5)?, "vhost")?,
        ..MacvtapOptions::default()
    };
    opts.netns = netns_of(env, arg(env, args, 7)?)?;
    let c = arg(env, args, 6)?;
    if matches!(env.type_of(c)?, ValueType::Null | ValueType::Undefined) {
        return Ok(opts);
    }
    let get = |k: &CStr| env.get(c, k);
    let bool_opt = |k: &CStr, what: &str| optional(env, get(k)?, |v| env.bool_of(v, what));
    if let Some(p) = optional(env, get(c"vhostPath")?, |v| c_path(env, v, "vhostPath"))? {
        opts.vhost_path = p;
    }
    opts.mac = optional(env, get(c"mac")?, |v| mac_of(env, v, "mac"))?;
    opts.mtu = optional(env, get(c"mtu")?, |v| env.u32_of(v, "mtu"))?;
    opts.up = bool_opt(c"up", "up")?.unwrap_or(false);
    opts.persist = bool_opt(c"persist", "persist")?.unwrap_or(false);
    opts.tag = optional(env, get(c"tag")?, |v| env.string_of(v, "tag"))?;
    Ok(opts)
}
