//! Opening TAP devices: the Ganeti `OpenTap(name, features)` job, without its
//! leaks. One `/dev/net/tun` fd per queue, TUNGETFEATURES probed before
//! asking for IFF_VNET_HDR or IFF_MULTI_QUEUE, one `/dev/vhost-net` fd per
//! queue when asked. Every fd is close-on-exec and owned by the returned
//! [`Tap`]; on any failure everything opened so far is closed (and so a
//! device the call created is gone).

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use nix::errno::Errno;

use crate::diagnose;
use crate::error::{Error, Result};
use crate::link;
use crate::rules::{self, IfName};
use crate::sys::consts::*;
use crate::sys::{IfReq, Ioctl, Sys};

/// Where the TUN/TAP clone device lives.
pub const TUN_PATH: &str = "/dev/net/tun";
/// Where the vhost-net device lives.
pub const VHOST_NET_PATH: &str = "/dev/vhost-net";

/// A three-way choice: never, when the host supports it, or required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Want {
    Off,
    #[default]
    Auto,
    On,
}

/// What to open. `Default` is the kernel-named single-queue tap with
/// vnet_hdr when supported and no vhost.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// `""` (kernel picks `tap%d`), a `%d` template, or an exact name.
    pub name: String,
    /// 1..=256. More than one makes a multi-queue device.
    pub queues: u32,
    pub vnet_hdr: Want,
    pub vhost: Want,
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
    /// Without `owner` or `group`, a device this makes persistent is owned
    /// by the caller's euid (the kernel would let anyone attach otherwise).
    pub persist: bool,
    /// TUNSETOWNER: this uid may attach without CAP_NET_ADMIN.
    pub owner: Option<u32>,
    /// TUNSETGROUP: this gid may attach without CAP_NET_ADMIN.
    pub group: Option<u32>,
    /// TUNSETVNETHDRSZ: 10, 12 or 20.
    pub vnet_hdr_size: Option<i32>,
    /// TUNSETOFFLOAD bits, with QEMU's fallback (without USO, then without UFO).
    pub offloads: Option<u32>,
    /// Link configuration, applied in libvirt's order: MTU, MAC, bridge, up.
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub bridge: Option<String>,
    pub up: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            name: String::new(),
            queues: 1,
            vnet_hdr: Want::Auto,
            vhost: Want::Off,
            tun_path: CString::new(TUN_PATH).unwrap(),
            vhost_path: CString::new(VHOST_NET_PATH).unwrap(),
            exclusive: false,
            unique_name: false,
            persist: false,
            owner: None,
            group: None,
            vnet_hdr_size: None,
            offloads: None,
            mtu: None,
            mac: None,
            bridge: None,
            up: false,
        }
    }
}

/// An open TAP device: its name and the fds that keep it alive. Dropping it
/// closes every fd; a non-persistent device disappears with its last fd.
#[derive(Debug)]
pub struct Tap {
    ifname: String,
    tap_fds: Vec<OwnedFd>,
    vhost_fds: Vec<OwnedFd>,
    flags: u16,
    features: u32,
}

impl Tap {
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// One fd per queue, all attached to the same device.
    pub fn tap_fds(&self) -> &[OwnedFd] {
        &self.tap_fds
    }

    /// One `/dev/vhost-net` fd per queue, or none.
    pub fn vhost_fds(&self) -> &[OwnedFd] {
        &self.vhost_fds
    }

    pub fn raw_tap_fds(&self) -> Vec<RawFd> {
        self.tap_fds.iter().map(|f| f.as_raw_fd()).collect()
    }

    pub fn raw_vhost_fds(&self) -> Vec<RawFd> {
        self.vhost_fds.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// The device's flags as TUNGETIFF reported them after opening.
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// TUNGETFEATURES of this host.
    pub fn features(&self) -> u32 {
        self.features
    }

    pub fn vnet_hdr(&self) -> bool {
        self.flags & IFF_VNET_HDR != 0
    }

    pub fn multi_queue(&self) -> bool {
        self.flags & IFF_MULTI_QUEUE != 0
    }

    /// The first queue's fd, on which per-device ioctls are made.
    pub fn control_fd(&self) -> BorrowedFd<'_> {
        self.tap_fds[0].as_fd()
    }

    /// Close every fd (dropping does the same, silently). Every fd is
    /// released even when one fails; the first failure is returned — EBADF
    /// means an fd was closed behind this `Tap`'s back. Returns how many fds
    /// were closed.
    pub fn close(self) -> Result<usize> {
        let ifname = self.ifname;
        let mut first: Option<Errno> = None;
        let mut n = 0;
        for fd in self.tap_fds.into_iter().chain(self.vhost_fds) {
            let raw = fd.into_raw_fd();
            // SAFETY: we owned raw; it is closed exactly once, here. Linux
            // releases the fd even when close() reports an error (EINTR too).
            if unsafe { libc::close(raw) } != 0 {
                first.get_or_insert(Errno::last());
            }
            n += 1;
        }
        match first {
            None => Ok(n),
            Some(e) => Err(Error::os(e, "close").with_ifname(ifname).with_hint(
                "an fd of this device was not open any more (closed elsewhere?); every other fd was released",
            )),
        }
    }
}

/// The flags TUNSETIFF is asked for, given the request and the host's
/// TUNGETFEATURES. Never IFF_ONE_QUEUE: it has had no effect since Linux 3.8.
pub fn compute_flags(features: u32, queues: u32, vnet_hdr: Want) -> Result<u16> {
    let mut flags = IFF_TAP | IFF_NO_PI;
    let has = |f: u16| features & u32::from(f) != 0;
    match vnet_hdr {
        Want::Off => {}
        Want::Auto => {
            if has(IFF_VNET_HDR) {
                flags |= IFF_VNET_HDR
            }
        }
        Want::On => {
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

fn path_str(p: &CStr) -> String {
    p.to_string_lossy().into_owned()
}

/// Open the TUN/TAP clone device.
pub fn open_tun(sys: &dyn Sys, path: &CStr) -> Result<OwnedFd> {
    sys.open(path, libc::O_RDWR)
        .map_err(|e| diagnose::open_tun(Error::os(e, "open").with_path(path_str(path)), e))
}

/// Open one vhost-net fd.
pub fn open_vhost(sys: &dyn Sys, path: &CStr) -> Result<OwnedFd> {
    sys.open(path, libc::O_RDWR)
        .map_err(|e| diagnose::open_vhost(Error::os(e, "open").with_path(path_str(path)), e))
}

/// TUNGETFEATURES on `fd`.
pub fn get_features(sys: &dyn Sys, fd: BorrowedFd<'_>) -> std::result::Result<u32, Errno> {
    let mut v: libc::c_uint = 0;
    sys.ioctl(fd, &mut Ioctl::TunGetFeatures(&mut v))?;
    Ok(v)
}

/// TUNGETIFF on `fd`: the attached device's name and flags.
pub fn get_iff(sys: &dyn Sys, fd: BorrowedFd<'_>) -> std::result::Result<(String, u16), Errno> {
    let mut req = IfReq::zeroed();
    sys.ioctl(fd, &mut Ioctl::TunGetIff(&mut req))?;
    Ok((req.name(), req.flags()))
}

fn open_vhost_set(sys: &dyn Sys, opts: &OpenOptions) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(opts.queues as usize);
    for _ in 0..opts.queues {
        fds.push(open_vhost(sys, &opts.vhost_path)?);
    }
    Ok(fds)
}

/// Attach `fd` to the device named `name` with `flags` (TUNSETIFF). Returns
/// the device's name as the kernel filled it in.
fn set_iff(sys: &dyn Sys, fd: BorrowedFd<'_>, name: &str, flags: u16) -> Result<String> {
    let mut req = IfReq::with_name_flags(name, flags);
    sys.ioctl(fd, &mut Ioctl::TunSetIff(&mut req))
        .map_err(|e| diagnose::set_iff(sys, e, name, flags))?;
    Ok(req.name())
}

/// Check an exact name before TUNSETIFF: an existing device must be a TAP
/// device whose multi_queue flag matches the request (libvirt's hint).
fn precheck_existing(sys: &dyn Sys, name: &str, flags: u16) -> Result<()> {
    let Some(info) = diagnose::inspect(sys, name) else {
        return Ok(());
    };
    if !info.sysfs_matches {
        return Ok(()); // sysfs shows another namespace; let the kernel decide
    }
    let mismatch = match info.tun_flags {
        None => true,
        Some(f) => f & IFF_TUN != 0 || (f & IFF_MULTI_QUEUE != 0) != (flags & IFF_MULTI_QUEUE != 0),
    };
    if mismatch {
        return Err(diagnose::set_iff(sys, Errno::EINVAL, name, flags));
    }
    Ok(())
}

static NAME_COUNTERS: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

/// The next name from `template` (`vnet%d`) that does not exist now, from a
/// process-wide counter that never goes back (libvirt's `vnet%d` scheme).
fn next_unique_name(sys: &dyn Sys, template: &str) -> Result<String> {
    for _ in 0..UNIQUE_NAME_TRIES {
        let n = {
            let mut counters = NAME_COUNTERS.lock().unwrap_or_else(|p| p.into_inner());
            let c = counters.entry(template.to_owned()).or_insert(0);
            let n = *c;
            *c = c.wrapping_add(1);
            n
        };
        let name = template.replacen("%d", &n.to_string(), 1);
        if name.len() > rules::MAX_NAME_BYTES {
            break;
        }
        if link::lookup(sys, &name)?.is_none() {
            return Ok(name);
        }
    }
    Err(Error::os(Errno::ENFILE, "ioctl(SIOCGIFINDEX)")
        .with_ifname(template)
        .with_hint(format!(
            "no free name left for the template {template} within 15 bytes"
        )))
}

const UNIQUE_NAME_TRIES: usize = 4096;

/// Attach the first queue: TUNSETIFF with the requested name (or, with
/// `unique_name`, vmtap's own next free name, created exclusively).
fn attach_first(
    sys: &dyn Sys,
    fd: BorrowedFd<'_>,
    name: &IfName,
    flags: u16,
    opts: &OpenOptions,
) -> Result<String> {
    if !opts.unique_name {
        if let IfName::Exact(n) = name {
            if !opts.exclusive {
                precheck_existing(sys, n, flags)?;
            }
        }
        return set_iff(sys, fd, name.as_request(), flags);
    }
    let template = match name {
        IfName::Kernel => "tap%d",
        IfName::Template(t) => t.as_str(),
        IfName::Exact(_) => unreachable!("rules::check_open refuses uniqueName with an exact name"),
    };
    for _ in 0..UNIQUE_NAME_TRIES {
        let candidate = next_unique_name(sys, template)?;
        match set_iff(sys, fd, &candidate, flags | IFF_TUN_EXCL) {
            // Someone created it between the check and TUNSETIFF: next one.
            Err(e) if e.errno() == Some(Errno::EBUSY) => continue,
            other => return other,
        }
    }
    Err(Error::os(Errno::EBUSY, "ioctl(TUNSETIFF)").with_ifname(template))
}

/// Open a TAP device as `opts` asks. See the module docs.
pub fn open_tap(sys: &dyn Sys, opts: &OpenOptions) -> Result<Tap> {
    let name = rules::check_open(opts)?;
    let queues = opts.queues as usize;

    // vhost first: a missing /dev/vhost-net fails before any device exists.
    let vhost_fds = match opts.vhost {
        Want::Off => Vec::new(),
        Want::On => open_vhost_set(sys, opts)?,
        // All or nothing: a partial set is closed when the Err is dropped.
        Want::Auto => open_vhost_set(sys, opts).unwrap_or_default(),
    };

    let first = open_tun(sys, &opts.tun_path)?;
    let features = get_features(sys, first.as_fd()).map_err(|e| {
        Error::os(e, "ioctl(TUNGETFEATURES)")
            .with_path(path_str(&opts.tun_path))
            .with_hint("the TUN driver did not report its features; is this really /dev/net/tun?")
    })?;
    let mut flags = compute_flags(features, opts.queues, opts.vnet_hdr)?;
    if opts.exclusive {
        flags |= IFF_TUN_EXCL;
    }

    let mut tap_fds = Vec::with_capacity(queues);
    let ifname = attach_first(sys, first.as_fd(), &name, flags, opts)?;
    tap_fds.push(first);
    // The other queues attach to the device the first one made or found.
    let later = flags & !IFF_TUN_EXCL;
    for _ in 1..queues {
        let fd = open_tun(sys, &opts.tun_path)?;
        set_iff(sys, fd.as_fd(), &ifname, later)?;
        tap_fds.push(fd);
    }

    let (_, actual) = get_iff(sys, tap_fds[0].as_fd())
        .map_err(|e| Error::os(e, "ioctl(TUNGETIFF)").with_ifname(ifname.clone()))?;

    let tap = Tap {
        ifname,
        tap_fds,
        vhost_fds,
        flags: actual,
        features,
    };
    let was_persistent = actual & IFF_PERSIST != 0;
    if let Err(e) = configure(sys, &tap, opts, was_persistent) {
        // A device this call made persistent must not outlive the failure.
        if opts.persist && !was_persistent {
            let _ = tap.set_persist(sys, false);
        }
        return Err(e);
    }
    Ok(tap)
}

/// Apply the open-time configuration: persistence and ownership, then the
/// virtio plumbing, then the link in libvirt's order (MTU before enslaving,
/// then up).
fn configure(sys: &dyn Sys, tap: &Tap, opts: &OpenOptions, was_persistent: bool) -> Result<()> {
    if opts.persist {
        tap.set_persist(sys, true)?;
    }
    // The kernel lets anyone who can open /dev/net/tun attach to a persistent
    // device that has neither an owner nor a group. A device this call makes
    // persistent without either belongs to the caller's euid instead.
    let owner = match opts.owner {
        None if opts.persist && !was_persistent && opts.group.is_none() => {
            // SAFETY: geteuid cannot fail.
            Some(unsafe { libc::geteuid() })
        }
        o => o,
    };
    if let Some(uid) = owner {
        tap.set_owner(sys, uid)?;
    }
    if let Some(gid) = opts.group {
        tap.set_group(sys, gid)?;
    }
    if let Some(sz) = opts.vnet_hdr_size {
        tap.set_vnet_hdr_size(sys, sz)?;
    }
    if let Some(bits) = opts.offloads {
        tap.set_offloads(sys, bits)?;
    }
    if let Some(mtu) = opts.mtu {
        link::set_mtu(sys, &tap.ifname, mtu)?;
    }
    if let Some(mac) = &opts.mac {
        link::set_mac(sys, &tap.ifname, mac)?;
    }
    if let Some(br) = &opts.bridge {
        link::bridge_add(sys, br, &tap.ifname)?;
    }
    if opts.up {
        link::set_up(sys, &tap.ifname, true)?;
    }
    Ok(())
}

impl Tap {
    fn tun_ioctl(&self, sys: &dyn Sys, fd: BorrowedFd<'_>, mut op: Ioctl<'_>) -> Result<()> {
        let label = op.name();
        sys.ioctl(fd, &mut op).map_err(|e| {
            let err = Error::os(e, label).with_ifname(self.ifname.clone());
            match e {
                Errno::EPERM => err.with_hint("this needs CAP_NET_ADMIN"),
                Errno::EBADFD => {
                    err.with_hint("the fd is not attached to the device (a detached queue?)")
                }
                _ => err,
            }
        })
    }

    /// TUNSETPERSIST: a persistent device outlives its fds (delete it with
    /// `set_persist(false)` and closing, or [`delete_tap`]).
    pub fn set_persist(&self, sys: &dyn Sys, on: bool) -> Result<()> {
        self.tun_ioctl(sys, self.control_fd(), Ioctl::TunSetPersist(on))
    }

    /// TUNSETOWNER: `uid` may attach to the device without CAP_NET_ADMIN.
    pub fn set_owner(&self, sys: &dyn Sys, uid: u32) -> Result<()> {
        rules::check_id("uid", uid)?;
        self.tun_ioctl(sys, self.control_fd(), Ioctl::TunSetOwner(uid))
    }

    /// TUNSETGROUP: members of `gid` may attach without CAP_NET_ADMIN.
    pub fn set_group(&self, sys: &dyn Sys, gid: u32) -> Result<()> {
        rules::check_id("gid", gid)?;
        self.tun_ioctl(sys, self.control_fd(), Ioctl::TunSetGroup(gid))
    }

    /// TUNGETVNETHDRSZ.
    pub fn vnet_hdr_size(&self, sys: &dyn Sys) -> Result<i32> {
        let mut v = 0;
        self.tun_ioctl(sys, self.control_fd(), Ioctl::TunGetVnetHdrSz(&mut v))?;
        Ok(v)
    }

    /// TUNSETVNETHDRSZ: 10, 12 or 20. The size is per device and persists
    /// across users of a persistent device (QEMU resets it for that reason).
    pub fn set_vnet_hdr_size(&self, sys: &dyn Sys, size: i32) -> Result<()> {
        rules::check_vnet_hdr_size(size)?;
        rules::check_device_vnet_hdr("vnetHdrSize", self.vnet_hdr(), &self.ifname)?;
        self.tun_ioctl(sys, self.control_fd(), Ioctl::TunSetVnetHdrSz(size))
    }

    /// TUNSETOFFLOAD with QEMU's probe-and-fallback: if the kernel refuses
    /// the set, retry without USO, then without UFO. Returns the bits that
    /// were applied. `0` turns every offload off.
    pub fn set_offloads(&self, sys: &dyn Sys, wanted: u32) -> Result<u32> {
        rules::check_offloads(wanted)?;
        if wanted != 0 {
            rules::check_device_vnet_hdr("offloads", self.vnet_hdr(), &self.ifname)?;
        }
        let mut bits = wanted;
        loop {
            match sys.ioctl(self.control_fd(), &mut Ioctl::TunSetOffload(bits)) {
                Ok(()) => return Ok(bits),
                Err(Errno::EINVAL) if bits & (TUN_F_USO4 | TUN_F_USO6) != 0 => {
                    bits &= !(TUN_F_USO4 | TUN_F_USO6)
                }
                Err(Errno::EINVAL) if bits & TUN_F_UFO != 0 => bits &= !TUN_F_UFO,
                Err(e) => {
                    return Err(Error::os(e, "ioctl(TUNSETOFFLOAD)")
                        .with_ifname(self.ifname.clone())
                        .with_hint(format!("the kernel refused offloads {bits:#x}")))
                }
            }
        }
    }

    /// Enable or disable queue `index` (TUNSETQUEUE with IFF_ATTACH_QUEUE /
    /// IFF_DETACH_QUEUE), as QEMU does when the guest changes its number of
    /// queue pairs. Multi-queue devices only.
    pub fn set_queue_enabled(&self, sys: &dyn Sys, index: usize, enabled: bool) -> Result<()> {
        rules::check_queue_index(index, self.tap_fds.len(), self.multi_queue())?;
        let fd = &self.tap_fds[index];
        let flags = if enabled {
            IFF_ATTACH_QUEUE
        } else {
            IFF_DETACH_QUEUE
        };
        let mut req = IfReq::with_name_flags("", flags);
        sys.ioctl(fd.as_fd(), &mut Ioctl::TunSetQueue(&mut req))
            .map_err(|e| {
                let err = Error::os(e, "ioctl(TUNSETQUEUE)").with_ifname(self.ifname.clone());
                match e {
                    Errno::EINVAL => err.with_hint(format!(
                        "queue {index} is already {}",
                        if enabled { "enabled" } else { "disabled" }
                    )),
                    Errno::E2BIG => err.with_hint("the device already has 256 queues enabled"),
                    _ => err,
                }
            })
    }
}

/// Which TUNSETOFFLOAD bits this kernel accepts: a throwaway TAP device
/// (kernel-named, vnet_hdr) is opened and each offload tried with csum.
/// Needs CAP_NET_ADMIN.
pub fn probe_offloads(sys: &dyn Sys, tun_path: &CStr) -> Result<u32> {
    let opts = OpenOptions {
        tun_path: tun_path.to_owned(),
        vnet_hdr: Want::On,
        ..OpenOptions::default()
    };
    let tap = open_tap(sys, &opts)?;
    let mut accepted = 0;
    for bits in [
        TUN_F_CSUM,
        TUN_F_CSUM | TUN_F_TSO4,
        TUN_F_CSUM | TUN_F_TSO6,
        TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN,
        TUN_F_CSUM | TUN_F_UFO,
        TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6,
    ] {
        match sys.ioctl(tap.control_fd(), &mut Ioctl::TunSetOffload(bits)) {
            Ok(()) => accepted |= bits,
            Err(Errno::EINVAL) => {}
            Err(e) => {
                return Err(Error::os(e, "ioctl(TUNSETOFFLOAD)").with_ifname(tap.ifname.clone()))
            }
        }
    }
    Ok(accepted)
}

/// Delete a persistent TAP device: attach to it, TUNSETPERSIST 0, close.
/// A device still held by another process goes away when that one closes
/// it (a held single-queue device cannot be attached: EBUSY).
pub fn delete_tap(sys: &dyn Sys, name: &str, tun_path: &CStr) -> Result<()> {
    let name = rules::check_delete_name(name)?;
    // Fails with ENODEV ("there is no interface ...") rather than creating one.
    link::ifindex(sys, &name)?;
    let fd = open_tun(sys, tun_path)?;
    // Never create: attach exclusively is impossible, so check the type first
    // and try both multi-queue settings.
    let mq_first = diagnose::inspect(sys, &name)
        .and_then(|i| i.tun_flags)
        .is_some_and(|f| f & IFF_MULTI_QUEUE != 0);
    let base = IFF_TAP | IFF_NO_PI;
    let order = if mq_first {
        [base | IFF_MULTI_QUEUE, base]
    } else {
        [base, base | IFF_MULTI_QUEUE]
    };
    let mut last = None;
    for flags in order {
        match set_iff(sys, fd.as_fd(), &name, flags) {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) if e.errno() == Some(Errno::EINVAL) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    sys.ioctl(fd.as_fd(), &mut Ioctl::TunSetPersist(false))
        .map_err(|e| Error::os(e, "ioctl(TUNSETPERSIST)").with_ifname(name.clone()))?;
    drop(fd);
    Ok(())
}

/// What this host's TUN driver and vhost-net support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// TUNGETFEATURES, or `None` when /dev/net/tun could not be opened or
    /// did not answer.
    pub raw: Option<u32>,
    /// Whether `/dev/vhost-net` can be opened read-write by this process.
    pub vhost_net: bool,
}

impl Features {
    pub fn has(&self, flag: u16) -> bool {
        self.raw.is_some_and(|r| r & u32::from(flag) != 0)
    }
}

/// Ask the kernel what it supports: open the clone device, TUNGETFEATURES,
/// close; open and close `/dev/vhost-net`. Never fails.
pub fn probe_features(sys: &dyn Sys, tun_path: &CStr, vhost_path: &CStr) -> Features {
    let raw = open_tun(sys, tun_path)
        .ok()
        .and_then(|fd| get_features(sys, fd.as_fd()).ok());
    let vhost_net = open_vhost(sys, vhost_path).is_ok();
    Features { raw, vhost_net }
}

/// TUNGETFEATURES for an arbitrary fd, `None` when the ioctl fails (e.g. a
/// regular file), like Ganeti's `_GetTunFeatures`.
pub fn tun_features(sys: &dyn Sys, fd: BorrowedFd<'_>) -> Option<u32> {
    get_features(sys, fd).ok()
}

/// Close many devices in parallel (the kernel's teardown of a device,
/// ~16 ms of RCU grace periods, overlaps well across threads). Uses up to
/// `max_threads` threads; returns, per input, the result of [`Tap::close`],
/// in input order.
pub fn close_all(taps: Vec<Tap>, max_threads: usize) -> Vec<Result<usize>> {
    let n = taps.len();
    if n <= 1 || max_threads <= 1 {
        return taps.into_iter().map(Tap::close).collect();
    }
    let work: Mutex<Vec<(usize, Tap)>> = Mutex::new(taps.into_iter().enumerate().rev().collect());
    let results: Mutex<Vec<Option<Result<usize>>>> = Mutex::new((0..n).map(|_| None).collect());
    let worker = || loop {
        let next = work.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some((i, tap)) = next else { break };
        let r = tap.close();
        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
    };
    std::thread::scope(|s| {
        // The calling thread works too, so a failed spawn (thread limits)
        // only costs parallelism, never completion.
        for _ in 1..max_threads.min(n) {
            let spawned = std::thread::Builder::new()
                .name("vmtap-close".into())
                .stack_size(64 * 1024)
                .spawn_scoped(s, worker);
            if spawned.is_err() {
                break;
            }
        }
        worker();
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or(Ok(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::NoSys;

    /// A Tap over /dev/null fds: only for checks that must not reach the kernel.
    fn fake_tap(queues: usize, flags: u16) -> Tap {
        let fd = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        Tap {
            ifname: "fake0".into(),
            tap_fds: (0..queues).map(|_| fd()).collect(),
            vhost_fds: Vec::new(),
            flags,
            features: 0,
        }
    }

    fn refused(r: Result<impl std::fmt::Debug>) -> &'static str {
        match r {
            Err(Error::InvalidArgument { range: true, .. }) => "ERR_OUT_OF_RANGE",
            Err(Error::InvalidArgument { .. }) => "ERR_INVALID_ARG_VALUE",
            other => panic!("expected an argument error, got {other:?}"),
        }
    }

    #[test]
    fn setters_refuse_before_any_syscall() {
        const VAL: &str = "ERR_INVALID_ARG_VALUE";
        const RANGE: &str = "ERR_OUT_OF_RANGE";
        let vnet = fake_tap(2, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE);
        let plain = fake_tap(1, IFF_TAP | IFF_NO_PI);
        let ecn = TUN_F_CSUM | TUN_F_TSO_ECN;
        assert_eq!(refused(vnet.set_offloads(&NoSys, ecn)), VAL, "ecn alone");
        assert_eq!(
            refused(vnet.set_offloads(&NoSys, TUN_F_CSUM | TUN_F_USO4)),
            VAL,
            "uso4 without uso6"
        );
        assert_eq!(refused(vnet.set_offloads(&NoSys, TUN_F_TSO4)), VAL);
        assert_eq!(refused(vnet.set_offloads(&NoSys, 0x80)), RANGE);
        assert_eq!(
            refused(plain.set_offloads(&NoSys, TUN_F_CSUM)),
            VAL,
            "offloads without vnet_hdr"
        );
        assert_eq!(refused(vnet.set_vnet_hdr_size(&NoSys, 11)), RANGE);
        assert_eq!(
            refused(plain.set_vnet_hdr_size(&NoSys, 12)),
            VAL,
            "vnetHdrSize without vnet_hdr"
        );
        assert_eq!(refused(vnet.set_owner(&NoSys, u32::MAX)), RANGE);
        assert_eq!(refused(vnet.set_group(&NoSys, u32::MAX)), RANGE);
        assert_eq!(refused(vnet.set_queue_enabled(&NoSys, 2, true)), RANGE);
        assert_eq!(refused(plain.set_queue_enabled(&NoSys, 0, true)), VAL);
    }

    #[test]
    fn open_refuses_before_any_syscall() {
        let refuse = |o: OpenOptions| refused(open_tap(&NoSys, &o));
        assert_eq!(
            refuse(OpenOptions {
                vnet_hdr: Want::Off,
                vnet_hdr_size: Some(12),
                ..OpenOptions::default()
            }),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            refuse(OpenOptions {
                offloads: Some(TUN_F_CSUM | TUN_F_TSO_ECN),
                ..OpenOptions::default()
            }),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            refuse(OpenOptions {
                name: "vm0".into(),
                unique_name: true,
                ..OpenOptions::default()
            }),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            refuse(OpenOptions {
                queues: 257,
                ..OpenOptions::default()
            }),
            "ERR_OUT_OF_RANGE"
        );
        assert_eq!(
            refuse(OpenOptions {
                mtu: Some(70000),
                ..OpenOptions::default()
            }),
            "ERR_OUT_OF_RANGE"
        );
    }

    const ALL: u32 =
        (IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR | IFF_MULTI_QUEUE) as u32;

    #[test]
    fn flags_follow_features_and_request() {
        assert_eq!(
            compute_flags(ALL, 1, Want::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        );
        assert_eq!(
            compute_flags(ALL, 1, Want::Off).unwrap(),
            IFF_TAP | IFF_NO_PI
        );
        assert_eq!(
            compute_flags(ALL, 1, Want::On).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        );
        assert_eq!(
            compute_flags(ALL, 4, Want::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
        );
        let old = (IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE) as u32;
        assert_eq!(
            compute_flags(old, 1, Want::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI
        );
        let e = compute_flags(old, 1, Want::On).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
        let e = compute_flags(old, 2, Want::Off).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
        assert!(e.to_string().contains("IFF_MULTI_QUEUE"), "{e}");
        // Never IFF_ONE_QUEUE, never IFF_TUN.
        for q in [1, 2, 256] {
            for w in [Want::Off, Want::Auto, Want::On] {
                let f = compute_flags(ALL, q, w).unwrap();
                assert_eq!(f & (IFF_ONE_QUEUE | IFF_TUN), 0);
            }
        }
    }
}
