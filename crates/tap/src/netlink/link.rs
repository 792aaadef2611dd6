//! Links: the whole namespace in one dump, one link by index or name,
//! changes by ifindex, macvtap create and delete, bridge port flags.
//!
//! The requests are the ones iproute2 sends (`ip link set`, `ip link add
//! ... type macvtap`, `bridge link set`), byte for byte; the unit tests
//! compare them with what `strace` recorded from `ip`.

use nix::errno::Errno;

use super::msg::{
    attrs, read_i32, read_mac, read_string, read_u16, read_u32, read_u64, read_u8, IfInfoMsg, Msg,
    Request,
};
use super::socket::{explain, Netlink};
use super::*;
use crate::error::{Error, Result};

/// A link by index or by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRef<'a> {
    Index(u32),
    Name(&'a str),
}

/// What the kernel reports about a link (`RTM_NEWLINK`). Attributes the
/// kernel did not send are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub ifname: String,
    /// `ifi_flags`: [`IFF_UP`], [`IFF_LOWER_UP`], ...
    pub flags: u32,
    /// `ifi_type`: `ARPHRD_ETHER` (1) for a TAP, `ARPHRD_NONE` (0xfffe) for a TUN.
    pub link_type: u16,
    pub mtu: Option<u32>,
    pub min_mtu: Option<u32>,
    pub max_mtu: Option<u32>,
    /// `IFLA_ADDRESS` when it is 6 bytes long.
    pub mac: Option<[u8; 6]>,
    /// `IFLA_MASTER`: the bridge (or bond...) this link is a port of.
    pub master: Option<u32>,
    /// `IFLA_IFALIAS` (absent when there is none).
    pub alias: Option<String>,
    pub txqlen: Option<u32>,
    pub carrier: Option<bool>,
    /// `IFLA_OPERSTATE` (RFC 2863): see [`oper_state_name`].
    pub operstate: Option<u8>,
    /// `IFLA_LINK`: the lower device (a macvtap's, a veth's peer).
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: `link` is in another namespace.
    pub link_netnsid: Option<i32>,
    pub num_tx_queues: Option<u32>,
    pub num_rx_queues: Option<u32>,
    /// `IFLA_INFO_KIND`: `tun`, `macvtap`, `bridge`, `veth`...
    pub kind: Option<String>,
    /// `IFLA_INFO_DATA` of a `tun` link.
    pub tun: Option<TunInfo>,
    /// `IFLA_MACVLAN_MODE` of a `macvtap` or `macvlan` link: [`MacvlanMode`].
    pub macvlan_mode: Option<u32>,
    /// `IFLA_INFO_SLAVE_KIND`: `bridge` for a bridge port.
    pub slave_kind: Option<String>,
    /// A bridge port's settings (`IFLA_INFO_SLAVE_DATA`, or `IFLA_PROTINFO`
    /// in an `AF_BRIDGE` dump).
    pub bridge_port: Option<BridgePort>,
    /// `IFLA_STATS64`.
    pub stats: Option<LinkStats>,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }
}

/// The name `ip` shows for an `IFLA_OPERSTATE` value.
pub fn oper_state_name(state: u8) -> &'static str {
    match state {
        1 => "NOTPRESENT",
        2 => "DOWN",
        3 => "LOWERLAYERDOWN",
        4 => "TESTING",
        5 => "DORMANT",
        6 => "UP",
        _ => "UNKNOWN",
    }
}

/// `IFLA_INFO_DATA` of a tun/tap link (Linux 4.15+).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunInfo {
    /// `IFLA_TUN_TYPE` is `IFF_TAP` (else `IFF_TUN`).
    pub tap: bool,
    /// `IFLA_TUN_OWNER` (absent when the device has no owner).
    pub owner: Option<u32>,
    pub group: Option<u32>,
    pub pi: bool,
    pub vnet_hdr: bool,
    pub persist: bool,
    pub multi_queue: bool,
    /// Attached queues (multi-queue devices only).
    pub num_queues: Option<u32>,
    pub num_disabled_queues: Option<u32>,
}

impl TunInfo {
    fn parse(data: &[u8]) -> TunInfo {
        let flag = |p: &[u8]| read_u8(p).is_some_and(|v| v != 0);
        let mut t = TunInfo::default();
        for (ty, p) in attrs(data) {
            match ty {
                IFLA_TUN_OWNER => t.owner = read_u32(p),
                IFLA_TUN_GROUP => t.group = read_u32(p),
                IFLA_TUN_TYPE => t.tap = read_u8(p) == Some(crate::sys::consts::IFF_TAP as u8),
                IFLA_TUN_PI => t.pi = flag(p),
                IFLA_TUN_VNET_HDR => t.vnet_hdr = flag(p),
                IFLA_TUN_PERSIST => t.persist = flag(p),
                IFLA_TUN_MULTI_QUEUE => t.multi_queue = flag(p),
                IFLA_TUN_NUM_QUEUES => t.num_queues = read_u32(p),
                IFLA_TUN_NUM_DISABLED_QUEUES => t.num_disabled_queues = read_u32(p),
                _ => {}
            }
        }
        t
    }
}

/// The first counters of `struct rtnl_link_stats64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub multicast: u64,
    pub collisions: u64,
}

impl LinkStats {
    fn parse(p: &[u8]) -> Option<LinkStats> {
        let f = |i: usize| read_u64(p.get(i * 8..)?);
        Some(LinkStats {
            rx_packets: f(0)?,
            tx_packets: f(1)?,
            rx_bytes: f(2)?,
            tx_bytes: f(3)?,
            rx_errors: f(4)?,
            tx_errors: f(5)?,
            rx_dropped: f(6)?,
            tx_dropped: f(7)?,
            multicast: f(8)?,
            collisions: f(9)?,
        })
    }
}

/// A bridge port's settings (`IFLA_BRPORT_*`). Read back from a dump, and
/// written by [`Netlink::set_bridge_port`], which sends the ones that are
/// `Some`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgePort {
    /// STP state: 0 disabled, 1 listening, 2 learning, 3 forwarding, 4 blocking.
    pub state: Option<u8>,
    pub priority: Option<u16>,
    pub cost: Option<u32>,
    /// `IFLA_BRPORT_MODE`: hairpin (reflect frames back out of this port).
    pub hairpin: Option<bool>,
    pub learning: Option<bool>,
    /// `flood` in `bridge link`: unknown unicast goes to this port.
    pub unicast_flood: Option<bool>,
    pub mcast_flood: Option<bool>,
    pub bcast_flood: Option<bool>,
    /// Isolated ports only talk to non-isolated ones.
    pub isolated: Option<bool>,
}

impl BridgePort {
    fn parse(data: &[u8]) -> BridgePort {
        let flag = |p: &[u8]| read_u8(p).map(|v| v != 0);
        let mut b = BridgePort::default();
        for (ty, p) in attrs(data) {
            match ty {
                IFLA_BRPORT_STATE => b.state = read_u8(p),
                IFLA_BRPORT_PRIORITY => b.priority = read_u16(p),
                IFLA_BRPORT_COST => b.cost = read_u32(p),
                IFLA_BRPORT_MODE => b.hairpin = flag(p),
                IFLA_BRPORT_LEARNING => b.learning = flag(p),
                IFLA_BRPORT_UNICAST_FLOOD => b.unicast_flood = flag(p),
                IFLA_BRPORT_MCAST_FLOOD => b.mcast_flood = flag(p),
                IFLA_BRPORT_BCAST_FLOOD => b.bcast_flood = flag(p),
                IFLA_BRPORT_ISOLATED => b.isolated = flag(p),
                _ => {}
            }
        }
        b
    }

    fn is_empty(&self) -> bool {
        *self == BridgePort::default()
    }
}

/// One port from an `AF_BRIDGE` dump ([`Netlink::bridge_ports`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgePortEntry {
    pub ifindex: u32,
    pub ifname: String,
    /// The bridge.
    pub master: Option<u32>,
    pub port: BridgePort,
}

/// Which links a dump returns. The kernel filters by kind and master when
/// it can (Linux 4.18+); the result is filtered again here either way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkFilter {
    /// Only links of this `IFLA_INFO_KIND` (`tun`, `macvtap`...).
    pub kind: Option<String>,
    /// Only ports of this master; `Some(0)`: only links without one.
    pub master: Option<u32>,
}

impl LinkFilter {
    fn matches(&self, link: &Link) -> bool {
        self.kind
            .as_ref()
            .map_or(true, |k| link.kind.as_ref() == Some(k))
            && self.master.map_or(true, |m| link.master.unwrap_or(0) == m)
    }
}

/// Changes to a link; `None` leaves an attribute alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkChange {
    /// `IFF_UP` through `ifi_flags` / `ifi_change`.
    pub up: Option<bool>,
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    /// The bridge to attach to; `Some(0)` detaches from the current master.
    pub master: Option<u32>,
    pub txqlen: Option<u32>,
    /// `Some("")` clears the alias. At most 255 bytes.
    pub alias: Option<String>,
}

impl LinkChange {
    pub fn is_empty(&self) -> bool {
        *self == LinkChange::default()
    }
}

/// `MACVLAN_MODE_*` from `<linux/if_link.h>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(u32)]
pub enum MacvlanMode {
    Private = 1,
    Vepa = 2,
    #[default]
    Bridge = 4,
    Passthru = 8,
    Source = 16,
}

impl MacvlanMode {
    pub fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            1 => MacvlanMode::Private,
            2 => MacvlanMode::Vepa,
            4 => MacvlanMode::Bridge,
            8 => MacvlanMode::Passthru,
            16 => MacvlanMode::Source,
            _ => return None,
        })
    }

    /// The name `ip` uses: `bridge`, `vepa`...
    pub fn name(self) -> &'static str {
        match self {
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Passthru => "passthru",
            MacvlanMode::Source => "source",
        }
    }
}

/// A macvtap to create on a lower device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacvtapSpec {
    /// The kernel picks `macvtap<N>` when `None`.
    pub name: Option<String>,
    /// The lower device's ifindex.
    pub lower: u32,
    pub mode: MacvlanMode,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub tx_queues: Option<u32>,
    pub rx_queues: Option<u32>,
    /// Bring it up in the same request.
    pub up: bool,
}

/// A name the kernel would accept for a link (`dev_valid_name`): 1 to 15
/// bytes, not `.` or `..`, no `/`, `:`, NUL or whitespace. Checked before
/// it goes into a request, where a NUL would silently cut it short.
pub fn check_ifname(name: &str) -> Result<()> {
    let bad = |b: u8| matches!(b, b'/' | b':' | 0 | b' ' | b'\t'..=b'\r');
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." || name.bytes().any(bad) {
        return Err(Error::invalid(
            "name",
            format!(
                "{} is not an interface name (1 to 15 bytes, no '/', ':' or whitespace)",
                crate::rules::quoted(name)
            ),
        ));
    }
    Ok(())
}

/// An ifindex the kernel can hold (a positive `int`).
pub(crate) fn check_ifindex(what: &'static str, ifindex: u32) -> Result<()> {
    if ifindex == 0 || ifindex > i32::MAX as u32 {
        return Err(Error::range(
            what,
            format!("{what} must be 1 to {}, got {ifindex}", i32::MAX),
        ));
    }
    Ok(())
}

/// The hint for ENODEV on a request by ifindex.
pub(crate) fn no_such_index(ifindex: u32) -> impl FnOnce(Errno) -> Option<String> {
    move |errno| {
        (errno == Errno::ENODEV).then(|| {
            format!("there is no interface with index {ifindex} in this network namespace")
        })
    }
}

/// `RTM_GETLINK` dump of every link (filtered as [`LinkFilter`] says).
pub fn dump_request(filter: &LinkFilter) -> Request {
    let mut r = Request::new(RTM_GETLINK, NLM_F_DUMP);
    r.push(&IfInfoMsg::default().encode());
    if let Some(m) = filter.master.filter(|&m| m != 0) {
        r.attr_u32(IFLA_MASTER, m);
    }
    if let Some(kind) = &filter.kind {
        let n = r.nest(IFLA_LINKINFO);
        r.attr(IFLA_INFO_KIND, kind.as_bytes());
        r.end(n);
    }
    r
}

/// `RTM_GETLINK` of one link.
pub fn get_request(which: LinkRef<'_>) -> Request {
    let mut r = Request::new(RTM_GETLINK, 0);
    match which {
        LinkRef::Index(index) => {
            r.push(
                &IfInfoMsg {
                    index,
                    ..Default::default()
                }
                .encode(),
            );
        }
        LinkRef::Name(name) => {
            r.push(&IfInfoMsg::default().encode());
            r.attr_cstr(IFLA_IFNAME, name);
        }
    }
    r
}

/// `RTM_NEWLINK` changing link `ifindex`, as `ip link set` sends it.
pub fn set_request(ifindex: u32, change: &LinkChange) -> Result<Request> {
    check_ifindex("ifindex", ifindex)?;
    if let Some(alias) = &change.alias {
        if alias.len() > 255 {
            return Err(Error::range(
                "alias",
                format!("an alias is at most 255 bytes, got {}", alias.len()),
            ));
        }
        if alias.contains('\0') {
            return Err(Error::invalid("alias", "an alias cannot contain NUL"));
        }
    }
    let (flags, change_mask) = match change.up {
        Some(true) => (IFF_UP, IFF_UP),
        Some(false) => (0, IFF_UP),
        None => (0, 0),
    };
    let mut r = Request::new(RTM_NEWLINK, NLM_F_ACK);
    r.push(
        &IfInfoMsg {
            index: ifindex,
            flags,
            change: change_mask,
            ..Default::default()
        }
        .encode(),
    );
    if let Some(mac) = &change.mac {
        r.attr(IFLA_ADDRESS, mac);
    }
    if let Some(mtu) = change.mtu {
        r.attr_u32(IFLA_MTU, mtu);
    }
    if let Some(q) = change.txqlen {
        r.attr_u32(IFLA_TXQLEN, q);
    }
    if let Some(alias) = &change.alias {
        // Without a NUL, as `ip link set alias` sends it; empty clears it.
        r.attr(IFLA_IFALIAS, alias.as_bytes());
    }
    if let Some(m) = change.master {
        r.attr_u32(IFLA_MASTER, m);
    }
    Ok(r)
}

/// `RTM_NEWLINK` creating a macvtap (`NLM_F_CREATE | NLM_F_EXCL`), with
/// `NLM_F_ECHO` so the kernel sends the new link back.
pub fn macvtap_request(spec: &MacvtapSpec) -> Result<Request> {
    check_ifindex("lower", spec.lower)?;
    if let Some(name) = &spec.name {
        check_ifname(name)?;
    }
    let up = if spec.up { IFF_UP } else { 0 };
    let flags = NLM_F_ACK | NLM_F_ECHO | NLM_F_CREATE | NLM_F_EXCL;
    let mut r = Request::new(RTM_NEWLINK, flags);
    r.push(
        &IfInfoMsg {
            flags: up,
            change: up,
            ..Default::default()
        }
        .encode(),
    );
    r.attr_u32(IFLA_LINK, spec.lower);
    if let Some(name) = &spec.name {
        r.attr_cstr(IFLA_IFNAME, name);
    }
    if let Some(mac) = &spec.mac {
        r.attr(IFLA_ADDRESS, mac);
    }
    if let Some(mtu) = spec.mtu {
        r.attr_u32(IFLA_MTU, mtu);
    }
    if let Some(q) = spec.tx_queues {
        r.attr_u32(IFLA_NUM_TX_QUEUES, q);
    }
    if let Some(q) = spec.rx_queues {
        r.attr_u32(IFLA_NUM_RX_QUEUES, q);
    }
    let info = r.nest(IFLA_LINKINFO);
    r.attr(IFLA_INFO_KIND, b"macvtap");
    let data = r.nest(IFLA_INFO_DATA);
    r.attr_u32(IFLA_MACVLAN_MODE, spec.mode as u32);
    r.end(data);
    r.end(info);
    Ok(r)
}

/// `RTM_DELLINK` of link `ifindex`.
pub fn delete_request(ifindex: u32) -> Request {
    let mut r = Request::new(RTM_DELLINK, NLM_F_ACK);
    r.push(
        &IfInfoMsg {
            index: ifindex,
            ..Default::default()
        }
        .encode(),
    );
    r
}

/// `RTM_SETLINK` (`AF_BRIDGE`) with the port settings in `IFLA_PROTINFO`,
/// in the order `bridge link set` sends them.
pub fn bridge_port_request(ifindex: u32, port: &BridgePort) -> Request {
    let mut r = Request::new(RTM_SETLINK, NLM_F_ACK);
    r.push(
        &IfInfoMsg {
            family: AF_BRIDGE,
            index: ifindex,
            ..Default::default()
        }
        .encode(),
    );
    let n = r.nest(IFLA_PROTINFO | NLA_F_NESTED);
    let flag = |r: &mut Request, ty, v: Option<bool>| {
        if let Some(v) = v {
            r.attr_u8(ty, u8::from(v));
        }
    };
    flag(&mut r, IFLA_BRPORT_MODE, port.hairpin);
    flag(&mut r, IFLA_BRPORT_UNICAST_FLOOD, port.unicast_flood);
    flag(&mut r, IFLA_BRPORT_MCAST_FLOOD, port.mcast_flood);
    flag(&mut r, IFLA_BRPORT_BCAST_FLOOD, port.bcast_flood);
    flag(&mut r, IFLA_BRPORT_LEARNING, port.learning);
    if let Some(cost) = port.cost {
        r.attr_u32(IFLA_BRPORT_COST, cost);
    }
    if let Some(prio) = port.priority {
        r.attr_u16(IFLA_BRPORT_PRIORITY, prio);
    }
    if let Some(state) = port.state {
        r.attr_u8(IFLA_BRPORT_STATE, state);
    }
    flag(&mut r, IFLA_BRPORT_ISOLATED, port.isolated);
    r.end(n);
    r
}

/// `RTM_GETLINK` dump in the `AF_BRIDGE` family: one message per bridge port.
pub fn bridge_dump_request() -> Request {
    let mut r = Request::new(RTM_GETLINK, NLM_F_DUMP);
    r.push(
        &IfInfoMsg {
            family: AF_BRIDGE,
            ..Default::default()
        }
        .encode(),
    );
    r
}

/// Read an `RTM_NEWLINK` message. One pass over the attributes; the only
/// allocations are the strings.
pub fn parse_link(msg: &Msg<'_>) -> Option<Link> {
    if msg.msg_type != RTM_NEWLINK {
        return None;
    }
    let hdr = IfInfoMsg::decode(msg.payload)?;
    let mut link = Link {
        ifindex: hdr.index,
        flags: hdr.flags,
        link_type: hdr.link_type,
        ..Link::default()
    };
    let mut linkinfo = None;
    for (ty, p) in attrs(msg.payload.get(IfInfoMsg::LEN..)?) {
        match ty {
            IFLA_IFNAME => link.ifname = read_string(p),
            IFLA_MTU => link.mtu = read_u32(p),
            IFLA_MIN_MTU => link.min_mtu = read_u32(p),
            IFLA_MAX_MTU => link.max_mtu = read_u32(p),
            IFLA_ADDRESS => link.mac = read_mac(p),
            IFLA_MASTER => link.master = read_u32(p),
            IFLA_IFALIAS => link.alias = Some(read_string(p)).filter(|a| !a.is_empty()),
            IFLA_TXQLEN => link.txqlen = read_u32(p),
            IFLA_CARRIER => link.carrier = read_u8(p).map(|c| c != 0),
            IFLA_OPERSTATE => link.operstate = read_u8(p),
            IFLA_LINK => link.link = read_u32(p),
            IFLA_LINK_NETNSID => link.link_netnsid = read_i32(p),
            IFLA_NUM_TX_QUEUES => link.num_tx_queues = read_u32(p),
            IFLA_NUM_RX_QUEUES => link.num_rx_queues = read_u32(p),
            IFLA_STATS64 => link.stats = LinkStats::parse(p),
            IFLA_LINKINFO => linkinfo = Some(p),
            IFLA_PROTINFO if hdr.family == AF_BRIDGE => {
                link.bridge_port = Some(BridgePort::parse(p));
            }
            _ => {}
        }
    }
    if let Some(info) = linkinfo {
        let (mut data, mut slave_data) = (None, None);
        for (ty, p) in attrs(info) {
            match ty {
                IFLA_INFO_KIND => link.kind = Some(read_string(p)),
                IFLA_INFO_DATA => data = Some(p),
                IFLA_INFO_SLAVE_KIND => link.slave_kind = Some(read_string(p)),
                IFLA_INFO_SLAVE_DATA => slave_data = Some(p),
                _ => {}
            }
        }
        match (link.kind.as_deref(), data) {
            (Some("tun"), Some(d)) => link.tun = Some(TunInfo::parse(d)),
            (Some("macvtap" | "macvlan"), Some(d)) => {
                link.macvlan_mode = attrs(d)
                    .find(|&(ty, _)| ty == IFLA_MACVLAN_MODE)
                    .and_then(|(_, p)| read_u32(p));
            }
            _ => {}
        }
        if let (Some("bridge"), Some(d)) = (link.slave_kind.as_deref(), slave_data) {
            link.bridge_port = Some(BridgePort::parse(d));
        }
    }
    Some(link)
}

/// Read one message of an `AF_BRIDGE` dump (ports only).
pub fn parse_bridge_port(msg: &Msg<'_>) -> Option<BridgePortEntry> {
    let link = parse_link(msg)?;
    Some(BridgePortEntry {
        ifindex: link.ifindex,
        ifname: link.ifname,
        master: link.master,
        port: link.bridge_port?,
    })
}

impl Netlink<'_> {
    /// Every link of the namespace that `filter` lets through, from one dump.
    pub fn links(&mut self, filter: &LinkFilter) -> Result<Vec<Link>> {
        let mut req = dump_request(filter);
        self.dump(&mut req, |m| parse_link(m).filter(|l| filter.matches(l)))
    }

    /// One link, or `None` when there is none by that index or name.
    pub fn link(&mut self, which: LinkRef<'_>) -> Result<Option<Link>> {
        match which {
            LinkRef::Index(i) => check_ifindex("ifindex", i)?,
            LinkRef::Name(n) => check_ifname(n)?,
        }
        let mut req = get_request(which);
        match self.get(&mut req, parse_link) {
            Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(None),
            Err(e) => Err(match which {
                LinkRef::Name(n) => e.with_ifname(n),
                LinkRef::Index(_) => e,
            }),
            ok => ok,
        }
    }

    /// Change link `ifindex` in one `RTM_NEWLINK` (nothing is sent when
    /// `change` is empty). The kernel applies the address, the MTU, the
    /// alias, up/down, the master and the queue length in that order and
    /// stops at the first failure, leaving the earlier ones applied.
    pub fn set_link(&mut self, ifindex: u32, change: &LinkChange) -> Result<()> {
        let mut req = set_request(ifindex, change)?;
        if change.is_empty() {
            return Ok(());
        }
        self.ack(&mut req)
            .map_err(|e| explain(e, no_such_index(ifindex)))
    }

    /// Create a macvtap and return it as the kernel reports it (its ifindex
    /// names its character device, `/dev/tap<ifindex>`). The kernel sends
    /// the new link back on Linux 6.1+; before, it is looked up by name, so
    /// give one there.
    pub fn create_macvtap(&mut self, spec: &MacvtapSpec) -> Result<Link> {
        let created = self.create_macvtap_echo(spec)?;
        let name = spec.name.as_deref();
        match (created, name) {
            (Some(link), _) => Ok(link),
            (None, Some(n)) => self.link(LinkRef::Name(n))?.ok_or_else(|| {
                Error::os(Errno::ENODEV, label(RTM_GETLINK))
                    .with_ifname(n)
                    .with_hint("the new macvtap disappeared before it could be read back")
            }),
            (None, None) => Err(Error::os(Errno::EOPNOTSUPP, label(RTM_NEWLINK)).with_hint(
                "the macvtap was created, but this kernel does not send new links back \
                 (NLM_F_ECHO, Linux 6.1): give it a name",
            )),
        }
    }

    /// Create a macvtap: the new link as the kernel sent it back (Linux
    /// 6.1+), or `None` when the kernel acknowledged it without sending it.
    /// On an error, [`Netlink::unanswered`] tells whether the kernel may
    /// have created it all the same (the answer was lost).
    pub fn create_macvtap_echo(&mut self, spec: &MacvtapSpec) -> Result<Option<Link>> {
        let mut req = macvtap_request(spec)?;
        let name = spec.name.as_deref();
        let mut created = None;
        self.ack_with(&mut req, |m| {
            if created.is_none() {
                created = parse_link(m);
            }
        })
        .map_err(|e| {
            let lower = spec.lower;
            let e = explain(e, |errno| match errno {
                Errno::EEXIST => Some("an interface with that name already exists".to_owned()),
                Errno::ENODEV => Some(format!("there is no lower interface with index {lower}")),
                _ => None,
            });
            match name {
                Some(n) => e.with_ifname(n),
                None => e,
            }
        })?;
        Ok(created)
    }

    /// Delete link `ifindex` (`RTM_DELLINK`).
    pub fn delete_link(&mut self, ifindex: u32) -> Result<()> {
        check_ifindex("ifindex", ifindex)?;
        self.ack(&mut delete_request(ifindex))
            .map_err(|e| explain(e, no_such_index(ifindex)))
    }

    /// Set a bridge port's flags as `bridge link set` does (nothing is sent
    /// when `port` has none).
    pub fn set_bridge_port(&mut self, ifindex: u32, port: &BridgePort) -> Result<()> {
        check_ifindex("ifindex", ifindex)?;
        if port.is_empty() {
            return Ok(());
        }
        self.ack(&mut bridge_port_request(ifindex, port))
            .map_err(|e| {
                explain(e, |errno| match errno {
                    Errno::ENODEV => no_such_index(ifindex)(errno),
                    Errno::EINVAL | Errno::EOPNOTSUPP => {
                        Some(format!("interface {ifindex} is not a bridge port"))
                    }
                    _ => None,
                })
            })
    }

    /// Every bridge port of the namespace with its settings (`AF_BRIDGE` dump).
    pub fn bridge_ports(&mut self) -> Result<Vec<BridgePortEntry>> {
        self.dump(&mut bridge_dump_request(), parse_bridge_port)
    }
}
