//! Every limit and cross-field rule of vmtap, in one place.
//!
//! Each check runs before any syscall and fails with
//! [`Error::InvalidArgument`]: `range: true` (`ERR_OUT_OF_RANGE`) for a
//! number outside its range, `range: false` (`ERR_INVALID_ARG_VALUE`) for a
//! malformed value or a combination the kernel would refuse or ignore.
//! [`crate::open_tap`], every [`crate::Tap`] setter, the link primitives and
//! fd passing call these; the Node binding checks only JS types and integer
//! width and leaves every rule to this module (and exports its limits).

use std::time::Duration;

use crate::error::{Error, Result};
use crate::open::{Mode, OpenOptions, Tristate};
use crate::sys::consts::*;
use crate::sys::IFNAMSIZ;

/// The kernel's MAX_TAP_QUEUES.
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
    match parse_name(name)? {
        IfName::Exact(n) => Ok(n),
        _ => Err(Error::invalid(
            "name",
            "delete needs an exact interface name",
        )),
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
    Ok(name)
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

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
