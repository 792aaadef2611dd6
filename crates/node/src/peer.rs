//! `peerCredentials(fd)`: the kernel's record of a Unix socket's peer.

use std::os::fd::BorrowedFd;

use vmtap_core::RealSys;

use crate::convert::{arg, fd_of};
use crate::error::JsResult;
use crate::napi::{Env, Value};

/// `peerCredentials(fd)` → `{ pid, uid, gid, groups: number[] | null }`.
pub fn peer_credentials(env: Env, args: &[Value]) -> JsResult<Value> {
    let fd = fd_of(env, arg(env, args, 0)?, "fd")?;
    // SAFETY: fd is not negative (fd_of), so not the -1 BorrowedFd excludes;
    // it is used for a few getsockopt calls during this call only, on the JS
    // thread that owns it; if it is not open they fail with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let c = vmtap_core::peer_credentials(&RealSys, borrowed)?;
    let o = env.object()?;
    env.set(o, c"pid", env.int32(c.pid)?)?;
    env.set(o, c"uid", env.uint32(c.uid)?)?;
    env.set(o, c"gid", env.uint32(c.gid)?)?;
    let groups = match &c.groups {
        None => env.null()?,
        Some(g) => {
            let arr = env.array(g.len())?;
            for (i, gid) in g.iter().enumerate() {
                env.set_element(arr, i as u32, env.uint32(*gid)?)?;
            }
            arr
        }
    };
    env.set(o, c"groups", groups)?;
    Ok(o)
}
