//! Passing fds over a Unix stream socket (SCM_RIGHTS), on the libuv pool.

use std::os::fd::IntoRawFd;

use vmtap_core::{fdpass, rules};

use crate::convert::{arg, fd_of, timeout_of};
use crate::error::JsResult;
use crate::napi::{AsyncTask, Env, Value};

/// vmtap's duplicate of the socket fd in `args[0]`, made here on the JS
/// thread: once the work is queued, the caller may close its socket and the
/// number may be reused, but the duplicate still names the same socket.
fn stream_socket(env: Env, args: &[Value]) -> JsResult<fdpass::StreamSocket> {
    let fd = fd_of(env, arg(env, args, 0)?, "socket")?;
    Ok(fdpass::StreamSocket::dup(fd)?)
}

/// `sendFds(socketFd, data: Buffer, fds: number[], timeoutMs | null)` →
/// Promise<number> (bytes sent). EAGAIN waits in poll on the pool thread.
pub fn send_fds(env: Env, args: &[Value]) -> JsResult<Value> {
    let sock = stream_socket(env, args)?;
    let data = env.bytes_of(arg(env, args, 1)?, "data")?;
    let fds = env.i32_array_of(arg(env, args, 2)?, "fds")?;
    for &fd in &fds {
        rules::check_fd("fds", fd)?;
    }
    let timeout = timeout_of(env, arg(env, args, 3)?)?;
    AsyncTask::spawn(
        env,
        "vmtap.sendFds",
        move || fdpass::send_fds(&sock, &data, &fds, timeout),
        |env, r| env.double(r? as f64),
    )
}

/// `recvFds(socketFd, maxBytes, maxFds, timeoutMs | null)` → Promise of
/// `{ data: Buffer, fds: number[], truncated }`; the fds are the caller's.
pub fn recv_fds(env: Env, args: &[Value]) -> JsResult<Value> {
    let sock = stream_socket(env, args)?;
    let max_bytes = env.u32_of(arg(env, args, 1)?, "maxBytes")? as usize;
    let max_fds = env.u32_of(arg(env, args, 2)?, "maxFds")? as usize;
    rules::check_recv(max_bytes, max_fds)?;
    let timeout = timeout_of(env, arg(env, args, 3)?)?;
    AsyncTask::spawn(
        env,
        "vmtap.recvFds",
        move || fdpass::recv_fds(&sock, max_bytes, max_fds, timeout),
        |env, r| {
            let got = r?;
            let raw: Vec<i32> = got.fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
            let o = env.object()?;
            env.set(o, c"data", env.buffer(&got.data)?)?;
            env.set(o, c"fds", env.int_array(&raw)?)?;
            env.set(o, c"truncated", env.boolean(got.truncated)?)?;
            Ok(o)
        },
    )
}
