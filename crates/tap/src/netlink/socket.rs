//! One rtnetlink socket: send a request, read its replies.
//!
//! Replies are matched to the request by sequence number (anything else on
//! the socket is a late reply to an earlier request and is skipped). A dump
//! is read until `NLMSG_DONE`; a change until its ack (`NLMSG_ERROR` with
//! error 0). Dumps and gets are idempotent, so they are started over, a
//! bounded number of times, when the kernel says the dump was inconsistent
//! (`NLM_F_DUMP_INTR`), when the socket overflowed (`ENOBUFS`) or when a
//! datagram did not fit the buffer; changes never are.

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;

use super::msg::{messages, Ack, Msg, Request};
use super::{
    label, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_DUMP_INTR, NLM_F_MULTI,
};
use crate::error::{Error, Result};
use crate::sys::Sys;

/// Receive buffer size. The kernel packs up to ~32 KiB of a dump into one
/// datagram (more with a bigger buffer it does not use); 64 KiB keeps
/// single replies whole too.
pub const RECV_BUF: usize = 64 * 1024;

/// How many times a dump or a get is tried before giving up.
pub const MAX_ATTEMPTS: u32 = 4;

/// An rtnetlink socket in the network namespace of the thread that opened it.
pub struct Netlink<'s> {
    sys: &'s dyn Sys,
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
    /// The last request was sent and no final answer to it was read.
    unanswered: bool,
}

impl std::fmt::Debug for Netlink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("fd", &self.fd)
            .field("seq", &self.seq)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A change: ends with the ack.
    Ack,
    /// A get of one object: ends with its message (or an error).
    Get,
    /// A dump: ends with NLMSG_DONE.
    Dump,
}

/// Why an attempt has to start over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    Interrupted,
    Overflow,
    Truncated(usize),
}

fn open_socket(sys: &dyn Sys) -> Result<OwnedFd> {
    sys.netlink_socket().map_err(|e| {
        Error::os(e, "socket")
            .with_hint("could not create a netlink socket (AF_NETLINK, NETLINK_ROUTE)")
    })
}

/// The error for a negative `error` in an `NLMSG_ERROR` or `NLMSG_DONE`: the
/// kernel's extended-ack text as the hint when it sent one.
pub fn kernel_error(ack: &Ack, syscall: &'static str) -> Error {
    let errno = Errno::from_i32(ack.error.saturating_neg());
    let err = Error::os(errno, syscall);
    match (&ack.message, errno) {
        (Some(m), _) => err.with_hint(m.clone()),
        (None, Errno::EPERM | Errno::EACCES) => err.with_hint(
            "changing the network configuration needs CAP_NET_ADMIN in its network namespace",
        ),
        _ => err,
    }
}

fn malformed(syscall: &'static str) -> Error {
    Error::os(Errno::EBADMSG, syscall).with_hint("the kernel's netlink reply is malformed")
}

/// Adds `hint` to a kernel error that has none (no extended-ack text).
pub fn explain(err: Error, hint: impl FnOnce(Errno) -> Option<String>) -> Error {
    match &err {
        Error::Os(os) if os.hint.is_none() => match hint(os.errno) {
            Some(h) => err.with_hint(h),
            None => err,
        },
        _ => err,
    }
}

impl<'s> Netlink<'s> {
    /// A socket in the calling thread's network namespace.
    pub fn open(sys: &'s dyn Sys) -> Result<Self> {
        Ok(Netlink {
            sys,
            fd: open_socket(sys)?,
            seq: 0,
            buf: vec![0; RECV_BUF],
            unanswered: false,
        })
    }

    /// Whether the last request reached the kernel without its answer (ack,
    /// error or end of dump) being read: a change failed that way may have
    /// been made.
    pub fn unanswered(&self) -> bool {
        self.unanswered
    }

    /// Send a change and wait for its ack. Set `NLM_F_ACK` on `req`.
    pub fn ack(&mut self, req: &mut Request) -> Result<()> {
        self.ack_with(req, |_| {})
    }

    /// [`Netlink::ack`], with the messages that come before the ack (what
    /// `NLM_F_ECHO` sends back) passed to `sink`.
    pub fn ack_with(&mut self, req: &mut Request, mut sink: impl FnMut(&Msg<'_>)) -> Result<()> {
        // A change is never tried twice: attempt() only asks to start over
        // in the other modes.
        self.attempt(req, Mode::Ack, &mut |m| {
            if let Some(m) = m {
                sink(m)
            }
        })?;
        Ok(())
    }

    /// Send a get of one object; `parse` reads the reply. `Ok(None)` when
    /// the reply was not what `parse` wants.
    pub fn get<T>(
        &mut self,
        req: &mut Request,
        mut parse: impl FnMut(&Msg<'_>) -> Option<T>,
    ) -> Result<Option<T>> {
        let mut out = None;
        self.retrying(req, Mode::Get, &mut |m| out = m.and_then(&mut parse))?;
        Ok(out)
    }

    /// Send a dump request (`NLM_F_DUMP`) and parse every message of the
    /// reply; `parse` returns `None` for the ones to leave out.
    pub fn dump<T>(
        &mut self,
        req: &mut Request,
        mut parse: impl FnMut(&Msg<'_>) -> Option<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.retrying(req, Mode::Dump, &mut |m| match m {
            Some(m) => out.extend(parse(m)),
            None => out.clear(),
        })?;
        Ok(out)
    }

    /// Attempts until one completes. `sink` gets each message, and `None`
    /// when an attempt is abandoned (drop what it collected).
    fn retrying(
        &mut self,
        req: &mut Request,
        mode: Mode,
        sink: &mut dyn FnMut(Option<&Msg<'_>>),
    ) -> Result<()> {
        let syscall = label(req.msg_type());
        let mut again = None;
        for _ in 0..MAX_ATTEMPTS {
            let Some(why) = self.attempt(req, mode, sink)? else {
                return Ok(());
            };
            sink(None);
            match why {
                Again::Interrupted => {}
                // What is left of the reply is still queued on this
                // socket, or lost: start on a fresh one.
                Again::Overflow => self.fd = open_socket(self.sys)?,
                Again::Truncated(n) => {
                    self.buf.resize(super::msg::align(n), 0);
                    self.fd = open_socket(self.sys)?;
                }
            }
            again = Some(why);
        }
        Err(match again {
            Some(Again::Interrupted) => Error::os(Errno::EAGAIN, syscall).with_hint(
                "the kernel's tables kept changing during the dump (NLM_F_DUMP_INTR); try again",
            ),
            Some(Again::Truncated(_)) => Error::os(Errno::EMSGSIZE, syscall)
                .with_hint("a netlink reply kept growing beyond the receive buffer"),
            _ => Error::os(Errno::ENOBUFS, syscall)
                .with_hint("the netlink socket's receive queue kept overflowing"),
        })
    }

    /// One request and its replies. `Ok(Some(_))`: start over.
    fn attempt(
        &mut self,
        req: &mut Request,
        mode: Mode,
        sink: &mut dyn FnMut(Option<&Msg<'_>>),
    ) -> Result<Option<Again>> {
        let syscall = label(req.msg_type());
        self.seq = self.seq.wrapping_add(1);
        req.set_seq(self.seq);
        self.unanswered = false;
        // rtnetlink handles a request inside the send: a failed send was not
        // handled, a successful one was, whatever happens to its answer.
        self.sys
            .netlink_send(self.fd.as_fd(), req.bytes())
            .map_err(|e| Error::os(e, syscall))?;
        self.unanswered = true;
        let mut interrupted = false;
        loop {
            let n = match self.sys.netlink_recv(self.fd.as_fd(), &mut self.buf) {
                Ok(n) => n,
                Err(Errno::ENOBUFS) if mode != Mode::Ack => return Ok(Some(Again::Overflow)),
                Err(e) => return Err(Error::os(e, syscall)),
            };
            if n > self.buf.len() {
                if mode == Mode::Ack {
                    return Err(Error::os(Errno::EMSGSIZE, syscall)
                        .with_hint("a netlink reply did not fit the receive buffer"));
                }
                return Ok(Some(Again::Truncated(n)));
            }
            for m in messages(&self.buf[..n]) {
                let m = m.map_err(|_| malformed(syscall))?;
                if m.seq != self.seq {
                    continue; // a late reply to an earlier request
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.msg_type {
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN if mode != Mode::Ack => return Ok(Some(Again::Overflow)),
                    NLMSG_OVERRUN => return Err(Error::os(Errno::ENOBUFS, syscall)),
                    NLMSG_ERROR => {
                        let ack = Ack::from_error(&m).ok_or_else(|| malformed(syscall))?;
                        self.unanswered = false;
                        if ack.error != 0 {
                            return Err(kernel_error(&ack, syscall));
                        }
                        return Ok(None);
                    }
                    NLMSG_DONE => {
                        let ack = Ack::from_done(&m);
                        self.unanswered = false;
                        if ack.error != 0 {
                            return Err(kernel_error(&ack, syscall));
                        }
                        let again = interrupted && mode == Mode::Dump;
                        return Ok(again.then_some(Again::Interrupted));
                    }
                    _ => {
                        sink(Some(&m));
                        if mode == Mode::Get && m.flags & NLM_F_MULTI == 0 {
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }
}
