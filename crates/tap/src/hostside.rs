//! The host side of a NIC: what VM tooling does to a tap once it exists and
//! is up, in-process and in the device's network namespace.
//!
//! - **Routed mode** (Ganeti's routed NICs, Incus' routed NICs,
//!   cloud-hypervisor's `ip=`/`mask=`): addresses on the tap
//!   (`RTM_NEWADDR`), routes to the guest through it (`RTM_NEWROUTE`, scope
//!   link), proxy ARP / proxy NDP and forwarding on the interface.
//! - **Bridged mode**: the port's flags (`IFLA_BRPORT_*`: isolated,
//!   learning, unicast flood, hairpin) and the transmit queue length
//!   (`IFLA_TXQLEN`); the bridge's MTU is taken by [`crate::open_tap`].
//!
//! **Sysctls.** `/proc/sys/net/ipv4/conf/<if>/proxy_arp` and `forwarding`,
//! `/proc/sys/net/ipv6/conf/<if>/proxy_ndp` and `forwarding`. `/proc/sys/net`
//! shows the network namespace of the thread that opens the file, so they
//! are read and written on the thread that [`crate::netns::run_in`] moved
//! into the device's namespace. `forwarding` writes both families; the IPv6
//! file is skipped when the device has no IPv6 configuration at all (a
//! kernel booted with `ipv6.disable=1`, an MTU below 1280), while
//! `proxy_ndp` there is an error that says so.
//!
//! **Ensure, then undo.** At open time the options describe a state: an
//! address, route or sysctl value the device already has counts as applied
//! and is not touched (an existing device's addresses and routes are read
//! first). What a call changes is written down in a [`Journal`] — netlink
//! changes before they are sent, since the kernel may make one whose reply
//! is lost — and when a later step fails, the journal is played backwards
//! (best effort, in the device's namespace), so a pre-existing device is left
//! as it was. A device the call created needs none of that: it vanishes with
//! its fds, and its addresses, routes and sysctls with it.

use std::ffi::CString;
use std::net::IpAddr;

use nix::errno::Errno;

use crate::device::Tap;
use crate::error::{Error, Result};
use crate::link;
use crate::netlink::{
    Address, BridgePort, IpFamily, LinkChange, Netlink, Route, RouteSpec, RT_TABLE_MAIN,
};
use crate::netns;
use crate::rules::{self, IpCidr};
use crate::sys::Sys;

/// A bridge port's flags (`IFLA_BRPORT_*`), as openTap's `bridgePort` and
/// [`Tap::set_bridge_port`] take them; `None` leaves a flag alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgePortFlags {
    /// Isolated ports only talk to non-isolated ones (guests on the same
    /// bridge cannot reach each other, the uplink can).
    pub isolated: Option<bool>,
    /// Learn source MACs on this port.
    pub learning: Option<bool>,
    /// Flood unknown unicast to this port.
    pub unicast_flood: Option<bool>,
    /// Send frames back out of the port they came in on.
    pub hairpin: Option<bool>,
}

impl BridgePortFlags {
    /// The netlink settings these flags ask for.
    pub fn to_port(&self) -> BridgePort {
        BridgePort {
            isolated: self.isolated,
            learning: self.learning,
            unicast_flood: self.unicast_flood,
            hairpin: self.hairpin,
            ..BridgePort::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == BridgePortFlags::default()
    }
}

/// One per-interface sysctl vmtap sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sysctl {
    /// `ipv4/conf/<if>/proxy_arp`: answer ARP for addresses routed elsewhere.
    ProxyArp,
    /// `ipv6/conf/<if>/proxy_ndp`: answer neighbour solicitations for the
    /// proxy entries (`ip -6 neigh add proxy ...`).
    ProxyNdp,
    /// `ipv4/conf/<if>/forwarding`.
    Forwarding4,
    /// `ipv6/conf/<if>/forwarding`.
    Forwarding6,
}

impl Sysctl {
    /// The file under `/proc/sys/net` for interface `ifname`.
    pub fn path(self, ifname: &str) -> String {
        let (family, key) = match self {
            Sysctl::ProxyArp => ("ipv4", "proxy_arp"),
            Sysctl::ProxyNdp => ("ipv6", "proxy_ndp"),
            Sysctl::Forwarding4 => ("ipv4", "forwarding"),
            Sysctl::Forwarding6 => ("ipv6", "forwarding"),
        };
        format!("/proc/sys/net/{family}/conf/{ifname}/{key}")
    }

    fn ipv6(self) -> bool {
        matches!(self, Sysctl::ProxyNdp | Sysctl::Forwarding6)
    }
}

fn c_path(path: &str) -> CString {
    // Interface names hold no NUL (the kernel's and vmtap's rules).
    CString::new(path).unwrap_or_default()
}

fn sysctl_error(errno: Errno, syscall: &'static str, which: Sysctl, ifname: &str) -> Error {
    let path = which.path(ifname);
    let err = Error::os(errno, syscall)
        .with_path(path.as_str())
        .with_ifname(ifname);
    match errno {
        Errno::ENOENT if which.ipv6() => err.with_hint(format!(
            "IPv6 is not available on {ifname}: the kernel runs without IPv6 (ipv6.disable=1) or \
             the device's MTU is below IPv6's minimum of 1280"
        )),
        Errno::ENOENT => err.with_hint(format!(
            "{path} does not exist: is /proc mounted, and is {ifname} in this network namespace?"
        )),
        Errno::EACCES | Errno::EPERM | Errno::EROFS => err.with_hint(format!(
            "writing {path} needs CAP_NET_ADMIN over the device's network namespace and a \
             writable /proc/sys (containers often mount it read-only)"
        )),
        _ => err,
    }
}

/// The value of a sysctl file without its trailing newline.
fn trimmed(v: &[u8]) -> &[u8] {
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &v[..end]
}

/// One change to undo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Undo {
    Mtu { name: String, old: u32 },
    Mac { name: String, old: [u8; 6] },
    Detach { name: String, bridge: String },
    BridgePort { ifindex: u32, old: BridgePort },
    TxQueueLen { ifindex: u32, old: u32 },
    Down { name: String },
    Address { ifindex: u32, cidr: IpCidr },
    Route { ifindex: u32, dest: IpCidr },
    Sysctl { path: String, old: Vec<u8> },
    Alias { ifindex: u32, old: String },
}

/// What one call changed, to be undone when a later step fails. An
/// inactive journal (a device the call created) records nothing.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    active: bool,
    steps: Vec<Undo>,
}

impl Journal {
    pub(crate) fn new(active: bool) -> Self {
        Journal {
            active,
            steps: Vec::new(),
        }
    }

    /// Record a change. Netlink changes are recorded before they are sent:
    /// the kernel may have made one whose reply was lost, and undoing a
    /// change that was not made fails harmlessly.
    pub(crate) fn push(&mut self, undo: Undo) {
        if self.active {
            self.steps.push(undo);
        }
    }

    /// Forget the last change recorded (the kernel said it was not made).
    pub(crate) fn pop(&mut self) {
        if self.active {
            self.steps.pop();
        }
    }

    /// Undo every recorded change, last first, in the calling thread's
    /// namespace (the device's). Best effort: a step that fails does not
    /// stop the others.
    pub(crate) fn undo(self, sys: &dyn Sys) {
        let mut nl: Option<Netlink<'_>> = None;
        for step in self.steps.into_iter().rev() {
            let _ = undo_one(sys, &mut nl, step);
        }
    }
}

/// The netlink socket in `slot`, opened on first use.
pub(crate) fn socket<'a, 's>(
    slot: &'a mut Option<Netlink<'s>>,
    sys: &'s dyn Sys,
) -> Result<&'a mut Netlink<'s>> {
    if slot.is_none() {
        *slot = Some(Netlink::open(sys)?);
    }
    Ok(slot.as_mut().expect("just opened"))
}

fn undo_one<'s>(sys: &'s dyn Sys, nl: &mut Option<Netlink<'s>>, step: Undo) -> Result<()> {
    match step {
        Undo::Mtu { name, old } => link::set_mtu(sys, &name, old),
        Undo::Mac { name, old } => link::set_mac(sys, &name, &old),
        Undo::Detach { name, bridge } => link::detach_from_bridge(sys, &bridge, &name),
        Undo::BridgePort { ifindex, old } => socket(nl, sys)?.set_bridge_port(ifindex, &old),
        Undo::TxQueueLen { ifindex, old } => socket(nl, sys)?.set_link(
            ifindex,
            &LinkChange {
                txqlen: Some(old),
                ..LinkChange::default()
            },
        ),
        Undo::Down { name } => link::set_link_up(sys, &name, false),
        Undo::Address { ifindex, cidr } => {
            socket(nl, sys)?.delete_address(ifindex, cidr.addr, cidr.prefix_len)
        }
        Undo::Route { ifindex, dest } => {
            socket(nl, sys)?.delete_route(&RouteSpec::device(dest.addr, dest.prefix_len, ifindex))
        }
        Undo::Sysctl { path, old } => sys
            .write_file(&c_path(&path), &old)
            .map_err(|e| Error::os(e, "write").with_path(path)),
        Undo::Alias { ifindex, old } => socket(nl, sys)?.set_link(
            ifindex,
            &LinkChange {
                alias: Some(old),
                ..LinkChange::default()
            },
        ),
    }
}

/// Set sysctl `which` of `ifname` to `on` unless it already is, recording
/// the old value. Returns false when `which` is `Forwarding6` and the device
/// has no IPv6 configuration (nothing to do).
pub(crate) fn set_sysctl(
    sys: &dyn Sys,
    ifname: &str,
    which: Sysctl,
    on: bool,
    journal: &mut Journal,
) -> Result<bool> {
    let path = which.path(ifname);
    let c = c_path(&path);
    let old = match sys.read_file(&c) {
        Ok(v) => v,
        Err(Errno::ENOENT) if which == Sysctl::Forwarding6 => return Ok(false),
        Err(e) => return Err(sysctl_error(e, "read", which, ifname)),
    };
    let want: &[u8] = if on { b"1" } else { b"0" };
    if trimmed(&old) == want {
        return Ok(true);
    }
    journal.push(Undo::Sysctl {
        path,
        old: trimmed(&old).to_vec(),
    });
    sys.write_file(&c, want)
        .map_err(|e| sysctl_error(e, "write", which, ifname))?;
    Ok(true)
}

/// `forwarding` of both families (IPv6 skipped where the device has none).
pub(crate) fn set_forwarding(
    sys: &dyn Sys,
    ifname: &str,
    on: bool,
    journal: &mut Journal,
) -> Result<()> {
    set_sysctl(sys, ifname, Sysctl::Forwarding4, on, journal)?;
    set_sysctl(sys, ifname, Sysctl::Forwarding6, on, journal)?;
    Ok(())
}

/// The addresses and main-table routes a namespace had before a call, for
/// an existing device: what the call finds there is left alone, and never
/// undone.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
}

impl Found {
    /// One dump of the device's addresses, one of the main table's routes.
    pub(crate) fn read(nl: &mut Netlink<'_>, ifindex: u32, routes: bool) -> Result<Found> {
        Ok(Found {
            addresses: nl.addresses(None, Some(ifindex))?,
            routes: if routes {
                nl.routes(None, Some(u32::from(RT_TABLE_MAIN)))?
            } else {
                Vec::new()
            },
        })
    }
}

/// Whether `r` is the device route to `dest` through `ifindex`.
fn is_device_route(r: &Route, dest: &IpCidr, ifindex: u32) -> bool {
    r.dst_len == dest.prefix_len
        && r.dst.unwrap_or(unspecified(IpFamily::of(&dest.addr))) == dest.addr
        && r.oif == Some(ifindex)
        && r.gateway.is_none()
}

/// Whether `r` routes to `dest` at all.
fn routes_to(r: &Route, dest: &IpCidr) -> bool {
    r.family == IpFamily::of(&dest.addr)
        && r.dst_len == dest.prefix_len
        && r.dst.unwrap_or(unspecified(r.family)) == dest.addr
}

/// Add `cidr` to link `ifindex` unless it has it: found there before the
/// call, or `EEXIST` from the kernel (the same address is there). What is
/// sent is recorded first: the kernel may add it and the reply be lost.
pub(crate) fn ensure_address(
    nl: &mut Netlink<'_>,
    ifname: &str,
    ifindex: u32,
    cidr: &IpCidr,
    found: Option<&Found>,
    journal: &mut Journal,
) -> Result<()> {
    if found.is_some_and(|f| f.addresses.iter().any(|a| a.ip() == Some(cidr.addr))) {
        return Ok(());
    }
    journal.push(Undo::Address {
        ifindex,
        cidr: *cidr,
    });
    match nl.add_address(ifindex, cidr.addr, cidr.prefix_len) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Some(Errno::EEXIST) => {
            journal.pop();
            Ok(())
        }
        Err(e) => Err(e.with_ifname(ifname)),
    }
}

/// Route `dest` through link `ifindex` (a device route in the main table)
/// unless that very route exists; recorded before it is sent. A route to
/// `dest` through something else is an error (`EEXIST`).
pub(crate) fn ensure_route(
    nl: &mut Netlink<'_>,
    ifname: &str,
    ifindex: u32,
    dest: &IpCidr,
    found: Option<&Found>,
    journal: &mut Journal,
) -> Result<()> {
    if found.is_some_and(|f| f.routes.iter().any(|r| is_device_route(r, dest, ifindex))) {
        return Ok(());
    }
    let clash = |e: Error| {
        e.with_ifname(ifname).with_hint(format!(
            "the main table already has a route to {dest} through another interface or \
             gateway; delete it first, or leave {dest} out"
        ))
    };
    if found.is_some_and(|f| f.routes.iter().any(|r| routes_to(r, dest))) {
        return Err(clash(Error::os(Errno::EEXIST, "netlink(RTM_NEWROUTE)")));
    }
    journal.push(Undo::Route {
        ifindex,
        dest: *dest,
    });
    match nl.add_route(&RouteSpec::device(dest.addr, dest.prefix_len, ifindex)) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Some(Errno::EEXIST) => {
            journal.pop();
            let family = IpFamily::of(&dest.addr);
            let ours = nl
                .routes(Some(family), Some(u32::from(RT_TABLE_MAIN)))?
                .iter()
                .any(|r| is_device_route(r, dest, ifindex));
            if ours {
                Ok(())
            } else {
                Err(clash(e))
            }
        }
        Err(e) => Err(e.with_ifname(ifname)),
    }
}

fn unspecified(family: IpFamily) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        IpFamily::V6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// What an open does after `up`: addresses, routes, then proxy ARP, proxy
/// NDP and forwarding, in the current thread's namespace (the device's).
pub(crate) struct HostSide<'o> {
    pub addresses: &'o [IpCidr],
    pub routes: &'o [IpCidr],
    pub proxy_arp: Option<bool>,
    pub proxy_ndp: Option<bool>,
    pub forwarding: Option<bool>,
}

impl HostSide<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.addresses.is_empty()
            && self.routes.is_empty()
            && self.proxy_arp.is_none()
            && self.proxy_ndp.is_none()
            && self.forwarding.is_none()
    }

    /// Apply it to `ifname` (link `ifindex`). `existing`: the device was
    /// there before the call, so what it has is read first and left alone.
    pub(crate) fn apply<'s>(
        &self,
        sys: &'s dyn Sys,
        nl: &mut Option<Netlink<'s>>,
        ifname: &str,
        ifindex: u32,
        existing: bool,
        journal: &mut Journal,
    ) -> Result<()> {
        let found = match existing && !(self.addresses.is_empty() && self.routes.is_empty()) {
            true => Some(Found::read(
                socket(nl, sys)?,
                ifindex,
                !self.routes.is_empty(),
            )?),
            false => None,
        };
        for c in self.addresses {
            ensure_address(
                socket(nl, sys)?,
                ifname,
                ifindex,
                c,
                found.as_ref(),
                journal,
            )?;
        }
        for d in self.routes {
            ensure_route(
                socket(nl, sys)?,
                ifname,
                ifindex,
                d,
                found.as_ref(),
                journal,
            )?;
        }
        if let Some(on) = self.proxy_arp {
            set_sysctl(sys, ifname, Sysctl::ProxyArp, on, journal)?;
        }
        if let Some(on) = self.proxy_ndp {
            set_sysctl(sys, ifname, Sysctl::ProxyNdp, on, journal)?;
        }
        if let Some(on) = self.forwarding {
            set_forwarding(sys, ifname, on, journal)?;
        }
        Ok(())
    }
}

impl Tap {
    /// Run `f` with a netlink socket and the device's ifindex, in the
    /// device's namespace; errors name the device.
    fn on_netlink<R: Send>(
        &self,
        sys: &dyn Sys,
        f: impl FnOnce(&mut Netlink<'_>, u32) -> Result<R> + Send,
    ) -> Result<R> {
        let ifindex = self.ifindex(sys)?;
        netns::run_in(sys, self.netns(), || f(&mut Netlink::open(sys)?, ifindex))
            .map_err(|e| e.with_ifname(self.ifname()))
    }

    /// Add an address to the device (`RTM_NEWADDR`, as `ip addr add`):
    /// `EEXIST` if it has it.
    pub fn add_address(&self, sys: &dyn Sys, cidr: &IpCidr) -> Result<()> {
        rules::check_address("cidr", cidr)?;
        self.on_netlink(sys, |nl, i| nl.add_address(i, cidr.addr, cidr.prefix_len))
    }

    /// Remove an address from the device (`RTM_DELADDR`): `EADDRNOTAVAIL` if
    /// it has none such.
    pub fn remove_address(&self, sys: &dyn Sys, cidr: &IpCidr) -> Result<()> {
        rules::check_address("cidr", cidr)?;
        self.on_netlink(sys, |nl, i| {
            nl.delete_address(i, cidr.addr, cidr.prefix_len)
        })
    }

    /// Route `dest` through the device (`RTM_NEWROUTE`, main table, scope
    /// link, as `ip route add DEST dev TAP`): `EEXIST` if the main table has
    /// a route to `dest`; `ENETDOWN` while the link is down.
    pub fn add_route(&self, sys: &dyn Sys, dest: &IpCidr) -> Result<()> {
        rules::check_route("dest", dest)?;
        self.on_netlink(sys, |nl, i| {
            nl.add_route(&RouteSpec::device(dest.addr, dest.prefix_len, i))
                .map_err(|e| match e.errno() {
                    Some(Errno::ENETDOWN) => e.with_hint("bring the link up first (setLinkUp)"),
                    _ => e,
                })
        })
    }

    /// Delete the route to `dest` through the device (`RTM_DELROUTE`):
    /// `ESRCH` if there is none.
    pub fn remove_route(&self, sys: &dyn Sys, dest: &IpCidr) -> Result<()> {
        rules::check_route("dest", dest)?;
        self.on_netlink(sys, |nl, i| {
            nl.delete_route(&RouteSpec::device(dest.addr, dest.prefix_len, i))
        })
    }

    /// One sysctl change (two for forwarding), undone if its second half fails.
    fn sysctls(
        &self,
        sys: &dyn Sys,
        f: impl FnOnce(&str, &mut Journal) -> Result<()> + Send,
    ) -> Result<()> {
        self.on_link(sys, |name| {
            let mut journal = Journal::new(true);
            let r = f(name, &mut journal);
            if r.is_err() {
                journal.undo(sys);
            }
            r
        })
    }

    /// `/proc/sys/net/ipv4/conf/<if>/proxy_arp`.
    pub fn set_proxy_arp(&self, sys: &dyn Sys, on: bool) -> Result<()> {
        self.sysctls(sys, |name, j| {
            set_sysctl(sys, name, Sysctl::ProxyArp, on, j).map(drop)
        })
    }

    /// `/proc/sys/net/ipv6/conf/<if>/proxy_ndp` (`ENOENT` with a hint where
    /// the device has no IPv6).
    pub fn set_proxy_ndp(&self, sys: &dyn Sys, on: bool) -> Result<()> {
        self.sysctls(sys, |name, j| {
            set_sysctl(sys, name, Sysctl::ProxyNdp, on, j).map(drop)
        })
    }

    /// `/proc/sys/net/ipv4/conf/<if>/forwarding`, then the IPv6 one (skipped
    /// where the device has no IPv6).
    pub fn set_forwarding(&self, sys: &dyn Sys, on: bool) -> Result<()> {
        self.sysctls(sys, |name, j| set_forwarding(sys, name, on, j))
    }

    /// Set the device's bridge port flags (`RTM_SETLINK`, `AF_BRIDGE`, as
    /// `bridge link set`): the device must be a bridge port.
    pub fn set_bridge_port(&self, sys: &dyn Sys, flags: &BridgePortFlags) -> Result<()> {
        let port = flags.to_port();
        self.on_netlink(sys, |nl, i| nl.set_bridge_port(i, &port))
    }

    /// The transmit queue length (`IFLA_TXQLEN`, as `ip link set txqueuelen`).
    pub fn set_tx_queue_len(&self, sys: &dyn Sys, len: u32) -> Result<()> {
        rules::check_tx_queue_len(len)?;
        let change = LinkChange {
            txqlen: Some(len),
            ..LinkChange::default()
        };
        self.on_netlink(sys, |nl, i| nl.set_link(i, &change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::NoSys;

    #[test]
    fn sysctl_paths() {
        assert_eq!(
            Sysctl::ProxyArp.path("vm0"),
            "/proc/sys/net/ipv4/conf/vm0/proxy_arp"
        );
        assert_eq!(
            Sysctl::ProxyNdp.path("vm.1"),
            "/proc/sys/net/ipv6/conf/vm.1/proxy_ndp"
        );
        assert_eq!(
            Sysctl::Forwarding4.path("t"),
            "/proc/sys/net/ipv4/conf/t/forwarding"
        );
        assert_eq!(
            Sysctl::Forwarding6.path("t"),
            "/proc/sys/net/ipv6/conf/t/forwarding"
        );
        assert_eq!(trimmed(b"1\n"), b"1");
        assert_eq!(trimmed(b"\n"), b"");
    }

    #[test]
    fn bridge_port_flags_map_to_netlink() {
        let f = BridgePortFlags {
            isolated: Some(true),
            learning: Some(false),
            unicast_flood: None,
            hairpin: Some(true),
        };
        let p = f.to_port();
        assert_eq!(p.isolated, Some(true));
        assert_eq!(p.learning, Some(false));
        assert_eq!(p.unicast_flood, None);
        assert_eq!(p.hairpin, Some(true));
        assert_eq!(p.state, None);
        assert!(BridgePortFlags::default().is_empty());
    }

    #[test]
    fn methods_refuse_before_any_syscall() {
        let fd = || std::os::fd::OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        let tap = Tap {
            ifname: "fake0".into(),
            tap_fds: vec![fd()],
            vhost_fds: Vec::new(),
            flags: 0,
            features: 0,
            netns: None,
            ownerless: false,
            ifindex: Default::default(),
            macvtap: None,
        };
        let v4 = |s: &str, len| IpCidr::new(s.parse().unwrap(), len);
        let code = |r: Result<()>| r.unwrap_err().code();
        assert_eq!(
            code(tap.add_address(&NoSys, &v4("192.0.2.1", 33))),
            "ERR_OUT_OF_RANGE"
        );
        assert_eq!(
            code(tap.add_address(&NoSys, &v4("0.0.0.0", 8))),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            code(tap.remove_address(&NoSys, &v4("224.0.0.1", 32))),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            code(tap.add_route(&NoSys, &v4("192.0.2.1", 24))),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            code(tap.remove_route(&NoSys, &v4("192.0.2.0", 40))),
            "ERR_OUT_OF_RANGE"
        );
        assert_eq!(
            code(tap.set_tx_queue_len(&NoSys, u32::MAX)),
            "ERR_OUT_OF_RANGE"
        );
    }

    #[test]
    fn an_empty_journal_undoes_nothing() {
        Journal::new(true).undo(&NoSys);
        let mut j = Journal::new(false);
        j.push(Undo::Down { name: "x".into() });
        assert!(j.steps.is_empty());
        j.undo(&NoSys);
    }
}
