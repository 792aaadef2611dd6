//! Network namespaces: taps created and configured inside another network
//! namespace by a process that stays in its own.
//!
//! A `/dev/net/tun` file belongs to the namespace it was opened in (TUNSETIFF
//! creates or finds the device there), and link configuration acts in the
//! namespace of the socket that carries it. `setns(2)` moves only the calling
//! thread, so namespace work runs on a short-lived thread of vmtap's own
//! ([`run_in`]): the calling thread — a JavaScript thread, a libuv pool
//! thread — never changes namespace, and the thread's namespace ends with it.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::rules;
use crate::sys::Sys;

/// A network namespace as the caller names it.
#[derive(Debug, Clone)]
pub enum NetNsSpec {
    /// A path to a namespace file, or a bare name (`blue` is
    /// `/run/netns/blue`, as `ip netns` has it); see [`rules::netns_path`].
    Path(String),
    /// An open namespace file: vmtap's own duplicate of a caller's fd, made
    /// where the caller owns it (so a number closed and reused meanwhile
    /// cannot redirect the work).
    File(Arc<OwnedFd>),
}

impl NetNsSpec {
    /// vmtap's own duplicate of the caller's namespace fd `fd`: do this where
    /// the caller owns the number (the calling thread), before the work
    /// moves anywhere else.
    pub fn dup_fd(sys: &dyn Sys, fd: std::os::fd::RawFd) -> Result<NetNsSpec> {
        rules::check_fd("netns", fd)?;
        // SAFETY: fd is not negative (checked above); it is only duplicated
        // here, and if it is not open the duplicate fails with EBADF.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let dup = sys.dup_cloexec(borrowed).map_err(|e| {
            Error::os(e, "fcntl(F_DUPFD_CLOEXEC)")
                .with_hint(format!("fd {fd} is not an open network namespace file"))
        })?;
        Ok(NetNsSpec::File(Arc::new(dup)))
    }
}

/// An open network namespace: the file that pins it, and how it was named.
#[derive(Debug)]
pub struct NetNs {
    file: Arc<OwnedFd>,
    /// The path it was opened from, or `None` for a caller's fd.
    path: Option<String>,
}

const CLONE_NEWNET: libc::c_int = libc::CLONE_NEWNET;

impl NetNs {
    /// [`NetNs::open`] for an optional namespace (`None`: the caller's).
    pub fn open_opt(sys: &dyn Sys, spec: Option<&NetNsSpec>) -> Result<Option<NetNs>> {
        spec.map(|spec| NetNs::open(sys, spec)).transpose()
    }

    /// Open `spec`: ENOENT (with a hint) for a namespace that does not exist.
    /// A file that is not a network namespace is refused by setns (EINVAL)
    /// when it is entered. Nothing stays open on failure.
    pub fn open(sys: &dyn Sys, spec: &NetNsSpec) -> Result<NetNs> {
        let (file, path) = match spec {
            NetNsSpec::Path(p) => {
                let path = rules::netns_path(p)?;
                let c = CString::new(path.as_str()).map_err(|_| {
                    Error::invalid(
                        "netns",
                        "a network namespace path must not contain NUL bytes",
                    )
                })?;
                let fd = sys
                    .open(&c, libc::O_RDONLY)
                    .map_err(|e| open_error(e, &path))?;
                (Arc::new(fd), Some(path))
            }
            NetNsSpec::File(f) => (Arc::clone(f), None),
        };
        Ok(NetNs { file, path })
    }

    /// The path the namespace was opened from (`/run/netns/blue`), or `None`
    /// when the caller gave an fd.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The namespace file.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// How errors name it.
    fn shown(&self) -> String {
        self.path
            .clone()
            .unwrap_or_else(|| "the namespace fd".to_owned())
    }
}

fn open_error(errno: Errno, path: &str) -> Error {
    let err = Error::os(errno, "open").with_path(path);
    let name = path
        .strip_prefix(rules::NETNS_RUN_DIR)
        .and_then(|n| n.strip_prefix('/'));
    match (errno, name) {
        (Errno::ENOENT, Some(n)) => err.with_hint(format!(
            "there is no network namespace {n}: create it first (ip netns add {n}), or give \
             the path of its namespace file"
        )),
        (Errno::ENOENT, None) => err.with_hint("there is no such network namespace file"),
        (Errno::EACCES | Errno::EPERM, _) => {
            err.with_hint("this process may not open that network namespace file")
        }
        _ => err,
    }
}

/// Run `f` in the network namespace `ns`: on the calling thread when `ns` is
/// `None`, else on a short-lived thread of vmtap's own that enters `ns`
/// (setns) first. The calling thread's namespace never changes. Fails with
/// the setns error (EPERM without CAP_SYS_ADMIN over the namespace), or
/// EAGAIN when no thread can be started.
pub fn run_in<R: Send>(
    sys: &dyn Sys,
    ns: Option<&NetNs>,
    f: impl FnOnce() -> Result<R> + Send,
) -> Result<R> {
    let Some(ns) = ns else {
        return f();
    };
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("vmtap-netns".into())
            .stack_size(256 * 1024)
            .spawn_scoped(scope, || {
                sys.setns(ns.fd(), CLONE_NEWNET)
                    .map_err(|e| setns_error(e, ns))?;
                f()
            });
        match spawned {
            Ok(handle) => match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(e) => Err(Error::os(
                Errno::from_i32(e.raw_os_error().unwrap_or(libc::EAGAIN)),
                "clone",
            )
            .with_hint("could not start a thread to work in the network namespace")),
        }
    })
}

fn setns_error(errno: Errno, ns: &NetNs) -> Error {
    let mut err = Error::os(errno, "setns");
    if let Some(p) = &ns.path {
        err = err.with_path(p.clone());
    }
    match errno {
        Errno::EPERM => err.with_hint(
            "entering a network namespace needs CAP_SYS_ADMIN over it (run as root, or as the \
             owner of its user namespace)",
        ),
        Errno::EINVAL => err.with_hint(format!(
            "{} is not a network namespace: give /run/netns/NAME, a bare name, /proc/PID/ns/net \
             or an fd of one",
            ns.shown()
        )),
        _ => err,
    }
}
