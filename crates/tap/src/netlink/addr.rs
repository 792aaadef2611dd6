//! IP addresses of links: add, delete (as `ip addr add|del ADDR/LEN dev
//! DEV` sends them) and a dump.

use std::net::IpAddr;

use nix::errno::Errno;

use super::link::{check_ifindex, no_such_index};
use super::msg::{attrs, read_ip, read_string, read_u32, IfAddrMsg, Msg, Request};
use super::socket::{explain, Netlink};
use super::*;
use crate::error::{Error, Result};

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// `AF_INET` or `AF_INET6`.
    pub fn af(self) -> u8 {
        match self {
            IpFamily::V4 => AF_INET,
            IpFamily::V6 => AF_INET6,
        }
    }

    pub fn from_af(af: u8) -> Option<Self> {
        match af {
            AF_INET => Some(IpFamily::V4),
            AF_INET6 => Some(IpFamily::V6),
            _ => None,
        }
    }

    /// 32 or 128.
    pub fn max_prefix_len(self) -> u8 {
        match self {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        }
    }
}

/// An address as the kernel reports it (`RTM_NEWADDR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub ifindex: u32,
    pub family: IpFamily,
    pub prefix_len: u8,
    /// `IFA_ADDRESS`: the peer on point-to-point links, else the address.
    pub address: Option<IpAddr>,
    /// `IFA_LOCAL` (IPv4): the address itself.
    pub local: Option<IpAddr>,
    pub broadcast: Option<IpAddr>,
    /// `IFA_LABEL` (IPv4).
    pub label: Option<String>,
    /// `RT_SCOPE_*`: 0 global, 253 link, 254 host.
    pub scope: u8,
    /// `IFA_F_*` (`IFA_FLAGS` when sent, else `ifa_flags`).
    pub flags: u32,
}

impl Address {
    /// The interface's own address: what `ip -j addr` shows as `local`.
    pub fn ip(&self) -> Option<IpAddr> {
        self.local.or(self.address)
    }
}

fn check_prefix(ip: &IpAddr, prefix_len: u8) -> Result<()> {
    let max = IpFamily::of(ip).max_prefix_len();
    if prefix_len > max {
        return Err(Error::range(
            "prefixLen",
            format!("the prefix length of {ip} must be 0 to {max}, got {prefix_len}"),
        ));
    }
    Ok(())
}

/// `RTM_NEWADDR` (`NLM_F_CREATE | NLM_F_EXCL`) or `RTM_DELADDR` for
/// `ip/prefix_len` on link `ifindex`, with `IFA_LOCAL` and `IFA_ADDRESS`
/// both set to `ip`, as `ip addr` sends them.
pub fn address_request(add: bool, ifindex: u32, ip: &IpAddr, prefix_len: u8) -> Result<Request> {
    check_ifindex("ifindex", ifindex)?;
    check_prefix(ip, prefix_len)?;
    let mut r = if add {
        Request::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    } else {
        Request::new(RTM_DELADDR, NLM_F_ACK)
    };
    r.push(
        &IfAddrMsg {
            family: IpFamily::of(ip).af(),
            prefix_len,
            index: ifindex,
            ..Default::default()
        }
        .encode(),
    );
    r.attr_ip(IFA_LOCAL, ip);
    r.attr_ip(IFA_ADDRESS, ip);
    Ok(r)
}

/// `RTM_GETADDR` dump, of one family or both, of one link or all (the
/// kernel filters by link under strict checking, Linux 4.20+).
pub fn dump_request(family: Option<IpFamily>, ifindex: Option<u32>) -> Request {
    let mut r = Request::new(RTM_GETADDR, NLM_F_DUMP);
    r.push(
        &IfAddrMsg {
            family: family.map_or(AF_UNSPEC, IpFamily::af),
            index: ifindex.unwrap_or(0),
            ..Default::default()
        }
        .encode(),
    );
    r
}

/// Read an `RTM_NEWADDR` message (IPv4 and IPv6 only).
pub fn parse_address(msg: &Msg<'_>) -> Option<Address> {
    if msg.msg_type != RTM_NEWADDR {
        return None;
    }
    let hdr = IfAddrMsg::decode(msg.payload)?;
    let mut a = Address {
        ifindex: hdr.index,
        family: IpFamily::from_af(hdr.family)?,
        prefix_len: hdr.prefix_len,
        address: None,
        local: None,
        broadcast: None,
        label: None,
        scope: hdr.scope,
        flags: u32::from(hdr.flags),
    };
    for (ty, p) in attrs(msg.payload.get(IfAddrMsg::LEN..)?) {
        match ty {
            IFA_ADDRESS => a.address = read_ip(p),
            IFA_LOCAL => a.local = read_ip(p),
            IFA_BROADCAST => a.broadcast = read_ip(p),
            IFA_LABEL => a.label = Some(read_string(p)),
            IFA_FLAGS => a.flags = read_u32(p).unwrap_or(a.flags),
            _ => {}
        }
    }
    Some(a)
}

fn address_hint(add: bool, ifindex: u32) -> impl FnOnce(Errno) -> Option<String> {
    move |errno| match (errno, add) {
        (Errno::EEXIST, true) => Some("the interface already has this address".to_owned()),
        (Errno::EADDRNOTAVAIL, false) => Some("the interface has no such address".to_owned()),
        _ => no_such_index(ifindex)(errno),
    }
}

impl Netlink<'_> {
    /// Add `ip/prefix_len` to link `ifindex` (`EEXIST` if it has it).
    pub fn add_address(&mut self, ifindex: u32, ip: IpAddr, prefix_len: u8) -> Result<()> {
        let mut req = address_request(true, ifindex, &ip, prefix_len)?;
        self.ack(&mut req)
            .map_err(|e| explain(e, address_hint(true, ifindex)))
    }

    /// Remove `ip/prefix_len` from link `ifindex` (`EADDRNOTAVAIL` if absent).
    pub fn delete_address(&mut self, ifindex: u32, ip: IpAddr, prefix_len: u8) -> Result<()> {
        let mut req = address_request(false, ifindex, &ip, prefix_len)?;
        self.ack(&mut req)
            .map_err(|e| explain(e, address_hint(false, ifindex)))
    }

    /// The addresses of one family or both, of one link or all.
    pub fn addresses(
        &mut self,
        family: Option<IpFamily>,
        ifindex: Option<u32>,
    ) -> Result<Vec<Address>> {
        let mut req = dump_request(family, ifindex);
        self.dump(&mut req, |m| {
            parse_address(m).filter(|a| {
                family.map_or(true, |f| a.family == f) && ifindex.map_or(true, |i| a.ifindex == i)
            })
        })
    }
}
