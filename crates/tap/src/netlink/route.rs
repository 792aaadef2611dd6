//! Routes in the main table: add, delete (as `ip route add|del DST/LEN dev
//! DEV [via GW] [metric N]` sends them) and a dump.

use std::net::IpAddr;

use nix::errno::Errno;

use super::addr::IpFamily;
use super::link::{check_ifindex, no_such_index};
use super::msg::{attrs, read_ip, read_u32, Msg, Request, RtMsg};
use super::socket::{explain, Netlink};
use super::*;
use crate::error::{Error, Result};

/// A route as the kernel reports it (`RTM_NEWROUTE`). Multipath routes
/// (`RTA_MULTIPATH`) show no gateway or oif here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub family: IpFamily,
    /// `None` for a default route.
    pub dst: Option<IpAddr>,
    pub dst_len: u8,
    pub gateway: Option<IpAddr>,
    /// `RTA_OIF`: the outgoing link.
    pub oif: Option<u32>,
    /// `RTA_TABLE` (or `rtm_table`): 254 main, 255 local.
    pub table: u32,
    /// `RTPROT_*`: 2 kernel, 3 boot (`ip route add`), 4 static...
    pub protocol: u8,
    /// `RT_SCOPE_*`: 0 universe, 253 link, 254 host.
    pub scope: u8,
    /// `RTN_*`: 1 unicast, 2 local, 3 broadcast...
    pub route_type: u8,
    /// `RTA_PRIORITY`: the metric.
    pub priority: Option<u32>,
    pub prefsrc: Option<IpAddr>,
    /// `rtm_flags` (`RTNH_F_LINKDOWN`...).
    pub flags: u32,
}

/// A route to add or delete in the main table: `dst/prefix_len` out of
/// link `oif`, through `gateway` if any (without one it is a device route,
/// scope link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpAddr,
    pub prefix_len: u8,
    pub oif: u32,
    pub gateway: Option<IpAddr>,
    /// `RTA_PRIORITY`.
    pub metric: Option<u32>,
}

impl RouteSpec {
    /// A device route: `ip route add DST/LEN dev OIF`.
    pub fn device(dst: IpAddr, prefix_len: u8, oif: u32) -> Self {
        RouteSpec {
            dst,
            prefix_len,
            oif,
            gateway: None,
            metric: None,
        }
    }
}

/// `RTM_NEWROUTE` (`NLM_F_CREATE | NLM_F_EXCL`) or `RTM_DELROUTE`, as
/// `ip route` sends them: protocol boot, scope link for an IPv4 route
/// without a gateway; a delete matches any protocol, type and (IPv4) scope.
pub fn route_request(add: bool, spec: &RouteSpec) -> Result<Request> {
    check_ifindex("oif", spec.oif)?;
    let family = IpFamily::of(&spec.dst);
    let max = family.max_prefix_len();
    if spec.prefix_len > max {
        return Err(Error::range(
            "prefixLen",
            format!(
                "the prefix length of {} must be 0 to {max}, got {}",
                spec.dst, spec.prefix_len
            ),
        ));
    }
    if let Some(gw) = &spec.gateway {
        if IpFamily::of(gw) != family {
            return Err(Error::invalid(
                "gateway",
                format!("gateway {gw} is not of the family of {}", spec.dst),
            ));
        }
    }
    let mut hdr = RtMsg {
        family: family.af(),
        dst_len: spec.prefix_len,
        table: RT_TABLE_MAIN,
        ..Default::default()
    };
    let mut r = if add {
        hdr.protocol = RTPROT_BOOT;
        hdr.route_type = RTN_UNICAST;
        hdr.scope = match (family, spec.gateway) {
            (IpFamily::V4, None) => RT_SCOPE_LINK,
            _ => RT_SCOPE_UNIVERSE,
        };
        Request::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    } else {
        hdr.scope = match family {
            IpFamily::V4 => RT_SCOPE_NOWHERE,
            IpFamily::V6 => RT_SCOPE_UNIVERSE,
        };
        Request::new(RTM_DELROUTE, NLM_F_ACK)
    };
    r.push(&hdr.encode());
    if spec.prefix_len > 0 {
        r.attr_ip(RTA_DST, &spec.dst);
    }
    if let Some(gw) = &spec.gateway {
        r.attr_ip(RTA_GATEWAY, gw);
    }
    if let Some(m) = spec.metric {
        r.attr_u32(RTA_PRIORITY, m);
    }
    r.attr_u32(RTA_OIF, spec.oif);
    Ok(r)
}

/// `RTM_GETROUTE` dump of one family or both, of one table or all (as `ip
/// route show` asks: the kernel filters by table under strict checking).
pub fn dump_request(family: Option<IpFamily>, table: Option<u32>) -> Request {
    let mut r = Request::new(RTM_GETROUTE, NLM_F_DUMP);
    r.push(
        &RtMsg {
            family: family.map_or(AF_UNSPEC, IpFamily::af),
            ..Default::default()
        }
        .encode(),
    );
    if let Some(t) = table {
        r.attr_u32(RTA_TABLE, t);
    }
    r
}

/// Read an `RTM_NEWROUTE` message (IPv4 and IPv6 only).
pub fn parse_route(msg: &Msg<'_>) -> Option<Route> {
    if msg.msg_type != RTM_NEWROUTE {
        return None;
    }
    let hdr = RtMsg::decode(msg.payload)?;
    let mut r = Route {
        family: IpFamily::from_af(hdr.family)?,
        dst: None,
        dst_len: hdr.dst_len,
        gateway: None,
        oif: None,
        table: u32::from(hdr.table),
        protocol: hdr.protocol,
        scope: hdr.scope,
        route_type: hdr.route_type,
        priority: None,
        prefsrc: None,
        flags: hdr.flags,
    };
    for (ty, p) in attrs(msg.payload.get(RtMsg::LEN..)?) {
        match ty {
            RTA_DST => r.dst = read_ip(p),
            RTA_GATEWAY => r.gateway = read_ip(p),
            RTA_OIF => r.oif = read_u32(p),
            RTA_TABLE => r.table = read_u32(p).unwrap_or(r.table),
            RTA_PRIORITY => r.priority = read_u32(p),
            RTA_PREFSRC => r.prefsrc = read_ip(p),
            _ => {}
        }
    }
    Some(r)
}

fn route_hint(add: bool, oif: u32) -> impl FnOnce(Errno) -> Option<String> {
    move |errno| match (errno, add) {
        (Errno::EEXIST, true) => Some("the main table already has this route".to_owned()),
        (Errno::ESRCH, false) => Some("the main table has no such route".to_owned()),
        _ => no_such_index(oif)(errno),
    }
}

impl Netlink<'_> {
    /// Add a route to the main table (`EEXIST` if it is there).
    pub fn add_route(&mut self, spec: &RouteSpec) -> Result<()> {
        let mut req = route_request(true, spec)?;
        self.ack(&mut req)
            .map_err(|e| explain(e, route_hint(true, spec.oif)))
    }

    /// Delete a route from the main table (`ESRCH` if it is not there).
    pub fn delete_route(&mut self, spec: &RouteSpec) -> Result<()> {
        let mut req = route_request(false, spec)?;
        self.ack(&mut req)
            .map_err(|e| explain(e, route_hint(false, spec.oif)))
    }

    /// The routes of one family or both, of one table (`Some(254)`: main)
    /// or all.
    pub fn routes(&mut self, family: Option<IpFamily>, table: Option<u32>) -> Result<Vec<Route>> {
        let mut req = dump_request(family, table);
        self.dump(&mut req, |m| {
            parse_route(m).filter(|r| {
                family.map_or(true, |f| r.family == f) && table.map_or(true, |t| r.table == t)
            })
        })
    }
}
