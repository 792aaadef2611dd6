//! Every limit and cross-field rule of vmtap, in one place.
//!
//! Each check runs before any syscall and fails with
//! [`Error::InvalidArgument`]: `range: true` (`ERR_OUT_OF_RANGE`) for a
//! number outside its range, `range: false` (`ERR_INVALID_ARG_VALUE`) for a
//! malformed value or a combination the kernel would refuse or ignore.
//! [`crate::open_tap`], every [`crate::Tap`] setter, the link primitives and
//! fd passing call these; the Node binding checks only JS types and integer
//! width and leaves every rule to this module (and exports its limits).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::macvtap::MacvtapOptions;
use crate::netlink::MacvlanMode;
use crate::open::{Mode, OpenOptions, Tristate};
use crate::sys::consts::*;
use crate::sys::IFNAMSIZ;

/// The kernel's MAX_TAP_QUEUES (the tun and the macvtap driver's alike).
pub const MAX_QUEUES: u32 = 256;
/// The smallest MTU an Ethernet device takes (IPv4's minimum).
pub const MIN_MTU: u32 = 68;
/// The largest MTU `SIOCSIFMTU` can carry.
pub const MAX_MTU: u32 = 65535;
/// A TAP device's own maximum MTU (the kernel refuses more with EINVAL).
pub const TAP_MAX_MTU: u32 = 65521;
/// The vnet header sizes virtio uses: 10 (legacy), 12 (mergeable rx
/// buffers / virtio 1.0), 20 (with hash report).
pub const VNET_HDR_SIZES: [i32; 3] = [10, 12, 20];
/// Every TUNSETOFFLOAD bit vmtap knows.
pub const ALL_OFFLOADS: u32 =
    TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO | TUN_F_USO4 | TUN_F_USO6;
/// The largest uid/gid for TUNSETOWNER/TUNSETGROUP (`u32::MAX` is the
/// kernel's "nobody").
pub const MAX_ID: u32 = u32::MAX - 1;
/// An interface name's maximum length (`IFNAMSIZ` less the NUL).
pub const MAX_NAME_BYTES: usize = IFNAMSIZ - 1;
/// The kernel's SCM_MAX_FD: at most this many fds in one message.
pub const SCM_MAX_FD: usize = 253;
/// The largest message `recv_fds` reads at once.
pub const MAX_RECV_BYTES: usize = 1 << 30;
/// The most threads `close_all` may be asked for.
pub const MAX_CLOSE_THREADS: usize = 1024;
/// A tag's maximum length. It is stored in the interface alias
/// (`IFLA_IFALIAS`, at most IFALIASZ - 1 = 255 bytes) after the 10-byte
/// prefix `vmtap:tag=` (see [`crate::inventory`]); 64 leaves room for more
/// fields later.
pub const MAX_TAG_BYTES: usize = 64;

/// The most addresses one call puts on a device (openTap's `addresses`).
pub const MAX_ADDRESSES: usize = 256;
/// The most routes one call adds through a device (openTap's `routes`).
pub const MAX_ROUTES: usize = 256;
/// The longest transmit queue: what `SIOCSIFTXQLEN` can carry (a
/// non-negative `int`); `IFLA_TXQLEN` takes the same.
pub const MAX_TX_QUEUE_LEN: u32 = i32::MAX as u32;

/// The most opens the binding's `openBatch` takes in one call (openTapAsync
/// sends at most this many to the libuv pool at once).
pub const MAX_OPEN_BATCH: usize = 64;

/// The shortest frame a TAP queue takes: an Ethernet header.
pub const MIN_TAP_FRAME_BYTES: usize = 14;
/// The shortest packet a TUN queue takes: an IPv4 header.
pub const MIN_TUN_PACKET_BYTES: usize = 20;
/// What a TAP frame carries beyond the MTU: its Ethernet header and one
/// 802.1Q tag.
pub const TAP_FRAME_OVERHEAD: usize = 18;
/// The longest frame written through a queue, whatever the MTU: a GSO
/// frame (its virtio-net header says so) of 64 KiB with its link header.
pub const MAX_FRAME_BYTES: usize = 65535 + TAP_FRAME_OVERHEAD;

/// The most fds one `dup_fds` duplicates: a device's tap and vhost fds.
pub const MAX_DUP_FDS: usize = 2 * MAX_QUEUES as usize;
/// The most characters of a caller's string an error message quotes.
pub const MAX_QUOTED_CHARS: usize = 64;

/// `s` as an error message quotes it (Rust's `{:?}` form), cut after
/// [`MAX_QUOTED_CHARS`] characters with its length in bytes appended: a
/// message never repeats a huge argument.
pub fn quoted(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}... ({} bytes)", &s[..end], s.len()),
    }
}

/// `queues`: 1 to [`MAX_QUEUES`].
pub fn check_queues(queues: u32) -> Result<()> {
    if !(1..=MAX_QUEUES).contains(&queues) {
        return Err(Error::range(
            "queues",
            format!("queues must be 1 to {MAX_QUEUES}, got {queues}"),
        ));
    }
    Ok(())
}

/// An MTU: [`MIN_MTU`] to [`MAX_MTU`] (a TAP device itself takes at most
/// [`TAP_MAX_MTU`]; the kernel says so).
pub fn check_mtu(mtu: u32) -> Result<()> {
    if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
        return Err(Error::range(
            "mtu",
            format!("mtu must be {MIN_MTU} to {MAX_MTU}, got {mtu}"),
        ));
    }
    Ok(())
}

/// A vnet header size: one of [`VNET_HDR_SIZES`].
pub fn check_vnet_hdr_size(size: i32) -> Result<()> {
    if !VNET_HDR_SIZES.contains(&size) {
        return Err(Error::range(
            "vnetHdrSize",
            format!("vnetHdrSize must be 10, 12 or 20, got {size}"),
        ));
    }
    Ok(())
}

/// TUNSETOFFLOAD bits: known bits only, and only combinations the kernel
/// honours: every offload needs csum, ecn needs tso4 or tso6, uso4 and uso6
/// go together.
pub fn check_offloads(bits: u32) -> Result<()> {
    if bits & !ALL_OFFLOADS != 0 {
        return Err(Error::range(
            "offloads",
            format!(
                "unknown offload bits {:#x} (known: {ALL_OFFLOADS:#x})",
                bits & !ALL_OFFLOADS
            ),
        ));
    }
    if bits != 0 && bits & TUN_F_CSUM == 0 {
        return Err(Error::invalid(
            "offloads",
            "every offload needs csum (the kernel ignores TSO/UFO/USO without it)",
        ));
    }
    if bits & TUN_F_TSO_ECN != 0 && bits & (TUN_F_TSO4 | TUN_F_TSO6) == 0 {
        return Err(Error::invalid(
            "offloads",
            "ecn needs tso4 or tso6 (the kernel refuses ecn alone)",
        ));
    }
    if (bits & TUN_F_USO4 == 0) != (bits & TUN_F_USO6 == 0) {
        return Err(Error::invalid(
            "offloads",
            "uso4 and uso6 go together (the kernel takes them only as a pair)",
        ));
    }
    Ok(())
}

/// Offloads (other than none) and a vnet header size need a device with
/// IFF_VNET_HDR: virtio-net headers carry them.
pub fn check_device_vnet_hdr(what: &'static str, vnet_hdr: bool, ifname: &str) -> Result<()> {
    if !vnet_hdr {
        return Err(Error::invalid(
            what,
            format!("{what} needs a device opened with vnetHdr ({ifname} has none)"),
        ));
    }
    Ok(())
}

/// A uid or gid for TUNSETOWNER/TUNSETGROUP: 0 to [`MAX_ID`].
pub fn check_id(what: &'static str, id: u32) -> Result<()> {
    if id > MAX_ID {
        return Err(Error::range(
            what,
            format!("{what} must be 0 to {MAX_ID}, got {id}"),
        ));
    }
    Ok(())
}

/// A MAC for an interface address: unicast, not all zeros.
pub fn check_unicast(mac: &[u8; 6]) -> Result<()> {
    if mac[0] & 1 != 0 {
        return Err(Error::invalid(
            "mac",
            format!(
                "{} is a multicast address; an interface needs a unicast one",
                crate::link::format_mac(mac)
            ),
        ));
    }
    if mac.iter().all(|&b| b == 0) {
        return Err(Error::invalid(
            "mac",
            "the MAC address must not be all zeros",
        ));
    }
    Ok(())
}

/// Queue `index` of a device with `queues` queues, for TUNSETQUEUE:
/// multi-queue devices only.
pub fn check_queue_index(index: usize, queues: usize, multi_queue: bool) -> Result<()> {
    if !multi_queue {
        return Err(Error::invalid(
            "index",
            "queues can be enabled/disabled on multi-queue devices only",
        ));
    }
    if index >= queues {
        return Err(Error::range(
            "index",
            format!(
                "queue index must be 0 to {}, got {index}",
                queues.saturating_sub(1)
            ),
        ));
    }
    Ok(())
}

/// What kind of interface name the caller gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfName {
    /// No name: the kernel picks `tap%d`.
    Kernel,
    /// A template with one `%d`, e.g. `vm%d`: the kernel fills the number.
    Template(String),
    /// An exact name: created if absent, attached to if it exists.
    Exact(String),
}

impl IfName {
    /// The string to put in `ifr_name` (empty for [`IfName::Kernel`]).
    pub fn as_request(&self) -> &str {
        match self {
            IfName::Kernel => "",
            IfName::Template(s) | IfName::Exact(s) => s,
        }
    }

    /// Whether the kernel will choose the final name.
    pub fn is_pattern(&self) -> bool {
        !matches!(self, IfName::Exact(_))
    }
}

/// Validate an interface name. The kernel silently truncates a 16-byte name
/// to 15 (it zeroes `ifr_name[15]`) and fills a `%d` with the lowest free
/// number, so names are checked here: 1 to [`MAX_NAME_BYTES`] bytes of
/// printable ASCII without `/`, `:`, whitespace or `%`, except a single
/// `%d` template. An empty name lets the kernel pick (`tap%d`).
pub fn parse_name(name: &str) -> Result<IfName> {
    if name.is_empty() {
        return Ok(IfName::Kernel);
    }
    let bytes = name.as_bytes();
    if bytes.len() > MAX_NAME_BYTES {
        return Err(Error::invalid(
            "name",
            format!(
                "interface name {} is {} bytes; the kernel allows at most {MAX_NAME_BYTES}",
                quoted(name),
                bytes.len(),
            ),
        ));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(
            "name",
            format!("interface name {} is reserved", quoted(name)),
        ));
    }
    let mut templates = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                if bytes.get(i + 1) == Some(&b'd') {
                    templates += 1;
                    i += 2;
                    continue;
                }
                return Err(Error::invalid(
                    "name",
                    format!(
                        "interface name {} has a '%' that is not part of a single %d",
                        quoted(name)
                    ),
                ));
            }
            b'/' | b':' => {
                return Err(Error::invalid(
                    "name",
                    format!("interface name {} contains {:?}", quoted(name), b as char),
                ))
            }
            0x21..=0x7e => {}
            _ => {
                return Err(Error::invalid(
                    "name",
                    format!(
                        "interface name {} must be printable ASCII without whitespace",
                        quoted(name)
                    ),
                ))
            }
        }
        i += 1;
    }
    match templates {
        0 => Ok(IfName::Exact(name.to_owned())),
        1 => Ok(IfName::Template(name.to_owned())),
        _ => Err(Error::invalid(
            "name",
            format!("interface name {} has more than one %d", quoted(name)),
        )),
    }
}

/// The device to delete: an exact interface name.
pub fn check_delete_name(name: &str) -> Result<String> {
    let rule = || {
        Error::invalid(
            "name",
            format!(
                "the device to delete must be named exactly: 1 to {MAX_NAME_BYTES} bytes of printable \
                 ASCII without '/', ':', whitespace or '%', got {}",
                quoted(name)
            ),
        )
    };
    match parse_name(name).map_err(|_| rule())? {
        IfName::Exact(n) => Ok(n),
        _ => Err(rule()),
    }
}

/// A bridge name: an exact interface name.
pub fn check_bridge_name(bridge: &str) -> Result<()> {
    if !matches!(parse_name(bridge)?, IfName::Exact(_)) {
        return Err(Error::invalid("bridge", "bridge must be an interface name"));
    }
    Ok(())
}

/// `uniqueName` fills a template (or `tap%d`): an exact name has nothing to
/// fill.
pub fn check_unique_name(unique_name: bool, name: &IfName) -> Result<()> {
    if unique_name && matches!(name, IfName::Exact(_)) {
        return Err(Error::invalid(
            "uniqueName",
            "uniqueName needs a name template with %d (or no name)",
        ));
    }
    Ok(())
}

/// What a TUN device (IP packets, no link layer) cannot take: a MAC, a
/// bridge, a vnet header or its settings, vhost-net.
pub fn check_tun_options(opts: &OpenOptions) -> Result<()> {
    let refuse = |what: &'static str, why: &str| {
        Err(Error::invalid(
            what,
            format!("{what} does not apply to a TUN device: {why}"),
        ))
    };
    if opts.vnet_hdr == Tristate::On {
        return refuse("vnetHdr", "vmtap's TUN devices carry plain IP packets");
    }
    if opts.vnet_hdr_size.is_some() {
        return refuse("vnetHdrSize", "vmtap's TUN devices have no vnet header");
    }
    if opts.offloads.is_some_and(|b| b != 0) {
        return refuse(
            "offloads",
            "vmtap's TUN devices have no vnet header to carry them",
        );
    }
    if opts.vhost != Tristate::Off {
        return refuse("vhost", "vhost-net serves a VM's TAP queues");
    }
    if opts.mac.is_some() {
        return refuse("mac", "it has no link-layer address");
    }
    if opts.bridge.is_some() {
        return refuse("bridge", "a Linux bridge takes Ethernet ports only");
    }
    Ok(())
}

/// A frame (TAP) or packet (TUN) of `len` bytes for a device of `mode`
/// whose MTU is `mtu`: at least a link (TAP) or IPv4 (TUN) header, at most
/// the MTU plus the Ethernet header and a VLAN tag (TAP) or the MTU (TUN);
/// a GSO frame (`gso`: its virtio-net header asks for segmentation) up to
/// [`MAX_FRAME_BYTES`]. The vnet header itself is not counted.
pub fn check_frame(mode: Mode, len: usize, mtu: u32, gso: bool) -> Result<()> {
    let (min, what) = match mode {
        Mode::Tap => (MIN_TAP_FRAME_BYTES, "its 14-byte Ethernet header"),
        Mode::Tun => (MIN_TUN_PACKET_BYTES, "a 20-byte IPv4 header"),
    };
    if len < min {
        return Err(Error::range(
            "frame",
            format!("the frame is {len} bytes, shorter than {what}"),
        ));
    }
    let overhead = match mode {
        Mode::Tap => TAP_FRAME_OVERHEAD,
        Mode::Tun => 0,
    };
    let max = if gso {
        MAX_FRAME_BYTES
    } else {
        (mtu as usize + overhead).min(MAX_FRAME_BYTES)
    };
    if len > max {
        let why = match (gso, mode) {
            (true, _) => "the most a GSO frame may be".to_owned(),
            (false, Mode::Tap) => {
                format!("the MTU {mtu} allows (Ethernet header and a VLAN tag included)")
            }
            (false, Mode::Tun) => format!("the MTU {mtu} allows"),
        };
        return Err(Error::range(
            "frame",
            format!("the frame is {len} bytes, more than the {max} bytes {why}"),
        ));
    }
    Ok(())
}

/// Queue `index` of a device with `queues` queues (any device).
pub fn check_queue(index: usize, queues: usize) -> Result<()> {
    if index >= queues {
        return Err(Error::range(
            "queue",
            format!(
                "queue must be 0 to {}, got {index}",
                queues.saturating_sub(1)
            ),
        ));
    }
    Ok(())
}

/// Every rule of an open request, before any syscall. Returns the parsed
/// name.
pub fn check_open(opts: &OpenOptions) -> Result<IfName> {
    let name = parse_name(&opts.name)?;
    if opts.mode == Mode::Tun {
        check_tun_options(opts)?;
    }
    check_queues(opts.queues)?;
    check_unique_name(opts.unique_name, &name)?;
    if let Some(size) = opts.vnet_hdr_size {
        check_vnet_hdr_size(size)?;
        if opts.vnet_hdr == Tristate::Off {
            return Err(Error::invalid(
                "vnetHdrSize",
                "vnetHdrSize needs vnetHdr (virtio-net headers carry it)",
            ));
        }
    }
    if let Some(bits) = opts.offloads {
        check_offloads(bits)?;
        if opts.vnet_hdr == Tristate::Off && bits != 0 {
            return Err(Error::invalid(
                "offloads",
                "offloads need vnetHdr (virtio-net headers carry them)",
            ));
        }
    }
    if let Some(mtu) = opts.mtu {
        check_mtu(mtu)?;
    }
    if let Some(mac) = &opts.mac {
        check_unicast(mac)?;
    }
    if let Some(br) = &opts.bridge {
        check_bridge_name(br)?;
    }
    if let Some(uid) = opts.owner {
        check_id("owner", uid)?;
    }
    if let Some(gid) = opts.group {
        check_id("group", gid)?;
    }
    if opts.ownerless && opts.owner.is_some() {
        return Err(Error::invalid(
            "owner",
            "a device cannot have an owner and be ownerless",
        ));
    }
    if let Some(tag) = &opts.tag {
        check_tag(tag)?;
    }
    if opts.bridge_port.is_some() && opts.bridge.is_none() {
        return Err(Error::invalid(
            "bridgePort",
            "bridgePort needs bridge (the flags are those of the device's port on it)",
        ));
    }
    if let Some(n) = opts.tx_queue_len {
        check_tx_queue_len(n)?;
    }
    check_addresses(&opts.addresses)?;
    check_routes(&opts.routes)?;
    if !opts.routes.is_empty() && !opts.up {
        return Err(Error::invalid(
            "routes",
            "routes need the link up (up: true): the kernel refuses a route through a link that \
             is down",
        ));
    }
    Ok(name)
}

/// A macvtap mode by the name `ip` uses: `bridge`, `vepa`, `private` or
/// `passthru` (`source` needs a list of source MACs that vmtap does not
/// manage).
pub fn parse_macvtap_mode(mode: &str) -> Result<MacvlanMode> {
    match mode {
        "bridge" => Ok(MacvlanMode::Bridge),
        "vepa" => Ok(MacvlanMode::Vepa),
        "private" => Ok(MacvlanMode::Private),
        "passthru" => Ok(MacvlanMode::Passthru),
        _ => Err(Error::invalid(
            "mode",
            format!(
                "mode must be bridge, vepa, private or passthru, got {}",
                quoted(mode)
            ),
        )),
    }
}

/// Every rule of an open_macvtap request, before any syscall. Returns the
/// parsed name (of the macvtap to create: an exact name, a `%d` template,
/// or none for the kernel's `macvtap%d`).
pub fn check_macvtap(opts: &MacvtapOptions) -> Result<IfName> {
    match parse_name(&opts.link) {
        Ok(IfName::Exact(_)) => {}
        _ => {
            return Err(Error::invalid(
                "link",
                format!(
                    "link must name the lower interface exactly (1 to {MAX_NAME_BYTES} bytes of \
                     printable ASCII without '/', ':', whitespace or '%'), got {}",
                    quoted(&opts.link)
                ),
            ))
        }
    }
    parse_macvtap_mode(opts.mode.name())?;
    let name = parse_name(&opts.name)?;
    if name == IfName::Exact(opts.link.clone()) {
        return Err(Error::invalid(
            "name",
            format!(
                "the macvtap cannot have the name of its lower link ({})",
                opts.link
            ),
        ));
    }
    check_queues(opts.queues)?;
    if let Some(mtu) = opts.mtu {
        check_mtu(mtu)?;
    }
    if let Some(mac) = &opts.mac {
        check_unicast(mac)?;
    }
    if let Some(tag) = &opts.tag {
        check_tag(tag)?;
    }
    Ok(name)
}

/// Where `ip netns` keeps its named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// The longest namespace name (NAME_MAX: it is a file name).
pub const MAX_NETNS_NAME_BYTES: usize = 255;

/// A network namespace as the caller names it: an absolute path to a
/// namespace file (`/run/netns/blue`, `/proc/1234/ns/net`), returned as is,
/// or a bare name as `ip netns` takes it (`blue` means `/run/netns/blue`):
/// 1 to 255 bytes, no `/`, not `.` or `..`. No NUL bytes in either.
pub fn netns_path(spec: &str) -> Result<String> {
    let bad = |why: String| Error::invalid("netns", why);
    if spec.contains('\0') {
        return Err(bad(
            "a network namespace path or name must not contain NUL bytes".into(),
        ));
    }
    if spec.starts_with('/') {
        return Ok(spec.to_owned());
    }
    if spec.is_empty() || spec.len() > MAX_NETNS_NAME_BYTES {
        return Err(bad(format!(
            "a network namespace name is 1 to {MAX_NETNS_NAME_BYTES} bytes (or give an absolute path), got {} bytes",
            spec.len()
        )));
    }
    if spec.contains('/') || spec == "." || spec == ".." {
        return Err(bad(format!(
            "{} is neither a namespace name (no '/', not '.' or '..') nor an absolute path",
            quoted(spec)
        )));
    }
    Ok(format!("{NETNS_RUN_DIR}/{spec}"))
}

/// An fd number from a caller: not negative.
pub fn check_fd(what: &'static str, fd: i32) -> Result<()> {
    if fd < 0 {
        return Err(Error::range(
            what,
            format!("{what} must be a file descriptor (0 or more), got {fd}"),
        ));
    }
    Ok(())
}

/// A timeout in milliseconds: 0 or more.
pub fn timeout_from_ms(ms: i32) -> Result<Duration> {
    u64::try_from(ms).map(Duration::from_millis).map_err(|_| {
        Error::range(
            "timeoutMs",
            format!("timeoutMs must be 0 or more, got {ms}"),
        )
    })
}

/// What `send_fds` sends: at least one byte (fds ride on data), at most
/// [`SCM_MAX_FD`] fds, none negative.
pub fn check_send(data_len: usize, fds: &[i32]) -> Result<()> {
    if data_len == 0 {
        return Err(Error::invalid(
            "data",
            "data must not be empty: fds travel with at least one byte",
        ));
    }
    if fds.len() > SCM_MAX_FD {
        return Err(Error::range(
            "fds",
            format!(
                "at most {SCM_MAX_FD} fds per message (SCM_MAX_FD), got {}",
                fds.len()
            ),
        ));
    }
    for &fd in fds {
        check_fd("fds", fd)?;
    }
    Ok(())
}

/// What `recv_fds` reads: 1 to [`MAX_RECV_BYTES`] bytes, 0 to
/// [`SCM_MAX_FD`] fds.
pub fn check_recv(max_bytes: usize, max_fds: usize) -> Result<()> {
    if !(1..=MAX_RECV_BYTES).contains(&max_bytes) {
        return Err(Error::range(
            "maxBytes",
            format!("maxBytes must be 1 to {MAX_RECV_BYTES}, got {max_bytes}"),
        ));
    }
    if max_fds > SCM_MAX_FD {
        return Err(Error::range(
            "maxFds",
            format!("maxFds must be 0 to {SCM_MAX_FD}, got {max_fds}"),
        ));
    }
    Ok(())
}

/// The fds [`crate::adopt_tap`] takes: 1 to [`MAX_QUEUES`] tap fds, no vhost
/// fd or one per tap fd, every number not negative and given once.
pub fn check_adopt(tap_fds: &[i32], vhost_fds: &[i32]) -> Result<()> {
    if tap_fds.is_empty() || tap_fds.len() > MAX_QUEUES as usize {
        return Err(Error::range(
            "tapFds",
            format!(
                "tapFds must hold 1 to {MAX_QUEUES} fds (one per queue), got {}",
                tap_fds.len()
            ),
        ));
    }
    if !vhost_fds.is_empty() && vhost_fds.len() != tap_fds.len() {
        return Err(Error::invalid(
            "vhostFds",
            format!(
                "vhostFds must be empty or hold one fd per tap fd ({}), got {}",
                tap_fds.len(),
                vhost_fds.len()
            ),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (what, &fd) in tap_fds
        .iter()
        .map(|f| ("tapFds", f))
        .chain(vhost_fds.iter().map(|f| ("vhostFds", f)))
    {
        check_fd(what, fd)?;
        if !seen.insert(fd) {
            return Err(Error::invalid(
                what,
                format!("fd {fd} is given twice; each queue needs an fd of its own"),
            ));
        }
    }
    Ok(())
}

/// A list of `n` fds where at most `max` are allowed, checked before any
/// element is read.
pub fn check_fd_count(what: &'static str, n: usize, max: usize) -> Result<()> {
    if n > max {
        return Err(Error::range(
            what,
            format!("at most {max} fds at once, got {n}"),
        ));
    }
    Ok(())
}

/// What `dup_fds` duplicates: at most [`MAX_DUP_FDS`] fds, none negative.
pub fn check_dup_fds(fds: &[i32]) -> Result<()> {
    check_fd_count("fds", fds.len(), MAX_DUP_FDS)?;
    for &fd in fds {
        check_fd("fds", fd)?;
    }
    Ok(())
}

/// `close_all`'s thread count: 1 to [`MAX_CLOSE_THREADS`].
pub fn check_close_threads(n: usize) -> Result<()> {
    if !(1..=MAX_CLOSE_THREADS).contains(&n) {
        return Err(Error::range(
            "maxThreads",
            format!("maxThreads must be 1 to {MAX_CLOSE_THREADS}, got {n}"),
        ));
    }
    Ok(())
}

/// A tag: 1 to [`MAX_TAG_BYTES`] bytes of ASCII letters, digits and
/// `.` `_` `-` `:` `@` `/` (no whitespace, no `=` `,` `;`: the alias keeps
/// those for fields vmtap may add).
pub fn check_tag(tag: &str) -> Result<()> {
    if tag.is_empty() || tag.len() > MAX_TAG_BYTES {
        return Err(Error::invalid(
            "tag",
            format!(
                "a tag is 1 to {MAX_TAG_BYTES} bytes, got {} ({})",
                tag.len(),
                quoted(tag)
            ),
        ));
    }
    let ok = |b: u8| b.is_ascii_alphanumeric() || b".-_:@/".contains(&b);
    if !tag.bytes().all(ok) {
        return Err(Error::invalid(
            "tag",
            format!(
                "tag {} may hold only ASCII letters, digits and . _ - : @ /",
                quoted(tag)
            ),
        ));
    }
    Ok(())
}

/// An IPv4 or IPv6 address with a prefix length: an interface address
/// (`192.0.2.1/32`, host bits kept) or a route's destination
/// (`192.0.2.0/24`, host bits zero). Parsed by [`parse_address`] and
/// [`parse_route`]; shown as `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpCidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl IpCidr {
    pub fn new(addr: IpAddr, prefix_len: u8) -> Self {
        IpCidr { addr, prefix_len }
    }

    /// 32 for IPv4, 128 for IPv6.
    pub fn max_prefix_len(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// The address with its host bits cleared.
    pub fn network(&self) -> IpAddr {
        let len = u32::from(self.prefix_len.min(self.max_prefix_len()));
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// `ADDR[/LEN]`: a dotted-quad IPv4 address (no leading zeros) or an IPv6
/// address in RFC 4291 text form (no zone, no brackets), and a decimal
/// prefix length without leading zeros. A bare address is a host: /32 or
/// /128, as `ip addr add` and `ip route add` read it. `what` names the
/// argument in errors.
pub fn parse_cidr(what: &'static str, s: &str) -> Result<IpCidr> {
    let syntax = || {
        Error::invalid(
            what,
            format!(
                "{} is not an IPv4 or IPv6 address in CIDR form (like 192.0.2.1/32 or \
                 2001:db8::1/64)",
                quoted(s)
            ),
        )
    };
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| syntax())?;
    let max = match addr {
        IpAddr::V4(_) => 32u8,
        IpAddr::V6(_) => 128,
    };
    let prefix_len = match len {
        None => max,
        Some(l) => {
            let digits = !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit());
            if !digits || (l.len() > 1 && l.starts_with('0')) {
                return Err(syntax());
            }
            let n: u16 = l.parse().map_err(|_| syntax())?;
            if n > u16::from(max) {
                return Err(Error::range(
                    what,
                    format!("the prefix length of {addr} must be 0 to {max}, got {n}"),
                ));
            }
            n as u8
        }
    };
    Ok(IpCidr { addr, prefix_len })
}

fn check_prefix_len(what: &'static str, c: &IpCidr) -> Result<()> {
    let max = c.max_prefix_len();
    if c.prefix_len > max {
        return Err(Error::range(
            what,
            format!(
                "the prefix length of {} must be 0 to {max}, got {}",
                c.addr, c.prefix_len
            ),
        ));
    }
    Ok(())
}

/// An address for an interface: any prefix length of its family, host bits
/// kept (`192.0.2.1/24` is the address 192.0.2.1 on 192.0.2.0/24); not the
/// unspecified address, a multicast one, 255.255.255.255 or ::1 (the kernel
/// refuses or misreads those).
pub fn check_address(what: &'static str, c: &IpCidr) -> Result<()> {
    check_prefix_len(what, c)?;
    let bad = match c.addr {
        IpAddr::V4(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(a) if a.is_multicast() => Some("a multicast address"),
        IpAddr::V4(a) if a.is_broadcast() => Some("the broadcast address"),
        IpAddr::V6(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(a) if a.is_multicast() => Some("a multicast address"),
        IpAddr::V6(a) if a.is_loopback() => Some("the loopback address"),
        _ => None,
    };
    match bad {
        Some(why) => Err(Error::invalid(
            what,
            format!("{} is {why}, not an address for an interface", c.addr),
        )),
        None => Ok(()),
    }
}

/// A route's destination: any prefix length of its family (`/0` is the
/// default route), with the host bits zero, as `ip route` insists
/// ("Invalid prefix for given prefix length"): `192.0.2.5/24` is refused,
/// `192.0.2.0/24` is meant.
pub fn check_route(what: &'static str, c: &IpCidr) -> Result<()> {
    check_prefix_len(what, c)?;
    let net = c.network();
    if net != c.addr {
        return Err(Error::invalid(
            what,
            format!(
                "the route destination {c} has host bits set; the network is {net}/{}",
                c.prefix_len
            ),
        ));
    }
    Ok(())
}

/// [`parse_cidr`] and [`check_address`].
pub fn parse_address(what: &'static str, s: &str) -> Result<IpCidr> {
    let c = parse_cidr(what, s)?;
    check_address(what, &c)?;
    Ok(c)
}

/// [`parse_cidr`] and [`check_route`].
pub fn parse_route(what: &'static str, s: &str) -> Result<IpCidr> {
    let c = parse_cidr(what, s)?;
    check_route(what, &c)?;
    Ok(c)
}

/// How many `what` (`addresses`, `routes`) one call may take: at most `max`.
/// Checked before the list is read.
pub fn check_list_len(what: &'static str, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::range(
            what,
            format!("at most {max} {what} per call, got {len}"),
        ));
    }
    Ok(())
}

/// An `openBatch` list: at most [`MAX_OPEN_BATCH`] opens.
pub fn check_open_batch(len: usize) -> Result<()> {
    if len > MAX_OPEN_BATCH {
        return Err(Error::range(
            "list",
            format!("list must hold at most {MAX_OPEN_BATCH} opens, got {len}"),
        ));
    }
    Ok(())
}

/// openTap's `addresses`: at most [`MAX_ADDRESSES`], each an address
/// ([`check_address`]), none twice (whatever its prefix length).
pub fn check_addresses(list: &[IpCidr]) -> Result<()> {
    check_list_len("addresses", list.len(), MAX_ADDRESSES)?;
    for (i, c) in list.iter().enumerate() {
        check_address("addresses", c)?;
        if let Some(j) = list[..i].iter().position(|o| o.addr == c.addr) {
            return Err(Error::invalid(
                "addresses",
                format!("addresses[{i}] ({c}) repeats addresses[{j}] ({})", list[j]),
            ));
        }
    }
    Ok(())
}

/// openTap's `routes`: at most [`MAX_ROUTES`], each a destination
/// ([`check_route`]), none twice.
pub fn check_routes(list: &[IpCidr]) -> Result<()> {
    check_list_len("routes", list.len(), MAX_ROUTES)?;
    for (i, c) in list.iter().enumerate() {
        check_route("routes", c)?;
        if let Some(j) = list[..i].iter().position(|o| o == c) {
            return Err(Error::invalid(
                "routes",
                format!("routes[{i}] ({c}) repeats routes[{j}]"),
            ));
        }
    }
    Ok(())
}

/// A transmit queue length: 0 to [`MAX_TX_QUEUE_LEN`].
pub fn check_tx_queue_len(n: u32) -> Result<()> {
    if n > MAX_TX_QUEUE_LEN {
        return Err(Error::range(
            "txQueueLen",
            format!("txQueueLen must be 0 to {MAX_TX_QUEUE_LEN}, got {n}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
