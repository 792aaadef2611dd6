//! Opening TAP devices: the Ganeti `OpenTap(name, features)` job, without its
//! leaks. One `/dev/net/tun` fd per queue, TUNGETFEATURES probed before
//! asking for IFF_VNET_HDR or IFF_MULTI_QUEUE, one `/dev/vhost-net` fd per
//! queue when asked. Every fd is close-on-exec and owned by the returned
//! [`Tap`]; on any failure everything opened so far is closed (and so a
//! device the call created is gone).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;

use crate::device::Tap;
use crate::diagnose::{self, ioctl_error};
use crate::error::{Error, Result};
use crate::hostside::{self, BridgePortFlags, HostSide, Journal, Undo};
use crate::link;
use crate::netlink::{Link, LinkChange, LinkRef, Netlink};
use crate::netns::{self, NetNs, NetNsSpec};
use crate::rules::{self, IfName, IpCidr};
use crate::sys::consts::*;
use crate::sys::Sys;
use crate::tun::{self, TUN_PATH, VHOST_NET_PATH};

/// A three-way choice: never, when the host supports it, or required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tristate {
    Off,
    #[default]
    Auto,
    On,
}

/// What a device carries: Ethernet frames (TAP, `IFF_TAP`) or IP packets
/// (TUN, `IFF_TUN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Tap,
    Tun,
}

impl Mode {
    /// The TUNSETIFF type flag.
    pub fn flag(self) -> u16 {
        match self {
            Mode::Tap => IFF_TAP,
            Mode::Tun => IFF_TUN,
        }
    }

    /// The mode of a device with these TUNGETIFF flags.
    pub fn of_flags(flags: u16) -> Mode {
        if flags & IFF_TUN != 0 {
            Mode::Tun
        } else {
            Mode::Tap
        }
    }

    /// `tap` / `tun`, as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tap => "tap",
            Mode::Tun => "tun",
        }
    }

    /// The kernel's default name template for the mode.
    pub fn template(self) -> &'static str {
        match self {
            Mode::Tap => "tap%d",
            Mode::Tun => "tun%d",
        }
    }
}

/// What to open. `Default` is the kernel-named single-queue tap with
/// vnet_hdr when supported and no vhost.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// TAP (Ethernet frames, the default) or TUN (IP packets). A TUN device
    /// takes no MAC, bridge, vnet header or vhost ([`crate::rules`] refuses
    /// them); `vnet_hdr: Auto` means none for it.
    pub mode: Mode,
    /// `""` (kernel picks `tap%d`), a `%d` template, or an exact name.
    pub name: String,
    /// 1..=256. More than one makes a multi-queue device.
    pub queues: u32,
    pub vnet_hdr: Tristate,
    pub vhost: Tristate,
    /// The clone device; tests point it elsewhere.
    pub tun_path: CString,
    /// The vhost-net device; tests point it elsewhere.
    pub vhost_path: CString,
    /// Fail with EBUSY if the name exists (IFF_TUN_EXCL) instead of attaching.
    pub exclusive: bool,
    /// Fill a `%d` template from vmtap's process-wide counter (with an
    /// existence check and IFF_TUN_EXCL) instead of the kernel's lowest free
    /// number, so a name freed a moment ago is not handed out again.
    pub unique_name: bool,
    /// Make the device persistent (TUNSETPERSIST): it outlives its fds.
    pub persist: bool,
    /// TUNSETOWNER: this uid may attach without CAP_NET_ADMIN. Without
    /// `owner` or `group` (and unless `ownerless`), a device this call
    /// creates is owned by the caller's euid: the kernel lets anyone who can
    /// open /dev/net/tun attach a queue to a device with neither.
    pub owner: Option<u32>,
    /// TUNSETGROUP: this gid may attach without CAP_NET_ADMIN.
    pub group: Option<u32>,
    /// Opt out of the default owner: a device this call creates without
    /// `group` has neither owner nor group (anyone may attach; see above).
    pub ownerless: bool,
    /// The network namespace to create (or find) the device in; `None`: the
    /// caller's. The device's link configuration then acts there too.
    pub netns: Option<NetNsSpec>,
    /// TUNSETVNETHDRSZ: 10, 12 or 20.
    pub vnet_hdr_size: Option<i32>,
    /// TUNSETOFFLOAD bits, with QEMU's fallback (without USO, then without UFO).
    pub offloads: Option<u32>,
    /// Link configuration, applied in libvirt's order: MTU, MAC, bridge,
    /// bridge port flags, transmit queue length, up. Without `mtu`, a device
    /// given a `bridge` takes the bridge's MTU before it is enslaved (as
    /// QEMU's bridge helper and libvirt do), so it never lowers the bridge's.
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub bridge: Option<String>,
    /// Flags of the bridge port (needs `bridge`).
    pub bridge_port: Option<BridgePortFlags>,
    /// `IFLA_TXQLEN`.
    pub tx_queue_len: Option<u32>,
    pub up: bool,
    /// The host side, after `up` (see [`crate::hostside`]): addresses on the
    /// device, then device routes through it (they need `up`), then the
    /// interface's proxy ARP, proxy NDP and forwarding sysctls.
    pub addresses: Vec<IpCidr>,
    pub routes: Vec<IpCidr>,
    pub proxy_arp: Option<bool>,
    pub proxy_ndp: Option<bool>,
    pub forwarding: Option<bool>,
    /// A vmtap tag, stored in the interface alias as the last step (see
    /// [`crate::inventory`]); it replaces the alias of an existing device.
    pub tag: Option<String>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            mode: Mode::Tap,
            name: String::new(),
            queues: 1,
            vnet_hdr: Tristate::Auto,
            vhost: Tristate::Off,
            tun_path: CString::new(TUN_PATH).unwrap(),
            vhost_path: CString::new(VHOST_NET_PATH).unwrap(),
            exclusive: false,
            unique_name: false,
            persist: false,
            owner: None,
            group: None,
            ownerless: false,
            netns: None,
            vnet_hdr_size: None,
            offloads: None,
            mtu: None,
            mac: None,
            bridge: None,
            bridge_port: None,
            tx_queue_len: None,
            up: false,
            addresses: Vec::new(),
            routes: Vec::new(),
            proxy_arp: None,
            proxy_ndp: None,
            forwarding: None,
            tag: None,
        }
    }
}

/// The flags TUNSETIFF is asked for, given the request and the host's
/// TUNGETFEATURES. Never IFF_ONE_QUEUE: it has had no effect since Linux 3.8.
/// A TUN device gets no vnet header (`Auto` means none; the rules refuse
/// `On` before this).
pub fn compute_flags(features: u32, queues: u32, vnet_hdr: Tristate, mode: Mode) -> Result<u16> {
    let mut flags = mode.flag() | IFF_NO_PI;
    let has = |f: u16| features & u32::from(f) != 0;
    if !has(mode.flag()) {
        return Err(
            Error::os(Errno::EOPNOTSUPP, "ioctl(TUNGETFEATURES)").with_hint(format!(
                "this kernel's TUN driver does not offer {} devices",
                mode.name().to_uppercase()
            )),
        );
    }
    let vnet_hdr = match mode {
        Mode::Tun => Tristate::Off,
        Mode::Tap => vnet_hdr,
    };
    match vnet_hdr {
        Tristate::Off => {}
        Tristate::Auto => {
            if has(IFF_VNET_HDR) {
                flags |= IFF_VNET_HDR
            }
        }
        Tristate::On => {
            if !has(IFF_VNET_HDR) {
                return Err(Error::os(Errno::EOPNOTSUPP, "ioctl(TUNGETFEATURES)").with_hint(
                    "this kernel's TUN driver does not offer IFF_VNET_HDR; use vnetHdr: 'auto' or false",
                ));
            }
            flags |= IFF_VNET_HDR
        }
    }
    if queues > 1 {
        if !has(IFF_MULTI_QUEUE) {
            return Err(
                Error::os(Errno::EOPNOTSUPP, "ioctl(TUNGETFEATURES)").with_hint(format!(
                "this kernel's TUN driver does not offer IFF_MULTI_QUEUE (Linux 3.8 or later); \
                 {queues} queues cannot be opened, use queues: 1"
            )),
            );
        }
        flags |= IFF_MULTI_QUEUE;
    }
    Ok(flags)
}

/// Check an exact name before TUNSETIFF, in this thread's namespace: an
/// existing device must be a TUN or TAP device as asked, whose multi_queue
/// flag matches the request (libvirt's hint). Returns whether a device of
/// that name exists.
fn precheck_existing(sys: &dyn Sys, name: &str, flags: u16) -> Result<bool> {
    let Some(info) = diagnose::inspect(sys, name)? else {
        return Ok(false);
    };
    let mismatch = match info.tun {
        None => true,
        Some(t) => {
            t.tap == (flags & IFF_TUN != 0) || t.multi_queue != (flags & IFF_MULTI_QUEUE != 0)
        }
    };
    if mismatch {
        return Err(diagnose::set_iff(sys, Errno::EINVAL, name, flags));
    }
    Ok(true)
}

static NAME_COUNTERS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// How many candidates one `unique_name` open tries at most.
const UNIQUE_NAME_TRIES: u64 = 4096;

/// How many names `template` (`vnet%d`) can make within the kernel's name
/// length: 10^digits for the digits left, at most a billion.
fn name_space(template: &str) -> u64 {
    let room = (rules::MAX_NAME_BYTES + 2)
        .saturating_sub(template.len())
        .min(9);
    10u64.pow(room as u32)
}

/// The next candidate number for `template`, from a process-wide counter
/// per template that goes round the template's whole number space before it
/// comes back to a number (libvirt's `vnet%d` scheme): a name freed a moment
/// ago is handed out again only after every other one, and none is lost for
/// good.
fn next_candidate(template: &str, space: u64) -> String {
    let n = {
        let mut counters = NAME_COUNTERS.lock().unwrap_or_else(|p| p.into_inner());
        let c = counters.entry(template.to_owned()).or_insert(0);
        let n = *c % space;
        *c = (n + 1) % space;
        n
    };
    template.replacen("%d", &n.to_string(), 1)
}

/// Attach `fd` under vmtap's next free name from `template`, created
/// exclusively. One bounded loop over candidates: a name that exists, or
/// that someone creates between the check and TUNSETIFF (EBUSY), moves on
/// to the next.
fn attach_unique(sys: &dyn Sys, fd: BorrowedFd<'_>, template: &str, flags: u16) -> Result<String> {
    let space = name_space(template);
    let tries = space.min(UNIQUE_NAME_TRIES);
    for _ in 0..tries {
        let name = next_candidate(template, space);
        if link::lookup(sys, &name)?.is_some() {
            continue;
        }
        let flags = flags | IFF_TUN_EXCL;
        match tun::set_iff_raw(sys, fd, &name, flags) {
            Err(Errno::EBUSY) => continue,
            other => return other.map_err(|e| diagnose::set_iff(sys, e, &name, flags)),
        }
    }
    let what = if tries == space {
        format!(
            "all {space} names of the template {template} ({} to {}) exist in this network \
             namespace; delete some, or use a template with room for more digits",
            template.replacen("%d", "0", 1),
            template.replacen("%d", &(space - 1).to_string(), 1)
        )
    } else {
        format!("{tries} names of the template {template} in a row exist in this network namespace")
    };
    Err(Error::os(Errno::ENFILE, "ioctl(TUNSETIFF)")
        .with_ifname(template)
        .with_hint(format!("no free name: {what}")))
}

/// Attach the first queue: TUNSETIFF with the requested name (or, with
/// `unique_name`, vmtap's own next free name, created exclusively). Returns
/// the name and whether this call created the device (a template always
/// does; an exact name does when it did not exist, or with `exclusive`).
fn attach_first(
    sys: &dyn Sys,
    fd: BorrowedFd<'_>,
    name: &IfName,
    flags: u16,
    opts: &OpenOptions,
) -> Result<(String, bool)> {
    if !opts.unique_name {
        let created = match name {
            IfName::Exact(n) if !opts.exclusive => !precheck_existing(sys, n, flags)?,
            _ => true,
        };
        return Ok((tun::set_iff(sys, fd, name.as_request(), flags)?, created));
    }
    let template = match name {
        IfName::Kernel => opts.mode.template(),
        IfName::Template(t) => t.as_str(),
        IfName::Exact(_) => unreachable!("rules::check_open refuses uniqueName with an exact name"),
    };
    Ok((attach_unique(sys, fd, template, flags)?, true))
}

/// Open a TAP device as `opts` asks. See the module docs. With `netns`, the
/// device is created (or found) and configured in that namespace, on a
/// thread of vmtap's own; the calling thread's namespace never changes.
pub fn open_tap(sys: &dyn Sys, opts: &OpenOptions) -> Result<Tap> {
    let name = rules::check_open(opts)?;
    let ns = NetNs::open_opt(sys, opts.netns.as_ref())?.map(Arc::new);
    netns::run_in(sys, ns.as_deref(), || {
        open_here(sys, opts, &name, ns.clone())
    })
}

/// [`open_tap`] in the current thread's namespace (the device's).
fn open_here(
    sys: &dyn Sys,
    opts: &OpenOptions,
    name: &IfName,
    ns: Option<Arc<NetNs>>,
) -> Result<Tap> {
    let queues = opts.queues as usize;

    // vhost first: a missing /dev/vhost-net fails before any device exists.
    let vhost_fds = tun::open_vhost_fds(sys, &opts.vhost_path, queues, opts.vhost)?;

    let first = tun::open_tun(sys, &opts.tun_path)?;
    let tun_path = || tun::path_str(&opts.tun_path);
    let features = tun::get_features(sys, first.as_fd()).map_err(|e| {
        ioctl_error(e, "ioctl(TUNGETFEATURES)", None)
            .with_path(tun_path())
            .with_hint("the TUN driver did not report its features; is this really /dev/net/tun?")
    })?;
    let mut flags = compute_flags(features, opts.queues, opts.vnet_hdr, opts.mode)
        .map_err(|e| e.with_path(tun_path()))?;
    if opts.exclusive {
        flags |= IFF_TUN_EXCL;
    }

    let mut tap_fds = Vec::with_capacity(queues);
    let (ifname, created) = attach_first(sys, first.as_fd(), name, flags, opts)?;
    tap_fds.push(first);
    // The other queues attach to the device the first one made or found.
    let later = flags & !IFF_TUN_EXCL;
    for _ in 1..queues {
        let fd = tun::open_tun(sys, &opts.tun_path)?;
        tun::set_iff(sys, fd.as_fd(), &ifname, later)?;
        tap_fds.push(fd);
    }

    let (_, actual) = tun::get_iff(sys, tap_fds[0].as_fd())
        .map_err(|e| ioctl_error(e, "ioctl(TUNGETIFF)", Some(&ifname)))?;

    let tap = Tap {
        ifname,
        tap_fds,
        vhost_fds,
        flags: actual,
        features,
        netns: ns,
        ownerless: opts.ownerless,
        ifindex: Default::default(),
        macvtap: None,
    };
    let was_persistent = actual & IFF_PERSIST != 0;
    if let Err(e) = configure(sys, &tap, opts, created) {
        // A device this call made persistent must not outlive the failure.
        if opts.persist && !was_persistent {
            let _ = tap.persist_ioctl(sys, false);
        }
        return Err(e);
    }
    Ok(tap)
}

/// Apply the open-time configuration: ownership, then persistence, then the
/// virtio plumbing, then the link in libvirt's order (MTU before enslaving,
/// then up), then the host side, then the tag. Runs in the device's
/// namespace. On a device that existed before, the link and host-side
/// changes made so far are undone when a later step fails.
fn configure(sys: &dyn Sys, tap: &Tap, opts: &OpenOptions, created: bool) -> Result<()> {
    // The kernel lets anyone who can open /dev/net/tun attach a queue to a
    // device that has neither an owner nor a group. A device this call
    // creates belongs to the caller's euid unless an owner or group is given
    // or the caller opted out; ownership comes before persistence, so a
    // persistent device is never unowned, even for a moment.
    let owner = match opts.owner {
        None if created && opts.group.is_none() && !opts.ownerless => Some(euid()),
        o => o,
    };
    if let Some(uid) = owner {
        tap.set_owner(sys, uid)?;
    }
    if let Some(gid) = opts.group {
        tap.set_group(sys, gid)?;
    }
    if opts.persist {
        if owner.is_some() || opts.group.is_some() || opts.ownerless {
            tap.persist_ioctl(sys, true)?;
        } else {
            // An existing device: make it persistent by the common rule
            // (this runs in its namespace already).
            tap.set_persist_in_ns(sys, true)?;
        }
    }
    if let Some(sz) = opts.vnet_hdr_size {
        tap.set_vnet_hdr_size(sys, sz)?;
    }
    if let Some(bits) = opts.offloads {
        tap.set_offloads(sys, bits)?;
    }
    // A device this call created vanishes with its fds on failure, and
    // everything on it with it; an existing one gets its changes undone.
    let mut journal = Journal::new(!created);
    let r = configure_link(sys, tap, opts, created, &mut journal);
    if r.is_err() {
        journal.undo(sys);
    }
    r
}

fn host_side(opts: &OpenOptions) -> HostSide<'_> {
    HostSide {
        addresses: &opts.addresses,
        routes: &opts.routes,
        proxy_arp: opts.proxy_arp,
        proxy_ndp: opts.proxy_ndp,
        forwarding: opts.forwarding,
    }
}

/// The bridge's MTU, for a device enslaved without `mtu`; `None` when there
/// is no bridge of that name (enslaving then fails and says so).
fn bridge_mtu<'s>(
    sys: &'s dyn Sys,
    nl: &mut Option<Netlink<'s>>,
    bridge: &str,
) -> Result<Option<u32>> {
    let link = hostside::socket(nl, sys)?.link(LinkRef::Name(bridge))?;
    match link {
        None => Ok(None),
        Some(l) if l.kind.as_deref() == Some("bridge") => Ok(l.mtu),
        Some(_) => Ok(None),
    }
}

/// The link and host-side steps of [`configure`], each change recorded in
/// `journal`. The link by the device's name as the kernel has it now (the
/// open just returned it), in the device's namespace.
fn configure_link(
    sys: &dyn Sys,
    tap: &Tap,
    opts: &OpenOptions,
    created: bool,
    journal: &mut Journal,
) -> Result<()> {
    let name = tap.ifname.as_str();
    let host = host_side(opts);
    let port = opts.bridge_port.filter(|p| !p.is_empty());
    let link_steps = opts.mtu.is_some()
        || opts.mac.is_some()
        || opts.bridge.is_some()
        || port.is_some()
        || opts.tx_queue_len.is_some()
        || opts.up;
    if !link_steps && host.is_empty() && opts.tag.is_none() {
        return Ok(());
    }
    let mut nl: Option<Netlink<'_>> = None;
    // What a device that existed has now: what to compare with, and what to
    // restore. A fresh device has the kernel's defaults.
    let before: Option<Link> = if created {
        None
    } else {
        hostside::socket(&mut nl, sys)?.link(LinkRef::Name(name))?
    };
    let mut ifindex = before.as_ref().map(|l| l.ifindex);
    let mut ifindex_of = |sys: &dyn Sys| -> Result<u32> {
        if let Some(i) = ifindex {
            return Ok(i);
        }
        let i = link::ifindex(sys, name)? as u32;
        ifindex = Some(i);
        Ok(i)
    };

    let mtu = match (opts.mtu, &opts.bridge) {
        (Some(m), _) => Some(m),
        (None, Some(br)) => bridge_mtu(sys, &mut nl, br)?,
        (None, None) => None,
    };
    if let Some(mtu) = mtu {
        let old = before.as_ref().and_then(|l| l.mtu);
        if old != Some(mtu) {
            link::set_mtu(sys, name, mtu).map_err(|e| match (opts.mtu, &opts.bridge) {
                (None, Some(br)) => e.with_hint(format!(
                    "{name} cannot take the MTU of bridge {br} ({mtu}): a TAP device takes at \
                     most {}; give mtu",
                    rules::TAP_MAX_MTU
                )),
                _ => e,
            })?;
            if let Some(old) = old {
                journal.push(Undo::Mtu {
                    name: name.to_owned(),
                    old,
                });
            }
        }
    }
    if let Some(mac) = &opts.mac {
        let old = before.as_ref().and_then(|l| l.mac);
        if old.as_ref() != Some(mac) {
            link::set_mac(sys, name, mac)?;
            if let Some(old) = old {
                journal.push(Undo::Mac {
                    name: name.to_owned(),
                    old,
                });
            }
        }
    }
    // Whether the device was a port of `bridge` before this call.
    let mut was_port = false;
    if let Some(br) = &opts.bridge {
        match link::attach_to_bridge(sys, br, name) {
            Ok(()) => journal.push(Undo::Detach {
                name: name.to_owned(),
                bridge: br.clone(),
            }),
            // Already a port of that very bridge: nothing to do.
            Err(e) if e.errno() == Some(Errno::EBUSY) => {
                let master = before.as_ref().and_then(|l| l.master);
                if master.is_none() || master != link::lookup(sys, br)?.map(|i| i as u32) {
                    return Err(e);
                }
                was_port = true;
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(flags) = port {
        let i = ifindex_of(sys)?;
        let want = flags.to_port();
        if let Some(old) = before
            .as_ref()
            .and_then(|l| l.bridge_port)
            .filter(|_| was_port)
        {
            journal.push(Undo::BridgePort {
                ifindex: i,
                old: crate::netlink::BridgePort {
                    isolated: want.isolated.and(old.isolated),
                    learning: want.learning.and(old.learning),
                    unicast_flood: want.unicast_flood.and(old.unicast_flood),
                    hairpin: want.hairpin.and(old.hairpin),
                    ..Default::default()
                },
            });
        }
        hostside::socket(&mut nl, sys)?
            .set_bridge_port(i, &want)
            .map_err(|e| e.with_ifname(name))?;
    }
    if let Some(len) = opts.tx_queue_len {
        let old = before.as_ref().and_then(|l| l.txqlen);
        if old != Some(len) {
            let i = ifindex_of(sys)?;
            if let Some(old) = old {
                journal.push(Undo::TxQueueLen { ifindex: i, old });
            }
            let change = LinkChange {
                txqlen: Some(len),
                ..LinkChange::default()
            };
            hostside::socket(&mut nl, sys)?
                .set_link(i, &change)
                .map_err(|e| e.with_ifname(name))?;
        }
    }
    if opts.up {
        let was_up = before.as_ref().map(Link::is_up);
        if was_up != Some(true) {
            link::set_link_up(sys, name, true)?;
            if was_up == Some(false) {
                journal.push(Undo::Down {
                    name: name.to_owned(),
                });
            }
        }
    }
    if !host.is_empty() {
        let i = ifindex_of(sys)?;
        host.apply(sys, &mut nl, name, i, !created, journal)?;
    }
    if let Some(tag) = &opts.tag {
        // Already in the device's namespace, and the name is the fresh one.
        let i = ifindex_of(sys)?;
        if let Some(l) = &before {
            journal.push(Undo::Alias {
                ifindex: i,
                old: l.alias.clone().unwrap_or_default(),
            });
        }
        tap.set_alias_here(sys, i, crate::inventory::encode_tag(tag)?)?;
    }
    if let Some(i) = ifindex {
        // Known now: Tap::ifindex need not look it up again.
        let _ = tap.ifindex.set(i);
    }
    Ok(())
}

/// The caller's effective uid.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::NoSys;
    use std::os::fd::OwnedFd;

    const ALL: u32 =
        (IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR | IFF_MULTI_QUEUE) as u32;

    fn compute_flags(features: u32, queues: u32, vnet_hdr: Tristate) -> Result<u16> {
        super::compute_flags(features, queues, vnet_hdr, Mode::Tap)
    }

    #[test]
    fn tun_flags_have_no_vnet_header() {
        let tun = |q, w| super::compute_flags(ALL, q, w, Mode::Tun).unwrap();
        assert_eq!(tun(1, Tristate::Auto), IFF_TUN | IFF_NO_PI);
        assert_eq!(
            tun(4, Tristate::Auto),
            IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE
        );
        let tap_only = (IFF_TAP | IFF_NO_PI) as u32;
        let e = super::compute_flags(tap_only, 1, Tristate::Off, Mode::Tun).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
    }

    #[test]
    fn flags_follow_features_and_request() {
        assert_eq!(
            compute_flags(ALL, 1, Tristate::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        );
        assert_eq!(
            compute_flags(ALL, 1, Tristate::Off).unwrap(),
            IFF_TAP | IFF_NO_PI
        );
        assert_eq!(
            compute_flags(ALL, 1, Tristate::On).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        );
        assert_eq!(
            compute_flags(ALL, 4, Tristate::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
        );
        let old = (IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE) as u32;
        assert_eq!(
            compute_flags(old, 1, Tristate::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI
        );
        let e = compute_flags(old, 1, Tristate::On).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
        let e = compute_flags(old, 2, Tristate::Off).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
        assert!(e.to_string().contains("IFF_MULTI_QUEUE"), "{e}");
        // Never IFF_ONE_QUEUE, never IFF_TUN.
        for q in [1, 2, 256] {
            for w in [Tristate::Off, Tristate::Auto, Tristate::On] {
                let f = compute_flags(ALL, q, w).unwrap();
                assert_eq!(f & (IFF_ONE_QUEUE | IFF_TUN), 0);
            }
        }
    }

    /// A host where every candidate name exists (`exists`) or where every
    /// exclusive create finds the name taken (EBUSY); counts ioctls.
    struct Crowded {
        exists: bool,
        ioctls: std::sync::atomic::AtomicUsize,
    }

    impl Sys for Crowded {
        fn open(&self, _: &std::ffi::CStr, _: libc::c_int) -> std::result::Result<OwnedFd, Errno> {
            Ok(std::fs::File::open("/dev/null").unwrap().into())
        }

        fn control_socket(&self) -> std::result::Result<OwnedFd, Errno> {
            Ok(std::fs::File::open("/dev/null").unwrap().into())
        }

        fn ioctl(
            &self,
            _: BorrowedFd<'_>,
            op: &mut crate::sys::Ioctl<'_>,
        ) -> std::result::Result<(), Errno> {
            use crate::sys::Ioctl;
            self.ioctls
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match op {
                Ioctl::TunGetFeatures(v) => {
                    **v = ALL;
                    Ok(())
                }
                Ioctl::GetIfIndex(_) if self.exists => Ok(()),
                Ioctl::GetIfIndex(_) => Err(Errno::ENODEV),
                Ioctl::TunSetIff(_) => Err(Errno::EBUSY),
                other => panic!("unexpected {}", other.name()),
            }
        }
    }

    #[test]
    fn unique_names_go_round_the_number_space_and_say_what_is_exhausted() {
        // The longest template leaves two digits of room: a hundred names.
        // Every one exists: the error says so.
        let template = "abcdefghijklm%d";
        assert_eq!(name_space(template), 100);
        let sys = Crowded {
            exists: true,
            ioctls: Default::default(),
        };
        let opts = OpenOptions {
            name: template.into(),
            unique_name: true,
            ..OpenOptions::default()
        };
        let e = open_tap(&sys, &opts).unwrap_err();
        assert!(
            e.to_string()
                .contains("all 100 names of the template abcdefghijklm%d (abcdefghijklm0 to abcdefghijklm99) exist"),
            "{e}"
        );
        // TUNGETFEATURES, then one existence check per name.
        assert_eq!(sys.ioctls.load(std::sync::atomic::Ordering::SeqCst), 101);
        // The counter goes round: after 9 comes 0 again.
        let seen: Vec<String> = (0..12).map(|_| next_candidate("wrp%d", 10)).collect();
        assert_eq!(seen[9], "wrp9");
        assert_eq!(seen[10], "wrp0");
        assert_eq!(name_space("ab%d"), 1_000_000_000);
        assert_eq!(name_space("abcdefghijkl%d"), 1000);
    }

    #[test]
    fn unique_names_are_one_bounded_loop() {
        let tries = UNIQUE_NAME_TRIES as usize;
        for (exists, template, per_try) in [(true, "uqa%d", 1), (false, "uqb%d", 2)] {
            let sys = Crowded {
                exists,
                ioctls: Default::default(),
            };
            let opts = OpenOptions {
                name: template.into(),
                unique_name: true,
                ..OpenOptions::default()
            };
            let e = open_tap(&sys, &opts).unwrap_err();
            assert_eq!(e.code(), "ENFILE", "{e}");
            assert!(e.to_string().contains("no free name"), "{e}");
            assert!(e.to_string().contains("4096 names of the template"), "{e}");
            // TUNGETFEATURES, then per candidate: the existence check, or the
            // check and the exclusive TUNSETIFF (the netlink look-up explaining
            // its EBUSY is not an ioctl; this Sys has no netlink).
            let n = sys.ioctls.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(n, 1 + per_try * tries, "exists={exists}");
        }
    }

    fn refused(o: OpenOptions) -> &'static str {
        match open_tap(&NoSys, &o) {
            Err(Error::InvalidArgument { range: true, .. }) => "ERR_OUT_OF_RANGE",
            Err(Error::InvalidArgument { .. }) => "ERR_INVALID_ARG_VALUE",
            other => panic!("expected an argument error, got {other:?}"),
        }
    }

    #[test]
    fn open_refuses_before_any_syscall() {
        assert_eq!(
            refused(OpenOptions {
                vnet_hdr: Tristate::Off,
                vnet_hdr_size: Some(12),
                ..OpenOptions::default()
            }),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            refused(OpenOptions {
                offloads: Some(TUN_F_CSUM | TUN_F_TSO_ECN),
                ..OpenOptions::default()
            }),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            refused(OpenOptions {
                name: "vm0".into(),
                unique_name: true,
                ..OpenOptions::default()
            }),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            refused(OpenOptions {
                queues: 257,
                ..OpenOptions::default()
            }),
            "ERR_OUT_OF_RANGE"
        );
        assert_eq!(
            refused(OpenOptions {
                mtu: Some(70000),
                ..OpenOptions::default()
            }),
            "ERR_OUT_OF_RANGE"
        );
    }
}
