//! macvtap: a VM NIC on the host's physical network without a bridge, as
//! libvirt's "direct" interfaces have it. A macvtap link sits on a lower
//! Ethernet device (`ip link add link eth0 type macvtap`); its character
//! device `/dev/tap<ifindex>` is opened once per queue, and the fds go to a
//! VMM exactly like TAP fds. [`open_macvtap`] returns the same [`Tap`].
//!
//! What differs from a TAP device, and how vmtap deals with it:
//!
//! - **The link outlives its fds.** Closing every fd of a macvtap leaves the
//!   link. A [`Tap`] that holds a macvtap deletes the link (`RTM_DELLINK`)
//!   when it is closed, and when it is dropped without being closed, unless
//!   it is persistent ([`Tap::set_persist`] only flips that choice: the
//!   kernel has no persistence flag for a macvtap). Every failure of
//!   [`open_macvtap`] deletes the link it created.
//! - **Finding the character device.** Its minor number comes from a
//!   counter shared by every network namespace, rtnetlink does not report
//!   it, and sysfs shows the namespace of whoever mounted it. vmtap reads it
//!   from the kernel's `add` uevent for the device, received on a uevent
//!   socket opened in the link's namespace before the link is created (see
//!   [`crate::uevent`]).
//! - **The device node.** `/dev/tap<ifindex>` is named after the ifindex,
//!   which is per namespace, while devtmpfs is one for the whole machine:
//!   two macvtaps with the same ifindex in two namespaces compete for the
//!   same node, and the second gets none (checked here: `/dev/tap4` stays the
//!   first one's). So `/dev/tap<ifindex>` is used only when it is a character
//!   device with the new macvtap's number (and every fd opened from it is
//!   checked with fstat); otherwise (another device's node, or no node at
//!   all: a container without udev or devtmpfs) vmtap makes its own node in
//!   a new root-only directory (`mkdtemp`, mode 0700, under `dev_dir`),
//!   opens it once per queue and removes node and directory at once. The
//!   fds keep working without a node.
//! - **Flags.** Each fd gets `IFF_TAP | IFF_NO_PI`, plus `IFF_VNET_HDR` and
//!   `IFF_MULTI_QUEUE` as asked, with TUNSETIFF, as libvirt does (the
//!   driver's default is IFF_VNET_HDR on every new fd).
//! - **Ownership.** A macvtap has no TUNSETOWNER: who may open it is the
//!   device node's permissions. vmtap's own nodes are root-only and gone
//!   once opened; [`Tap::set_owner`] and [`Tap::set_group`] refuse a macvtap.
//! - **The guest's MAC.** A macvtap hands the guest only frames addressed
//!   to the macvtap's own MAC (plus broadcast and multicast): the guest NIC
//!   must use that MAC ([`MacvtapLink::mac`]).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use nix::errno::Errno;

use crate::device::Tap;
use crate::diagnose;
use crate::error::{Error, Result};
use crate::netlink::{Link, LinkChange, LinkRef, MacvlanMode, MacvtapSpec, Netlink};
use crate::netns::{self, NetNs, NetNsSpec};
use crate::open::{compute_flags, Tristate};
use crate::rules::{self, IfName};
use crate::sys::{DevT, IfReq, Ioctl, RealSys, Sys};
use crate::tun::{self, path_str, VHOST_NET_PATH};
use crate::uevent::{MacvtapDevice, Uevents};

/// Where device nodes are looked for and vmtap's own node is made.
pub const DEV_DIR: &str = "/dev";

/// The calling thread's network namespace.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// What [`open_macvtap`] creates and opens.
#[derive(Debug, Clone)]
pub struct MacvtapOptions {
    /// The lower device (an Ethernet device of the macvtap's namespace).
    pub link: String,
    pub mode: MacvlanMode,
    /// `""` (the kernel picks `macvtap%d`), a `%d` template, or an exact
    /// name (which must not exist).
    pub name: String,
    /// The macvtap's MAC, which the guest NIC must use; `None`: the
    /// kernel's random one.
    pub mac: Option<[u8; 6]>,
    /// 1 to [`rules::MAX_QUEUES`]: one fd per queue.
    pub queues: u32,
    pub vnet_hdr: Tristate,
    pub vhost: Tristate,
    pub vhost_path: CString,
    pub mtu: Option<u32>,
    /// Bring the link up (in the request that creates it).
    pub up: bool,
    /// Keep the link when the [`Tap`] is closed or dropped.
    pub persist: bool,
    /// The namespace to create the macvtap in, where `link` must be too.
    pub netns: Option<NetNsSpec>,
    /// A vmtap tag in the interface alias (see [`crate::inventory`]).
    pub tag: Option<String>,
    /// Where `tap<ifindex>` is looked for and vmtap's own node directory is
    /// made ([`DEV_DIR`]; tests point it elsewhere).
    pub dev_dir: CString,
}

impl Default for MacvtapOptions {
    fn default() -> Self {
        MacvtapOptions {
            link: String::new(),
            mode: MacvlanMode::Bridge,
            name: String::new(),
            mac: None,
            queues: 1,
            vnet_hdr: Tristate::Auto,
            vhost: Tristate::Off,
            vhost_path: CString::new(VHOST_NET_PATH).unwrap(),
            mtu: None,
            up: false,
            persist: false,
            netns: None,
            tag: None,
            dev_dir: CString::new(DEV_DIR).unwrap(),
        }
    }
}

/// The macvtap link behind a [`Tap`]: what it is, and whether closing or
/// dropping the `Tap` deletes it.
#[derive(Debug)]
pub struct MacvtapLink {
    ifindex: u32,
    mac: [u8; 6],
    dev: DevT,
    persist: AtomicBool,
    /// The link's namespace (the caller's at open time when no namespace
    /// was given): the link is deleted there whichever thread closes it.
    netns: Arc<NetNs>,
    /// Deleted, or handed to [`MacvtapLink::release`]: dropping does nothing.
    released: bool,
}

impl MacvtapLink {
    /// The link's ifindex (its device is `tap<ifindex>`).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The MAC the link had when it was created: the guest NIC's MAC.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The character device's number.
    pub fn dev(&self) -> DevT {
        self.dev
    }

    /// Whether the link stays when the [`Tap`] is closed or dropped.
    pub fn persistent(&self) -> bool {
        self.persist.load(Ordering::SeqCst)
    }

    pub(crate) fn set_persistent(&self, on: bool) {
        self.persist.store(on, Ordering::SeqCst)
    }

    /// Delete the link unless it is persistent (a link already gone is
    /// fine). After this, dropping does nothing.
    pub(crate) fn release(mut self, sys: &dyn Sys, ifname: &str) -> Result<()> {
        self.released = true;
        if self.persistent() {
            return Ok(());
        }
        delete_link(sys, Some(&self.netns), self.ifindex).map_err(|e| {
            let how = format!(
                "the macvtap {ifname} may not have been deleted; delete it with vmtap delete \
                 {ifname} (or ip link del {ifname})"
            );
            let hint = match &e {
                Error::Os(os) => os.hint.as_ref().map(|h| format!("{h}; {how}")),
                _ => None,
            };
            e.with_ifname(ifname).with_hint(hint.unwrap_or(how))
        })
    }
}

impl Drop for MacvtapLink {
    /// A [`Tap`] dropped without being closed deletes its macvtap too, as
    /// dropping the last fd of a non-persistent TAP device removes it (the
    /// kernel would leave a macvtap). Errors cannot be reported here.
    fn drop(&mut self) {
        if !self.released && !self.persistent() {
            let _ = delete_link(&RealSys, Some(&self.netns), self.ifindex);
        }
    }
}

/// `RTM_DELLINK` of `ifindex` in `ns`; a link that is already gone is fine.
fn delete_link(sys: &dyn Sys, ns: Option<&NetNs>, ifindex: u32) -> Result<()> {
    netns::run_in(sys, ns, || match Netlink::open(sys)?.delete_link(ifindex) {
        Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(()),
        other => other,
    })
}

/// Create a macvtap on `opts.link` and open it as [`Tap`]. See the module
/// docs. With `netns`, everything happens in that namespace, on a thread of
/// vmtap's own; the calling thread's namespace never changes. Nothing (fd,
/// link, device node, directory) is left on failure.
pub fn open_macvtap(sys: &dyn Sys, opts: &MacvtapOptions) -> Result<Tap> {
    let name = rules::check_macvtap(opts)?;
    let ns = NetNs::open_opt(sys, opts.netns.as_ref())?.map(Arc::new);
    // The namespace the link is deleted in later, from whatever thread:
    // the caller's, pinned now, when none is given (an ifindex means
    // another link in another namespace).
    let home = match &ns {
        Some(ns) => Arc::clone(ns),
        None => Arc::new(NetNs::open(sys, &NetNsSpec::Path(THREAD_NETNS.to_owned()))?),
    };
    let result = netns::run_in(sys, ns.as_deref(), || {
        open_here(sys, opts, &name, ns.clone(), home)
    });
    match (result, ns.as_deref()) {
        (Err(e), Some(ns)) if is_missing_lower(&e) => Err(elsewhere_hint(sys, e, &opts.link, ns)),
        (r, _) => r,
    }
}

const NO_LOWER: &str = "to put the macvtap on";

fn missing_lower(link: &str) -> Error {
    Error::os(Errno::ENODEV, "netlink(RTM_GETLINK)")
        .with_ifname(link)
        .with_hint(format!(
            "there is no interface {link} in this network namespace {NO_LOWER}"
        ))
}

fn is_missing_lower(e: &Error) -> bool {
    matches!(e, Error::Os(os) if os.errno == Errno::ENODEV
        && os.hint.as_deref().is_some_and(|h| h.ends_with(NO_LOWER)))
}

/// A lower link missing from the macvtap's namespace may be in the
/// caller's: say so (a failed look-up only loses that detail).
fn elsewhere_hint(sys: &dyn Sys, e: Error, link: &str, ns: &NetNs) -> Error {
    let shown = ns.path().unwrap_or("the given namespace").to_owned();
    let here = Netlink::open(sys)
        .and_then(|mut nl| nl.link(LinkRef::Name(link)))
        .ok()
        .flatten()
        .is_some();
    if here {
        e.with_hint(format!(
            "{link} is in this process's network namespace, not in {shown} where the macvtap is \
             to be created: a macvtap and its lower link live in one namespace (move it with ip \
             link set {link} netns ..., or leave out netns)"
        ))
    } else {
        e.with_hint(format!(
            "there is no interface {link} in network namespace {shown} {NO_LOWER}"
        ))
    }
}

/// The lower link, which must be an Ethernet device that is not a macvtap
/// or macvlan itself.
fn lower_link(nl: &mut Netlink<'_>, link: &str) -> Result<Link> {
    let Some(l) = nl.link(LinkRef::Name(link))? else {
        return Err(missing_lower(link));
    };
    let refuse = |why: String| {
        Err(Error::os(Errno::EINVAL, "netlink(RTM_NEWLINK)")
            .with_ifname(link)
            .with_hint(why))
    };
    match l.kind.as_deref() {
        Some(k @ ("macvtap" | "macvlan")) => {
            return refuse(format!(
                "{link} is itself a {k}: the kernel would put the new macvtap on {link}'s own \
                 lower device instead; give that device as link"
            ))
        }
        _ if l.flags & crate::netlink::IFF_LOOPBACK != 0 => {
            return refuse(format!(
                "{link} is a loopback device; a macvtap needs an Ethernet device"
            ))
        }
        // ARPHRD_ETHER
        _ if l.link_type != 1 => {
            return refuse(format!(
                "{link} is not an Ethernet device (a TUN device, a tunnel...); a macvtap needs one"
            ))
        }
        _ => {}
    }
    Ok(l)
}

/// Whether a uevent's device name fits the requested name.
fn name_fits(name: &IfName, ifname: &str) -> bool {
    let (pre, post) = match name {
        IfName::Exact(n) => return n == ifname,
        IfName::Template(t) => t.split_once("%d").unwrap_or((t, "")),
        IfName::Kernel => ("macvtap", ""),
    };
    ifname
        .strip_prefix(pre)
        .and_then(|r| r.strip_suffix(post))
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The macvtaps among `added` that this request could have made: the right
/// name, lower link, mode (and MAC, if one was given), as rtnetlink shows
/// them now.
fn ours(
    nl: &mut Netlink<'_>,
    added: &[MacvtapDevice],
    spec: &MacvtapSpec,
    name: &IfName,
) -> Result<Vec<Link>> {
    let mut out = Vec::new();
    for d in added.iter().filter(|d| name_fits(name, &d.ifname)) {
        let Some(l) = nl.link(LinkRef::Index(d.ifindex))? else {
            continue;
        };
        if l.kind.as_deref() == Some("macvtap")
            && l.link == Some(spec.lower)
            && l.macvlan_mode == Some(spec.mode as u32)
            && spec.mac.map_or(true, |m| l.mac == Some(m))
        {
            out.push(l);
        }
    }
    Ok(out)
}

/// Explain a refused RTM_NEWLINK of a macvtap.
fn explain_create(e: Error, spec: &MacvtapSpec, lower: &str) -> Error {
    let Error::Os(os) = &e else { return e };
    let kernel = os.hint.clone();
    let said = |h: String| match &kernel {
        Some(k) => format!("{h} (the kernel says: {k})"),
        None => h,
    };
    match os.errno {
        Errno::EOPNOTSUPP => e.with_hint(said(
            "this kernel has no macvtap driver: load it (modprobe macvtap) or use a kernel built \
             with CONFIG_MACVTAP"
                .to_owned(),
        )),
        Errno::EINVAL if spec.mode == MacvlanMode::Passthru => e.with_hint(said(format!(
            "in passthru mode {lower} can carry no other macvlan or macvtap"
        ))),
        Errno::EINVAL if kernel.is_none() => e.with_hint(format!(
            "the kernel refused a macvtap on {lower} (an MTU above {lower}'s, a mode that \
             conflicts with {lower}'s other macvtaps or macvlans, or a bad MAC)"
        )),
        Errno::EBUSY => e.with_hint(said(format!(
            "{lower} is taken by another driver (a bridge or bond port?): a macvtap cannot share it"
        ))),
        Errno::EADDRINUSE => e.with_hint(said(format!(
            "another macvtap or macvlan on {lower} already has this MAC"
        ))),
        _ => e,
    }
}

/// Create the link; on failure, delete it if the kernel may have made it
/// all the same (its answer lost). Returns the link and the macvtaps the
/// namespace announced meanwhile.
fn create(
    nl: &mut Netlink<'_>,
    uevents: &mut Uevents<'_>,
    spec: &MacvtapSpec,
    name: &IfName,
    lower: &str,
) -> Result<(Link, Vec<MacvtapDevice>)> {
    let echoed = match nl.create_macvtap_echo(spec) {
        Ok(echoed) => echoed,
        Err(e) => {
            if nl.unanswered() {
                // Made or not: only this request can have made a link that
                // fits it and announced itself since the socket opened.
                let found = uevents
                    .macvtaps_added()
                    .and_then(|added| ours(nl, &added, spec, name));
                if let Ok([l]) = found.as_deref() {
                    let _ = nl.delete_link(l.ifindex);
                }
            }
            return Err(explain_create(e, spec, lower));
        }
    };
    // Linux 6.1+ sends the new link back; before, it is found as above.
    let link = match echoed {
        Some(l) => l,
        None => {
            let added = uevents.macvtaps_added()?;
            let mut found = ours(nl, &added, spec, name)?;
            if found.len() != 1 {
                return Err(
                    Error::os(Errno::EAGAIN, "netlink(RTM_NEWLINK)").with_hint(format!(
                        "the macvtap was created, but this kernel does not send new links back \
                     (NLM_F_ECHO, Linux 6.1) and {} macvtaps on {lower} fit the request; give \
                     the macvtap an exact name",
                        found.len()
                    )),
                );
            }
            return Ok((found.remove(0), added));
        }
    };
    Ok((link, Vec::new()))
}

/// Deletes the link this call created unless defused: every failure after
/// the link exists goes through here.
struct Created<'a> {
    sys: &'a dyn Sys,
    ifindex: u32,
    armed: bool,
}

impl Drop for Created<'_> {
    fn drop(&mut self) {
        if self.armed {
            // Already in the link's namespace.
            if let Ok(mut nl) = Netlink::open(self.sys) {
                let _ = nl.delete_link(self.ifindex);
            }
        }
    }
}

/// [`open_macvtap`] in the current thread's namespace (the macvtap's).
fn open_here(
    sys: &dyn Sys,
    opts: &MacvtapOptions,
    name: &IfName,
    ns: Option<Arc<NetNs>>,
    home: Arc<NetNs>,
) -> Result<Tap> {
    let queues = opts.queues as usize;
    // vhost first: a missing /dev/vhost-net fails before any link exists.
    let vhost_fds = tun::open_vhost_fds(sys, &opts.vhost_path, queues, opts.vhost)?;

    let mut nl = Netlink::open(sys)?;
    let lower = lower_link(&mut nl, &opts.link)?;
    // Listening before the request: the device's uevent comes during it.
    let mut uevents = Uevents::open(sys)?;
    let spec = MacvtapSpec {
        name: match name {
            IfName::Kernel => None,
            n => Some(n.as_request().to_owned()),
        },
        lower: lower.ifindex,
        mode: opts.mode,
        mac: opts.mac,
        mtu: opts.mtu,
        up: opts.up,
        ..MacvtapSpec::default()
    };
    let (link, mut added) = create(&mut nl, &mut uevents, &spec, name, &opts.link)?;
    let mut created = Created {
        sys,
        ifindex: link.ifindex,
        armed: true,
    };
    let ifname = link.ifname.clone();

    added.extend(uevents.macvtaps_added()?);
    drop(uevents);
    let dev = added
        .iter()
        .rev()
        .find(|d| d.ifindex == link.ifindex)
        .map(|d| d.dev)
        .ok_or_else(|| {
            Error::os(Errno::ENODEV, "recv(uevent)")
                .with_ifname(ifname.as_str())
                .with_hint(format!(
                    "the kernel announced no character device for the new macvtap {ifname} \
                     (tap{}); its number cannot be known",
                    link.ifindex
                ))
        })?;
    let mac = link.mac.ok_or_else(|| {
        Error::os(Errno::EBADMSG, "netlink(RTM_NEWLINK)")
            .with_ifname(ifname.as_str())
            .with_hint("the kernel reported the new macvtap without its MAC")
    })?;

    let tap_fds = open_queues(sys, &opts.dev_dir, link.ifindex, dev, queues, &ifname)?;
    let features = tun::get_features(sys, tap_fds[0].as_fd()).map_err(|e| {
        diagnose::ioctl_error(e, "ioctl(TUNGETFEATURES)", Some(&ifname))
            .with_hint("the macvtap's device did not report its features")
    })?;
    let flags = compute_flags(features, opts.queues, opts.vnet_hdr, crate::Mode::Tap)
        .map_err(|e| e.with_ifname(ifname.as_str()))?;
    for fd in &tap_fds {
        // The driver reads only the flags (no name): libvirt's way of
        // choosing vnet_hdr and multi-queue per fd.
        let mut req = IfReq::with_name_flags("", flags);
        diagnose::ioctl(sys, fd.as_fd(), &mut Ioctl::TunSetIff(&mut req), &ifname)?;
    }
    let (_, actual) = tun::get_iff(sys, tap_fds[0].as_fd())
        .map_err(|e| diagnose::ioctl_error(e, "ioctl(TUNGETIFF)", Some(&ifname)))?;
    if let Some(tag) = &opts.tag {
        let change = LinkChange {
            alias: Some(crate::inventory::encode_tag(tag)?),
            ..LinkChange::default()
        };
        nl.set_link(link.ifindex, &change)
            .map_err(|e| e.with_ifname(ifname.as_str()))?;
    }

    created.armed = false;
    let ifindex = OnceLock::new();
    let _ = ifindex.set(link.ifindex);
    Ok(Tap {
        ifname,
        tap_fds,
        vhost_fds,
        flags: actual,
        features,
        netns: ns,
        ownerless: false,
        ifindex,
        macvtap: Some(MacvtapLink {
            ifindex: link.ifindex,
            mac,
            dev,
            persist: AtomicBool::new(opts.persist),
            netns: home,
            released: false,
        }),
    })
}

fn path_of(dir: &CStr, file: &str) -> CString {
    let mut p = dir.to_bytes().to_vec();
    if p.last() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(file.as_bytes());
    CString::new(p).expect("no NUL in a path built from C strings")
}

/// Open the macvtap's device `dev` once per queue: `/dev/tap<ifindex>` when
/// it is that device, else a node of vmtap's own (see the module docs).
fn open_queues(
    sys: &dyn Sys,
    dev_dir: &CStr,
    ifindex: u32,
    dev: DevT,
    queues: usize,
    ifname: &str,
) -> Result<Vec<OwnedFd>> {
    let file = format!("tap{ifindex}");
    let shared = path_of(dev_dir, &file);
    match sys.stat(&shared) {
        Ok(st) if st.is_char_device(dev) => return open_node(sys, &shared, dev, queues, ifname),
        // Another device's node (a macvtap with this ifindex in another
        // namespace), or none (no devtmpfs or udev here).
        Ok(_) | Err(Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::os(e, "stat")
                .with_path(path_str(&shared))
                .with_hint(format!(
                    "could not look at {}, the usual node of {ifname}'s device",
                    path_str(&shared)
                )))
        }
    }
    let mut node = PrivateNode::make(sys, dev_dir, &file, dev)?;
    let path = node.node.clone().expect("made");
    let fds = open_node(sys, &path, dev, queues, ifname)?;
    node.remove()?;
    Ok(fds)
}

/// Open `path` (the macvtap's device `dev`) `queues` times, checking each fd.
fn open_node(
    sys: &dyn Sys,
    path: &CStr,
    dev: DevT,
    queues: usize,
    ifname: &str,
) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(queues);
    for q in 0..queues {
        let fd = sys
            .open(path, libc::O_RDWR)
            .map_err(|e| open_error(e, path, ifname, q))?;
        let st = sys
            .fstat(fd.as_fd())
            .map_err(|e| Error::os(e, "fstat").with_path(path_str(path)))?;
        if !st.is_char_device(dev) {
            return Err(Error::os(Errno::ENXIO, "open")
                .with_path(path_str(path))
                .with_hint(format!(
                    "{} changed while it was being opened: it is no longer {ifname}'s device {dev}",
                    path_str(path)
                )));
        }
        fds.push(fd);
    }
    Ok(fds)
}

fn open_error(errno: Errno, path: &CStr, ifname: &str, queue: usize) -> Error {
    let err = Error::os(errno, "open")
        .with_path(path_str(path))
        .with_ifname(ifname);
    let hint = match errno {
        Errno::EBUSY if queue >= rules::MAX_QUEUES as usize => format!(
            "a macvtap takes at most {} queues (MAX_TAP_QUEUES)",
            rules::MAX_QUEUES
        ),
        Errno::EBUSY => format!(
            "{ifname} already has the kernel's maximum of {} queues (other processes opened it too)",
            rules::MAX_QUEUES
        ),
        Errno::EACCES | Errno::EPERM => "this process may not open the macvtap's device node \
             (a device cgroup of a container may forbid it: allow character devices of the \
             macvtap major, see /proc/devices)"
            .to_owned(),
        Errno::ENXIO | Errno::ENODEV => format!("{ifname} was deleted while it was being opened"),
        Errno::EMFILE | Errno::ENFILE => {
            "out of file descriptors: every queue needs one fd (raise the fd limit)".to_owned()
        }
        _ => return err,
    };
    err.with_hint(hint)
}

/// vmtap's own device node: a new root-only directory under `dev_dir` with
/// the node in it. [`PrivateNode::remove`] removes both; dropping it tries
/// again for whatever is left.
struct PrivateNode<'a> {
    sys: &'a dyn Sys,
    dir: Option<CString>,
    node: Option<CString>,
}

impl<'a> PrivateNode<'a> {
    fn make(sys: &'a dyn Sys, dev_dir: &CStr, file: &str, dev: DevT) -> Result<Self> {
        let template = path_of(dev_dir, ".vmtap-XXXXXX");
        let dir = sys.mkdtemp(&template).map_err(|e| {
            Error::os(e, "mkdtemp")
                .with_path(path_str(&template))
                .with_hint(format!(
                    "the macvtap's device node {}/{file} is missing (or belongs to another \
                     device) and vmtap could not make a private directory for its own in {}",
                    path_str(dev_dir),
                    path_str(dev_dir)
                ))
        })?;
        let mut this = PrivateNode {
            sys,
            node: None,
            dir: Some(dir),
        };
        let node = path_of(this.dir.as_ref().expect("set"), file);
        sys.mknod_char(&node, 0o600, dev).map_err(|e| {
            let err = Error::os(e, "mknod").with_path(path_str(&node));
            match e {
                Errno::EPERM => err.with_hint(format!(
                    "the macvtap's device node {}/{file} is missing, and making one needs \
                     CAP_MKNOD outside a user namespace (or let devtmpfs or udev make it)",
                    path_str(dev_dir)
                )),
                _ => err,
            }
        })?;
        this.node = Some(node);
        Ok(this)
    }

    /// Remove the node, then the directory.
    fn remove(&mut self) -> Result<()> {
        if let Some(node) = &self.node {
            self.sys
                .unlink(node)
                .map_err(|e| Error::os(e, "unlink").with_path(path_str(node)))?;
            self.node = None;
        }
        if let Some(dir) = &self.dir {
            self.sys
                .rmdir(dir)
                .map_err(|e| Error::os(e, "rmdir").with_path(path_str(dir)))?;
            self.dir = None;
        }
        Ok(())
    }
}

impl Drop for PrivateNode<'_> {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

impl Tap {
    /// The macvtap link behind this device, or `None` for a TAP device.
    pub fn macvtap(&self) -> Option<&MacvtapLink> {
        self.macvtap.as_ref()
    }

    /// The MAC the guest NIC must use: a macvtap's own (see
    /// [`MacvtapLink::mac`]); `None` for a TAP device, whose guest MAC is
    /// the caller's choice.
    pub fn guest_mac(&self) -> Option<[u8; 6]> {
        self.macvtap.as_ref().map(|m| m.mac)
    }
}

/// Refuse TUNSETOWNER/TUNSETGROUP on a macvtap (the driver has neither).
pub(crate) fn refuse_ownership(what: &'static str, tap: &Tap) -> Result<()> {
    match &tap.macvtap {
        Some(m) => Err(Error::invalid(
            what,
            format!(
                "{} is a macvtap: it has no owner or group; who may open it is decided by the \
                 permissions of its device node (tap{})",
                tap.ifname, m.ifindex
            ),
        )),
        None => Ok(()),
    }
}

/// Delete the macvtap `link` (by its ifindex, in the current thread's
/// namespace), for [`crate::delete_tap`].
pub(crate) fn delete_here(sys: &dyn Sys, link: &Link) -> Result<()> {
    Netlink::open(sys)?
        .delete_link(link.ifindex)
        .map_err(|e| e.with_ifname(link.ifname.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::NoSys;

    #[test]
    fn names_from_uevents_fit_the_request() {
        let exact = IfName::Exact("mv0".into());
        assert!(name_fits(&exact, "mv0"));
        assert!(!name_fits(&exact, "mv01"));
        let t = IfName::Template("vm%dx".into());
        assert!(name_fits(&t, "vm12x"));
        assert!(!name_fits(&t, "vmx"));
        assert!(!name_fits(&t, "vm1y"));
        assert!(name_fits(&IfName::Kernel, "macvtap3"));
        assert!(!name_fits(&IfName::Kernel, "macvtapx"));
        assert!(!name_fits(&IfName::Kernel, "mv3"));
    }

    #[test]
    fn refused_before_any_syscall() {
        let o = MacvtapOptions {
            link: "eth0".into(),
            queues: 0,
            ..MacvtapOptions::default()
        };
        assert_eq!(
            open_macvtap(&NoSys, &o).unwrap_err().code(),
            "ERR_OUT_OF_RANGE"
        );
        let o = MacvtapOptions {
            link: "".into(),
            ..MacvtapOptions::default()
        };
        assert_eq!(
            open_macvtap(&NoSys, &o).unwrap_err().code(),
            "ERR_INVALID_ARG_VALUE"
        );
    }

    #[test]
    fn a_kernel_without_macvtap_is_told_so() {
        let spec = MacvtapSpec::default();
        let e = explain_create(
            Error::os(Errno::EOPNOTSUPP, "netlink(RTM_NEWLINK)").with_hint("Unknown device type"),
            &spec,
            "eth0",
        );
        let s = e.to_string();
        assert!(s.contains("no macvtap driver"), "{s}");
        assert!(s.contains("modprobe macvtap"), "{s}");
        assert!(s.contains("the kernel says: Unknown device type"), "{s}");
        let passthru = MacvtapSpec {
            mode: MacvlanMode::Passthru,
            ..MacvtapSpec::default()
        };
        let e = explain_create(
            Error::os(Errno::EINVAL, "netlink(RTM_NEWLINK)"),
            &passthru,
            "eth0",
        );
        assert!(e.to_string().contains("passthru"), "{e}");
    }
}
