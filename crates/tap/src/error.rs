//! The crate's error type.
//!
//! A kernel failure is an [`OsError`]: the errno, the syscall that failed
//! (`open`, `ioctl(TUNSETIFF)`...), the file involved, the interface name and
//! a hint that tells the user what to do. The Node binding maps it to a
//! `TapError` with `code`, `errno`, `syscall`, `path` like Node's fs errors.

use std::fmt;

use nix::errno::Errno;

/// A failed syscall, with what is needed to explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsError {
    pub errno: Errno,
    /// `open`, `socket`, `ioctl(TUNSETIFF)`...
    pub syscall: &'static str,
    /// The file involved, e.g. `/dev/net/tun`.
    pub path: Option<String>,
    /// The interface involved.
    pub ifname: Option<String>,
    /// What happened and what to do, in one sentence.
    pub hint: Option<String>,
    /// For EBUSY on a device: the processes holding it, when they could be found.
    pub holders: Vec<crate::holders::Holder>,
}

/// Everything that can go wrong in vmtap-core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The kernel refused (or a feature the request needs is missing).
    Os(OsError),
    /// An argument failed validation before any syscall. `range` tells a
    /// number out of range (`ERR_OUT_OF_RANGE`) from a malformed value
    /// (`ERR_INVALID_ARG_VALUE`).
    InvalidArgument {
        name: &'static str,
        message: String,
        range: bool,
    },
    /// The device was already closed.
    Closed,
    /// A buffer a caller's number sized could not be allocated.
    NoMemory { what: &'static str, bytes: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn os(errno: Errno, syscall: &'static str) -> Self {
        Error::Os(OsError {
            errno,
            syscall,
            path: None,
            ifname: None,
            hint: None,
            holders: Vec::new(),
        })
    }

    pub fn invalid(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            message: message.into(),
            range: false,
        }
    }

    pub fn range(name: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            message: message.into(),
            range: true,
        }
    }

    /// `bytes` for `what` could not be allocated.
    pub fn no_memory(what: &'static str, bytes: usize) -> Self {
        Error::NoMemory { what, bytes }
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        if let Error::Os(e) = &mut self {
            e.path = Some(path.into());
        }
        self
    }

    pub fn with_ifname(mut self, name: impl Into<String>) -> Self {
        if let Error::Os(e) = &mut self {
            e.ifname = Some(name.into());
        }
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        if let Error::Os(e) = &mut self {
            e.hint = Some(hint.into());
        }
        self
    }

    pub fn with_holders(mut self, holders: Vec<crate::holders::Holder>) -> Self {
        if let Error::Os(e) = &mut self {
            e.holders = holders;
        }
        self
    }

    /// Set the hint unless a more specific one is already there.
    pub fn or_hint(self, hint: impl Into<String>) -> Self {
        match &self {
            Error::Os(e) if e.hint.is_none() => self.with_hint(hint),
            _ => self,
        }
    }

    /// The errno, for kernel errors.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Os(e) => Some(e.errno),
            _ => None,
        }
    }

    /// Node-style code: the errno name (`EPERM`), `ERR_INVALID_ARG_VALUE`,
    /// `ERR_OUT_OF_RANGE`, `ERR_VMTAP_CLOSED` or (Node's own)
    /// `ERR_MEMORY_ALLOCATION_FAILED`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Os(e) => errno_name(e.errno),
            Error::InvalidArgument { range: true, .. } => "ERR_OUT_OF_RANGE",
            Error::InvalidArgument { .. } => "ERR_INVALID_ARG_VALUE",
            Error::Closed => "ERR_VMTAP_CLOSED",
            Error::NoMemory { .. } => "ERR_MEMORY_ALLOCATION_FAILED",
        }
    }
}

/// A zeroed buffer of `n` bytes for `what`, or [`Error::NoMemory`] when it
/// cannot be allocated (instead of the abort a plain `vec!` would be).
pub fn try_zeroed(n: usize, what: &'static str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::no_memory(what, n))?;
    v.resize(n, 0);
    Ok(v)
}

/// The symbolic name of an errno (`EPERM`), as Node's `err.code` has it.
pub fn errno_name(errno: Errno) -> &'static str {
    macro_rules! names {
        ($($n:ident),* $(,)?) => {
            match errno { $(Errno::$n => stringify!($n),)* _ => "UNKNOWN" }
        };
    }
    names!(
        EPERM,
        ENOENT,
        ESRCH,
        EINTR,
        EIO,
        ENXIO,
        E2BIG,
        ENOEXEC,
        EBADF,
        ECHILD,
        EAGAIN,
        ENOMEM,
        EACCES,
        EFAULT,
        ENOTBLK,
        EBUSY,
        EEXIST,
        EXDEV,
        ENODEV,
        ENOTDIR,
        EISDIR,
        EINVAL,
        ENFILE,
        EMFILE,
        ENOTTY,
        ETXTBSY,
        EFBIG,
        ENOSPC,
        ESPIPE,
        EROFS,
        EMLINK,
        EPIPE,
        EDOM,
        ERANGE,
        EDEADLK,
        ENAMETOOLONG,
        ENOLCK,
        ENOSYS,
        ENOTEMPTY,
        ELOOP,
        ENOMSG,
        EIDRM,
        ENOSTR,
        ENODATA,
        ETIME,
        ENOSR,
        ENOLINK,
        EPROTO,
        EBADMSG,
        EOVERFLOW,
        EBADFD,
        EILSEQ,
        ENOTSOCK,
        EDESTADDRREQ,
        EMSGSIZE,
        EPROTOTYPE,
        ENOPROTOOPT,
        EPROTONOSUPPORT,
        ESOCKTNOSUPPORT,
        EOPNOTSUPP,
        EPFNOSUPPORT,
        EAFNOSUPPORT,
        EADDRINUSE,
        EADDRNOTAVAIL,
        ENETDOWN,
        ENETUNREACH,
        ENETRESET,
        ECONNABORTED,
        ECONNRESET,
        ENOBUFS,
        EISCONN,
        ENOTCONN,
        ESHUTDOWN,
        ETOOMANYREFS,
        ETIMEDOUT,
        ECONNREFUSED,
        EHOSTDOWN,
        EHOSTUNREACH,
        EALREADY,
        EINPROGRESS,
        ESTALE,
        EDQUOT,
        ECANCELED,
        EOWNERDEAD,
        ENOTRECOVERABLE,
        ERFKILL,
    )
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os(e) => {
                // Node's shape: "EPERM: operation not permitted, open '/dev/net/tun'".
                let desc = e.errno.desc();
                let mut chars = desc.chars();
                let lower = match chars.next() {
                    Some(c) => c.to_lowercase().chain(chars).collect::<String>(),
                    None => String::new(),
                };
                write!(f, "{}: {}, {}", errno_name(e.errno), lower, e.syscall)?;
                match (&e.path, &e.ifname) {
                    (Some(p), _) => write!(f, " '{p}'")?,
                    (None, Some(n)) => write!(f, " '{n}'")?,
                    _ => {}
                }
                if let Some(h) = &e.hint {
                    write!(f, ": {h}")?;
                }
                Ok(())
            }
            Error::InvalidArgument { message, .. } => f.write_str(message),
            Error::Closed => f.write_str("the TAP device is closed"),
            Error::NoMemory { what, bytes } => {
                write!(f, "could not allocate {bytes} bytes for {what}")
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_errno_names() {
        assert_eq!(errno_name(Errno::EPERM), "EPERM");
        assert_eq!(errno_name(Errno::E2BIG), "E2BIG");
        assert_eq!(errno_name(Errno::EBADFD), "EBADFD");
        assert_eq!(Error::os(Errno::EBUSY, "open").code(), "EBUSY");
        assert_eq!(Error::range("q", "x").code(), "ERR_OUT_OF_RANGE");
        assert_eq!(Error::invalid("q", "x").code(), "ERR_INVALID_ARG_VALUE");
    }

    #[test]
    fn message_looks_like_node_fs() {
        let e = Error::os(Errno::ENOENT, "open")
            .with_path("/dev/vhost-net")
            .with_hint("load vhost_net");
        assert_eq!(
            e.to_string(),
            "ENOENT: no such file or directory, open '/dev/vhost-net': load vhost_net"
        );
        let e = Error::os(Errno::EBUSY, "ioctl(TUNSETIFF)").with_ifname("vm0");
        assert_eq!(
            e.to_string(),
            "EBUSY: device or resource busy, ioctl(TUNSETIFF) 'vm0'"
        );
    }
}
