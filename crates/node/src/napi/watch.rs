//! Waiting for an fd on the event loop instead of on a libuv pool thread.
//!
//! A watch runs a [`Handler`] on the JS thread each time an fd is ready: the
//! handler makes its non-blocking syscall and says whether it is done or
//! wants to wait again. Nothing occupies a pool thread while waiting, a
//! pending watch can be cancelled ([`cancel`]), and every watch of an
//! environment is closed when the environment goes away (a Worker
//! terminating, the process exiting).
//!
//! How: libuv's `uv_poll_t` does not watch the caller's fd itself but a
//! private epoll instance that does (`epoll_create1` + one `EPOLL_CTL_ADD`,
//! level-triggered). `uv_poll_init` puts the fd it is given into
//! non-blocking mode, and O_NONBLOCK belongs to the open file description,
//! which a socket's owner or a VMM holding the same TAP queue shares: given
//! the epoll fd, libuv changes only vmtap's own. The epoll fd is readable
//! exactly while the watched fd is ready (or in error), so the handler runs
//! only then, and never spins.
//!
//! Memory: each handle is `uv_handle_size()` bytes from the C heap and
//! freed in its close callback, the [`Watch`] with its last handle. The
//! environment's registry of watches lives until the last handle closed
//! after an async cleanup hook (`napi_add_async_cleanup_hook`) closed them
//! all: Node keeps running the loop for such a hook until it is removed, so
//! the close callbacks run before the loop is closed (a plain
//! `napi_add_env_cleanup_hook` gives no such guarantee, and a Worker's loop
//! refuses to close with handles open).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::Duration;

use vmtap_core::Errno;
use vmtap_core::Error;

use super::env::Env;
use super::ffi::{self, napi_async_cleanup_hook_handle, napi_async_context, napi_env};
use super::function::panic_error;
use super::uv::{self, uv_handle_t, uv_loop_t, uv_poll_t, uv_timer_t};
use crate::error::{JsError, JsResult};

/// Which readiness of the watched fd wakes the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

/// What the handler says after it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Not done: wait for the next readiness.
    Wait,
    /// Done: close the watch.
    Done,
}

/// Why a watch is ended from outside its handler.
#[derive(Debug)]
pub enum Why {
    /// An AbortSignal fired (`cancel`).
    Aborted,
    /// The device it belongs to was closed.
    Closed(Option<String>),
    /// Setting the watch up failed, or the handler panicked.
    Failed(JsError),
}

/// The work of a watch. Every method runs on the JS thread with a handle
/// scope and (from the loop) a callback scope open, so it may build JS
/// values, settle promises and call JS.
pub trait Handler: 'static {
    /// The fd is ready (or in error): make the non-blocking syscall.
    fn ready(&mut self, env: Env) -> Flow;
    /// The timeout given to [`watch`] passed.
    fn timeout(&mut self, env: Env) -> Flow {
        let _ = env;
        Flow::Wait
    }
    /// Ended from outside: settle whatever is pending. The watch closes.
    fn cancel(&mut self, env: Env, why: Why);
    /// The watch is closing normally: release JS references. Not called
    /// when the environment goes away (Node frees them then).
    fn release(&mut self, env: Env) {
        let _ = env;
    }
}

/// Something asked of a watch while its handler was running.
enum Pending {
    Cancel(Why),
    Close,
}

/// One watch: its handles, the private epoll fd and the handler. Lives on
/// the heap from [`watch`] until its last handle's close callback.
struct Watch {
    id: u64,
    reg: *mut Registry,
    epoll: Option<OwnedFd>,
    poll: *mut uv_poll_t,
    /// Null without a timeout.
    timer: *mut uv_timer_t,
    /// How many of its handles are not closed yet.
    handles: u8,
    /// Taken while a handler method runs.
    handler: Option<Box<dyn Handler>>,
    busy: bool,
    pending: Option<Pending>,
    closing: bool,
    ctx: napi_async_context,
}

/// Per environment: the loop, the live watches, and the cleanup hook.
struct Registry {
    env: napi_env,
    uv_loop: *mut uv_loop_t,
    watches: HashMap<u64, *mut Watch>,
    next_id: u64,
    /// Handles not closed yet, of every watch (closing ones included).
    open_handles: usize,
    hook: napi_async_cleanup_hook_handle,
    tearing_down: bool,
}

thread_local! {
    /// Each environment runs on one thread; its registry, by env.
    static REGISTRIES: RefCell<HashMap<usize, *mut Registry>> = RefCell::new(HashMap::new());
}

fn lookup_registry(env: napi_env) -> Option<*mut Registry> {
    REGISTRIES.with(|r| r.borrow().get(&(env as usize)).copied())
}

/// This environment's registry, made (with its cleanup hook) on first use.
fn registry(env: Env) -> JsResult<*mut Registry> {
    if let Some(r) = lookup_registry(env.raw) {
        return Ok(r);
    }
    let mut uv_loop: *mut uv_loop_t = ptr::null_mut();
    // SAFETY: valid env; the out-pointer is a local.
    env.check(unsafe { ffi::napi_get_uv_event_loop(env.raw, &mut uv_loop) })?;
    let reg = Box::into_raw(Box::new(Registry {
        env: env.raw,
        uv_loop,
        watches: HashMap::new(),
        next_id: 1,
        open_handles: 0,
        hook: ptr::null_mut(),
        tearing_down: false,
    }));
    // SAFETY: valid env; reg is a live box that stays alive until the hook
    // is removed (finish_teardown); the out-pointer is its field.
    let status = unsafe {
        ffi::napi_add_async_cleanup_hook(env.raw, Some(teardown), reg.cast(), &mut (*reg).hook)
    };
    if let Err(e) = env.check(status) {
        // SAFETY: the hook was not registered; the box is still ours.
        drop(unsafe { Box::from_raw(reg) });
        return Err(e);
    }
    REGISTRIES.with(|r| r.borrow_mut().insert(env.raw as usize, reg));
    Ok(reg)
}

fn os_error(e: Errno, syscall: &'static str) -> JsError {
    Error::os(e, syscall)
        .with_hint("vmtap could not watch the fd on the event loop")
        .into()
}

/// A libuv status (a negative errno) as an error.
fn uv_error(status: c_int, call: &'static str) -> JsError {
    os_error(Errno::from_i32(-status), call)
}

/// Zeroed C-heap memory for a handle of `kind`.
fn alloc_handle(kind: uv::uv_handle_type) -> JsResult<*mut uv_handle_t> {
    // SAFETY: uv_handle_size has no preconditions.
    let size = unsafe { uv::uv_handle_size(kind) };
    // SAFETY: calloc of a non-zero size; null is checked.
    let p = unsafe { libc::calloc(1, size) };
    if p.is_null() {
        return Err(Error::no_memory("a libuv handle", size).into());
    }
    Ok(p.cast())
}

/// A private epoll instance watching `fd` for `interest`, level-triggered.
fn epoll_for(fd: BorrowedFd<'_>, interest: Interest) -> JsResult<OwnedFd> {
    // SAFETY: plain epoll_create1; the result is checked.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(os_error(Errno::last(), "epoll_create1"));
    }
    // SAFETY: a fresh fd that nothing else owns.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let events = match interest {
        Interest::Read => libc::EPOLLIN,
        Interest::Write => libc::EPOLLOUT,
    };
    let mut ev = libc::epoll_event {
        events: events as u32,
        u64: 0,
    };
    // SAFETY: both fds are open; ev is a live struct.
    let r =
        unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) };
    if r < 0 {
        return Err(os_error(Errno::last(), "epoll_ctl"));
    }
    Ok(ep)
}

/// Watch `fd` for `interest` and run `handler` whenever it is ready (after
/// `timeout`, its `timeout` method). The handler's fd must stay open while
/// the watch lives (own it in the handler). `paused`: do not wait until
/// [`resume`]. Returns the watch's id. When the watch cannot be set up, the
/// handler is released and dropped (nothing of it stays) and the error
/// returned: the caller settles what it promised.
pub fn watch(
    env: Env,
    fd: BorrowedFd<'_>,
    interest: Interest,
    timeout: Option<Duration>,
    name: &str,
    paused: bool,
    mut handler: Box<dyn Handler>,
) -> JsResult<u64> {
    match start(env, fd, interest, timeout, name, paused) {
        Ok(w) => {
            // SAFETY: w is the live watch just made; only this thread uses it.
            unsafe { (*w).handler = Some(handler) };
            // SAFETY: as above.
            Ok(unsafe { (*w).id })
        }
        Err(e) => {
            handler.release(env);
            Err(e)
        }
    }
}

fn start(
    env: Env,
    fd: BorrowedFd<'_>,
    interest: Interest,
    timeout: Option<Duration>,
    name: &str,
    paused: bool,
) -> JsResult<*mut Watch> {
    let reg = registry(env)?;
    let epoll = epoll_for(fd, interest)?;
    let mut ctx: napi_async_context = ptr::null_mut();
    let resource_name = env.string(name)?;
    // SAFETY: valid env; a null resource makes Node create one; the
    // out-pointer is a local.
    env.check(unsafe {
        ffi::napi_async_init(env.raw, ptr::null_mut(), resource_name.0, &mut ctx)
    })?;
    let poll = match alloc_handle(uv::UV_POLL) {
        Ok(p) => p,
        Err(e) => {
            // SAFETY: the context was made above and is not used elsewhere.
            unsafe { ffi::napi_async_destroy(env.raw, ctx) };
            return Err(e);
        }
    };
    // SAFETY: reg is this env's live registry; poll is zeroed memory of the
    // size libuv asked for; the epoll fd is open and ours.
    let r = unsafe { uv::uv_poll_init((*reg).uv_loop, poll, epoll.as_raw_fd()) };
    if r != 0 {
        // SAFETY: the handle was never initialised: plain memory to free;
        // the context is unused.
        unsafe {
            libc::free(poll.cast());
            ffi::napi_async_destroy(env.raw, ctx);
        }
        return Err(uv_error(r, "uv_poll_init"));
    }
    // SAFETY: reg is live; only this thread touches it.
    let id = unsafe {
        let id = (*reg).next_id;
        (*reg).next_id += 1;
        id
    };
    let w = Box::into_raw(Box::new(Watch {
        id,
        reg,
        epoll: Some(epoll),
        poll,
        timer: ptr::null_mut(),
        handles: 1,
        handler: None,
        busy: false,
        pending: None,
        closing: false,
        ctx,
    }));
    // SAFETY: poll is an initialised handle; w is live until its last close
    // callback; reg is live.
    unsafe {
        uv::uv_handle_set_data(poll, w.cast());
        (*reg).open_handles += 1;
        (*reg).watches.insert(id, w);
    }
    let started = (|| -> JsResult<()> {
        if let Some(t) = timeout {
            let timer = alloc_handle(uv::UV_TIMER)?;
            // SAFETY: reg is live; timer is zeroed memory of libuv's size.
            let r = unsafe { uv::uv_timer_init((*reg).uv_loop, timer) };
            if r != 0 {
                // SAFETY: never initialised: plain memory.
                unsafe { libc::free(timer.cast()) };
                return Err(uv_error(r, "uv_timer_init"));
            }
            // SAFETY: an initialised handle; w is live; reg is live.
            unsafe {
                uv::uv_handle_set_data(timer, w.cast());
                (*w).timer = timer;
                (*w).handles += 1;
                (*reg).open_handles += 1;
            }
            let ms = t.as_millis().min(u64::MAX as u128) as u64;
            // The loop's clock is read at the start of each iteration; JS may
            // have run for a while since. Count the timeout from now.
            // SAFETY: reg's loop is this thread's live loop; the timer is
            // initialised and on_timer matches uv_timer_cb.
            let r = unsafe {
                uv::uv_update_time((*reg).uv_loop);
                uv::uv_timer_start(timer, Some(on_timer), ms, 0)
            };
            if r != 0 {
                return Err(uv_error(r, "uv_timer_start"));
            }
        }
        if !paused {
            // SAFETY: an initialised poll handle; on_poll matches uv_poll_cb.
            let r = unsafe { uv::uv_poll_start(poll, uv::UV_READABLE, Some(on_poll)) };
            if r != 0 {
                return Err(uv_error(r, "uv_poll_start"));
            }
        }
        Ok(())
    })();
    if let Err(e) = started {
        // SAFETY: w is live and has no handler yet.
        unsafe { close_watch(w, Some(env)) };
        return Err(e);
    }
    Ok(w)
}

fn find(env: Env, id: u64) -> Option<*mut Watch> {
    let reg = lookup_registry(env.raw)?;
    // SAFETY: reg is this env's live registry.
    unsafe { (*reg).watches.get(&id).copied() }
}

/// End watch `id` from outside: its handler settles what is pending
/// (`why`), then the watch closes. False when there is no such watch (it
/// finished already).
pub fn cancel(env: Env, id: u64, why: Why) -> bool {
    let Some(w) = find(env, id) else {
        return false;
    };
    // SAFETY: w is a live watch of this env (in the registry), used on its
    // thread only; no reference to it is held across the handler call.
    unsafe {
        if (*w).busy {
            if (*w).pending.is_none() {
                (*w).pending = Some(Pending::Cancel(why));
            }
            return true;
        }
        run(w, env, |h, env| {
            h.cancel(env, why);
            Flow::Done
        });
        close_watch(w, Some(env));
    }
    true
}

/// Close watch `id` without asking its handler to settle anything (its
/// owner is done with it). False when there is no such watch.
pub fn close(env: Env, id: u64) -> bool {
    let Some(w) = find(env, id) else {
        return false;
    };
    // SAFETY: as in cancel.
    unsafe {
        if (*w).busy {
            (*w).pending = Some(Pending::Close);
        } else {
            close_watch(w, Some(env));
        }
    }
    true
}

/// Stop waiting (back-pressure) until [`resume`]; the watch stays. False
/// when there is no such watch.
pub fn pause(env: Env, id: u64) -> bool {
    let Some(w) = find(env, id) else {
        return false;
    };
    // SAFETY: a live watch's initialised poll handle.
    unsafe { uv::uv_poll_stop((*w).poll) };
    true
}

/// Wait again after [`pause`] (or for a watch made paused).
pub fn resume(env: Env, id: u64) -> JsResult<bool> {
    let Some(w) = find(env, id) else {
        return Ok(false);
    };
    // SAFETY: a live watch's initialised poll handle; on_poll matches.
    let r = unsafe { uv::uv_poll_start((*w).poll, uv::UV_READABLE, Some(on_poll)) };
    if r != 0 {
        return Err(uv_error(r, "uv_poll_start"));
    }
    Ok(true)
}

/// Run one handler method on `w` (not busy, not closing) and apply what
/// was asked meanwhile; true when the watch is done (the caller closes it).
///
/// # Safety
/// `w` is a live watch of `env`'s registry, on its thread.
unsafe fn run(w: *mut Watch, env: Env, f: impl FnOnce(&mut dyn Handler, Env) -> Flow) -> bool {
    // SAFETY: per the contract; the handler box is moved out while it runs,
    // so re-entrant calls (JS calling cancel/close/pause on this watch) see
    // `busy` and leave a note instead of touching it.
    let Some(mut h) = (unsafe { (*w).handler.take() }) else {
        return false;
    };
    // SAFETY: as above.
    unsafe { (*w).busy = true };
    let flow = catch_unwind(AssertUnwindSafe(|| f(&mut *h, env))).unwrap_or_else(|p| {
        let e = panic_error(p);
        let _ = catch_unwind(AssertUnwindSafe(|| h.cancel(env, Why::Failed(e))));
        Flow::Done
    });
    report_exception(env);
    // SAFETY: as above; the handler is back before anything else runs.
    let pending = unsafe {
        (*w).busy = false;
        (*w).handler = Some(h);
        (*w).pending.take()
    };
    match pending {
        Some(Pending::Cancel(why)) if flow == Flow::Wait => {
            // SAFETY: w is live and not busy.
            if let Some(mut h) = unsafe { (*w).handler.take() } {
                let _ = catch_unwind(AssertUnwindSafe(|| h.cancel(env, why)));
                report_exception(env);
                // SAFETY: as above.
                unsafe { (*w).handler = Some(h) };
            }
            true
        }
        Some(_) => true,
        None => flow == Flow::Done,
    }
}

/// A JS exception left pending by a handler (a callback threw) becomes an
/// uncaught exception, as one thrown by an event listener would.
fn report_exception(env: Env) {
    if let Some(e) = env.take_exception() {
        // SAFETY: valid env; e is the exception just taken.
        unsafe { ffi::napi_fatal_exception(env.raw, e.0) };
    }
}

/// Close `w`'s handles, its epoll fd and its handler (which closes the fds
/// it owns) now; the memory goes in the last close callback.
///
/// # Safety
/// `w` is a live watch, on its env's thread, not busy. With `env` None the
/// environment is going away: no Node-API call is made.
unsafe fn close_watch(w: *mut Watch, env: Option<Env>) {
    // SAFETY: per the contract.
    let wr = unsafe { &mut *w };
    if wr.closing {
        return;
    }
    wr.closing = true;
    // SAFETY: the registry outlives its watches.
    unsafe { (*wr.reg).watches.remove(&wr.id) };
    // SAFETY: initialised handles, closed once each; on_closed matches
    // uv_close_cb. uv_close on a poll handle stops it and removes the epoll
    // fd from libuv's epoll before it returns, so closing the fd right
    // after is safe.
    unsafe {
        uv::uv_close(wr.poll, Some(on_closed));
        if !wr.timer.is_null() {
            uv::uv_close(wr.timer, Some(on_closed));
        }
    }
    wr.epoll = None;
    if let Some(mut h) = wr.handler.take() {
        if let Some(env) = env {
            let _ = catch_unwind(AssertUnwindSafe(|| h.release(env)));
        }
        drop(h);
    }
    if let Some(env) = env {
        // SAFETY: the context was made in start and is destroyed once.
        unsafe { ffi::napi_async_destroy(env.raw, wr.ctx) };
    }
}

/// Open the scopes a call into JS from the loop needs, run `f`, close them
/// (which runs the microtasks and nextTicks `f` queued), and close the
/// watch when `f` says it is done.
///
/// # Safety
/// `w` is a live watch; called from a libuv callback on its env's thread.
unsafe fn from_loop(w: *mut Watch, f: impl FnOnce(Env) -> bool) {
    // SAFETY: per the contract: the registry is live and its env belongs to
    // this thread; no other Node-API callback is running.
    let (raw, ctx) = unsafe { ((*(*w).reg).env, (*w).ctx) };
    // SAFETY: as above: env is valid on this thread for these calls.
    let env = unsafe { Env::from_raw(raw) };
    let mut scope: ffi::napi_handle_scope = ptr::null_mut();
    // SAFETY: valid env; the out-pointer is a local.
    if unsafe { ffi::napi_open_handle_scope(raw, &mut scope) } != ffi::NAPI_OK {
        return;
    }
    let mut cb_scope: ffi::napi_callback_scope = ptr::null_mut();
    // SAFETY: valid env and a live async context; the out-pointer is a local.
    let opened = unsafe { ffi::napi_open_callback_scope(raw, ptr::null_mut(), ctx, &mut cb_scope) };
    let done = f(env);
    // SAFETY: the callback scope opened above, closed before the watch (and
    // its async context) is: closing it runs JS, which may close the watch
    // itself (close_watch then does nothing).
    unsafe {
        if opened == ffi::NAPI_OK {
            ffi::napi_close_callback_scope(raw, cb_scope);
        }
        if done {
            close_watch(w, Some(env));
        }
        ffi::napi_close_handle_scope(raw, scope);
    }
}

unsafe extern "C" fn on_poll(handle: *mut uv_poll_t, _status: c_int, _events: c_int) {
    // SAFETY: the data of every poll handle made in start is its Watch,
    // live until the handle's close callback, which has not run (a closing
    // handle gets no more callbacks).
    let w = unsafe { uv::uv_handle_get_data(handle) }.cast::<Watch>();
    // SAFETY: as above. A status < 0 is handled like readiness: the
    // handler's syscall reports the error.
    unsafe {
        if (*w).closing || (*w).busy {
            return;
        }
        from_loop(w, |env| run(w, env, |h, env| h.ready(env)));
    }
}

unsafe extern "C" fn on_timer(handle: *mut uv_timer_t) {
    // SAFETY: as in on_poll, for the timer handle.
    let w = unsafe { uv::uv_handle_get_data(handle) }.cast::<Watch>();
    // SAFETY: as in on_poll.
    unsafe {
        if (*w).closing || (*w).busy {
            return;
        }
        from_loop(w, |env| run(w, env, |h, env| h.timeout(env)));
    }
}

unsafe extern "C" fn on_closed(handle: *mut uv_handle_t) {
    // SAFETY: the data is the Watch, freed only after its last handle's
    // close callback, which is this one at the latest.
    let w = unsafe { uv::uv_handle_get_data(handle) }.cast::<Watch>();
    // SAFETY: libuv is done with the handle; its memory came from calloc.
    unsafe { libc::free(handle.cast()) };
    // SAFETY: w and its registry are live (see above and finish_teardown).
    unsafe {
        let reg = (*w).reg;
        (*w).handles -= 1;
        (*reg).open_handles -= 1;
        if (*w).handles == 0 {
            drop(Box::from_raw(w));
        }
        if (*reg).tearing_down && (*reg).open_handles == 0 {
            finish_teardown(reg);
        }
    }
}

/// The environment is going away (async cleanup hook): close every watch
/// without touching JS; the hook is removed once the last handle closed.
unsafe extern "C" fn teardown(_handle: napi_async_cleanup_hook_handle, arg: *mut c_void) {
    let reg = arg.cast::<Registry>();
    // SAFETY: arg is the registry registered with this hook, live until
    // finish_teardown; collected first, as closing edits the map.
    let watches: Vec<*mut Watch> = unsafe {
        (*reg).tearing_down = true;
        (*reg).watches.values().copied().collect()
    };
    for w in watches {
        // SAFETY: each is a live watch; JS cannot run now, so none is busy.
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe { close_watch(w, None) }));
    }
    // SAFETY: as above.
    unsafe {
        if (*reg).open_handles == 0 {
            finish_teardown(reg);
        }
    }
}

/// Remove the cleanup hook (Node may now finish the environment) and free
/// the registry.
///
/// # Safety
/// `reg` is a live registry whose handles are all closed.
unsafe fn finish_teardown(reg: *mut Registry) {
    // SAFETY: per the contract.
    let reg = unsafe { Box::from_raw(reg) };
    REGISTRIES.with(|r| r.borrow_mut().remove(&(reg.env as usize)));
    // SAFETY: the hook registered in registry(), removed once, here.
    unsafe { ffi::napi_remove_async_cleanup_hook(reg.hook) };
}
