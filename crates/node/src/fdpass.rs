//! Passing fds over a Unix stream socket (SCM_RIGHTS), waiting on the event
//! loop: the non-blocking syscall is tried at the call, on the JS thread;
//! when the socket is not ready, the socket is watched
//! ([`crate::napi::watch`]) and the call retried when it is. No pool thread
//! waits, a pending call can be cancelled (`cancel(id)`, for AbortSignal),
//! and a pending call ends with its environment.
//!
//! Everything a call uses is resolved at the call: vmtap's duplicate of
//! the socket and duplicates of the fds to send. Closing and reusing the
//! numbers meanwhile changes nothing; the duplicates are closed when the
//! call settles, whichever way.

use std::os::fd::{AsFd, AsRawFd, IntoRawFd};
use std::time::Duration;

use vmtap_core::fdpass::{self, Received, Send, Step, StreamSocket};
use vmtap_core::Errno;
use vmtap_core::{rules, Error};

use crate::convert::{arg, fd_of, optional, timeout_of};
use crate::error::{JsError, JsResult};
use crate::napi::watch::{self, Flow, Handler, Interest, Why};
use crate::napi::{Deferred, Env, Value, ValueType};

/// vmtap's duplicate of the socket fd in `args[0]`, made at the call.
fn stream_socket(env: Env, args: &[Value]) -> JsResult<StreamSocket> {
    let fd = fd_of(env, arg(env, args, 0)?, "socket")?;
    Ok(StreamSocket::dup(fd)?)
}

/// The fd numbers in `v` (an array of at most `max`, checked before any
/// element is read).
pub fn fd_list(env: Env, v: Value, what: &'static str, max: usize) -> JsResult<Vec<i32>> {
    let n = env.array_len(v, what)? as usize;
    rules::check_fd_count(what, n, max)?;
    (0..n as u32)
        .map(|i| fd_of(env, env.element(v, i)?, what))
        .collect()
}

/// The error a cancelled or failed wait settles with.
pub fn why_error(why: Why) -> JsError {
    match why {
        Why::Aborted => JsError::aborted(),
        Why::Closed(ifname) => JsError::closed(ifname.as_deref()),
        Why::Failed(e) => e,
    }
}

/// A timeout: the peer (or device) did not become ready in time.
fn timed_out(syscall: &'static str) -> JsError {
    Error::os(Errno::ETIMEDOUT, syscall)
        .with_hint("the peer did not become ready in time (timeoutMs)")
        .into()
}

/// How an operation waiting on a watch settles: its promise, settled once.
struct Settle(Option<Deferred>);

impl Settle {
    fn with(&mut self, env: Env, outcome: JsResult<Value>) {
        if let Some(d) = self.0.take() {
            d.settle(env, outcome);
        }
    }
}

/// Try `attempt` now; if it would block, watch `fd` and retry when it is
/// ready, calling `on_wait(id)` (a JS function, or null) with the watch's
/// id so the caller can cancel it. Returns the promise.
fn run_or_wait<H: Handler + Op>(
    env: Env,
    mut op: H,
    interest: Interest,
    timeout: Option<Duration>,
    on_wait: Value,
    name: &str,
) -> JsResult<Value> {
    if let Some(outcome) = op.attempt(env) {
        let (deferred, promise) = env.promise()?;
        deferred.settle(env, outcome);
        return Ok(promise);
    }
    let raw = op.fd();
    // SAFETY: raw is the op's own open fd; moving the op into the watch
    // below does not close it, and the watch keeps the op (so the fd) for
    // as long as it watches.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    let mut op = Box::new(op);
    let slot: *mut Settle = op.settle();
    let id = watch::watch(env, fd, interest, timeout, name, false, op)?;
    let (deferred, promise) = match env.promise() {
        Ok(p) => p,
        Err(e) => {
            watch::close(env, id);
            return Err(e);
        }
    };
    // SAFETY: the op lives in the watch (its box did not move); no handler
    // method runs before the loop's next iteration, so nothing reads the
    // slot meanwhile.
    unsafe { (*slot).0 = Some(deferred) };
    if env.type_of(on_wait)? == ValueType::Function {
        if let Err(e) = env.call(on_wait, &[env.double(id as f64)?]) {
            // The caller never gets this promise: drop the wait quietly.
            watch::close(env, id);
            return Err(e);
        }
    }
    Ok(promise)
}

/// An operation that a watch retries.
trait Op {
    fn settle(&mut self) -> &mut Settle;
    /// The raw fd to watch (owned by the op).
    fn fd(&self) -> i32;
    /// One non-blocking attempt: `None` when it would block, else how the
    /// call settles.
    fn attempt(&mut self, env: Env) -> Option<JsResult<Value>>;

    /// [`Handler::ready`] for an op: attempt, settle when done.
    fn retry(&mut self, env: Env) -> Flow {
        match self.attempt(env) {
            None => Flow::Wait,
            Some(outcome) => {
                self.settle().with(env, outcome);
                Flow::Done
            }
        }
    }
}

struct SendOp {
    sock: StreamSocket,
    send: Send,
    done: Settle,
}

impl Op for SendOp {
    fn settle(&mut self) -> &mut Settle {
        &mut self.done
    }

    fn fd(&self) -> i32 {
        self.sock.as_fd().as_raw_fd()
    }

    fn attempt(&mut self, env: Env) -> Option<JsResult<Value>> {
        match self.send.try_send(&self.sock) {
            Ok(Step::WouldBlock) => None,
            Ok(Step::Done(n)) => Some(env.double(n as f64)),
            Err(e) => Some(Err(e.into())),
        }
    }
}

impl Handler for SendOp {
    fn ready(&mut self, env: Env) -> Flow {
        self.retry(env)
    }

    fn timeout(&mut self, env: Env) -> Flow {
        self.done.with(env, Err(timed_out("sendmsg")));
        Flow::Done
    }

    fn cancel(&mut self, env: Env, why: Why) {
        self.done.with(env, Err(why_error(why)));
    }
}

struct RecvOp {
    sock: StreamSocket,
    max_bytes: usize,
    max_fds: usize,
    done: Settle,
}

fn received(env: Env, got: Received) -> JsResult<Value> {
    let raw: Vec<i32> = got.fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
    let o = env.object()?;
    env.set(o, c"data", env.buffer(&got.data)?)?;
    env.set(o, c"fds", env.int_array(&raw)?)?;
    env.set(o, c"truncated", env.boolean(got.truncated)?)?;
    Ok(o)
}

impl Op for RecvOp {
    fn settle(&mut self) -> &mut Settle {
        &mut self.done
    }

    fn fd(&self) -> i32 {
        self.sock.as_fd().as_raw_fd()
    }

    fn attempt(&mut self, env: Env) -> Option<JsResult<Value>> {
        match fdpass::try_recv(&self.sock, self.max_bytes, self.max_fds) {
            Ok(Step::WouldBlock) => None,
            Ok(Step::Done(got)) => Some(received(env, got)),
            Err(e) => Some(Err(e.into())),
        }
    }
}

impl Handler for RecvOp {
    fn ready(&mut self, env: Env) -> Flow {
        self.retry(env)
    }

    fn timeout(&mut self, env: Env) -> Flow {
        self.done.with(env, Err(timed_out("recvmsg")));
        Flow::Done
    }

    fn cancel(&mut self, env: Env, why: Why) {
        self.done.with(env, Err(why_error(why)));
    }
}

/// `sendFds(socketFd, data: Buffer, fds: number[], timeoutMs | null,
/// onWait: ((id) => void) | null)` → Promise<number> (bytes sent). The
/// socket and every fd are duplicated here, at the call.
pub fn send_fds(env: Env, args: &[Value]) -> JsResult<Value> {
    let data = env.bytes_of(arg(env, args, 1)?, "data")?;
    let fds = fd_list(env, arg(env, args, 2)?, "fds", rules::SCM_MAX_FD)?;
    let timeout = timeout_of(env, arg(env, args, 3)?)?;
    let on_wait = arg(env, args, 4)?;
    rules::check_send(data.len(), &fds)?;
    let sock = stream_socket(env, args)?;
    let send = Send::new(data, fdpass::dup_fds(&fds)?)?;
    let op = SendOp {
        sock,
        send,
        done: Settle(None),
    };
    run_or_wait(env, op, Interest::Write, timeout, on_wait, "vmtap.sendFds")
}

/// `recvFds(socketFd, maxBytes, maxFds, timeoutMs | null, onWait | null)` →
/// Promise of `{ data: Buffer, fds: number[], truncated }`; the fds are the
/// caller's.
pub fn recv_fds(env: Env, args: &[Value]) -> JsResult<Value> {
    let max_bytes = env.u32_of(arg(env, args, 1)?, "maxBytes")? as usize;
    let max_fds = env.u32_of(arg(env, args, 2)?, "maxFds")? as usize;
    rules::check_recv(max_bytes, max_fds)?;
    let timeout = timeout_of(env, arg(env, args, 3)?)?;
    let on_wait = arg(env, args, 4)?;
    let sock = stream_socket(env, args)?;
    let op = RecvOp {
        sock,
        max_bytes,
        max_fds,
        done: Settle(None),
    };
    run_or_wait(env, op, Interest::Read, timeout, on_wait, "vmtap.recvFds")
}

/// `cancel(id)` → whether a pending call was cancelled: it rejects with an
/// AbortError (`ABORT_ERR`) and its duplicates are closed.
pub fn cancel(env: Env, args: &[Value]) -> JsResult<Value> {
    let id = optional(env, arg(env, args, 0)?, |v| env.double_of(v, "id"))?;
    let done = match id {
        Some(id) if id >= 1.0 && id.fract() == 0.0 => watch::cancel(env, id as u64, Why::Aborted),
        _ => false,
    };
    env.boolean(done)
}

/// `dupFds(fds: number[])` → number[]: close-on-exec duplicates, made now
/// (the caller closes them). All or none.
pub fn dup_fds(env: Env, args: &[Value]) -> JsResult<Value> {
    let fds = fd_list(env, arg(env, args, 0)?, "fds", rules::MAX_DUP_FDS)?;
    let dups = fdpass::dup_fds(&fds)?;
    let raw: Vec<i32> = dups.iter().map(AsRawFd::as_raw_fd).collect();
    let out = env.int_array(&raw)?;
    // The caller owns them from here.
    for f in dups {
        let _ = f.into_raw_fd();
    }
    Ok(out)
}
