//! The few libuv functions the fd watcher uses ([`super::watch`]), declared
//! by hand from Node's `uv.h` (libuv 1.x, whose ABI is stable within the
//! major version). Node exports libuv's symbols to addons, so they resolve
//! against the `node` binary at load time, like the Node-API functions in
//! [`super::ffi`]. Handle structs are opaque here: their memory is sized with
//! `uv_handle_size` and their user pointer goes through
//! `uv_handle_set_data`/`uv_handle_get_data`, so no struct layout is assumed.
//! Nothing outside `napi/` calls these.

#![allow(non_camel_case_types)]

use std::ffi::{c_int, c_void};

/// Opaque libuv types: only ever used behind pointers.
macro_rules! opaque {
    ($($name:ident),*) => {
        $(#[repr(C)]
        pub struct $name {
            _p: [u8; 0],
        })*
    };
}
opaque!(uv_loop_t, uv_handle_t);

/// `uv_poll_t` and `uv_timer_t` start with the `uv_handle_t` fields; they
/// are passed to the handle functions as `uv_handle_t`.
pub type uv_poll_t = uv_handle_t;
pub type uv_timer_t = uv_handle_t;

/// `uv_handle_type` values of `UV_HANDLE_TYPE_MAP` (uv.h): UNKNOWN is 0,
/// then ASYNC, CHECK, FS_EVENT, FS_POLL, HANDLE, IDLE, NAMED_PIPE, POLL,
/// PREPARE, PROCESS, STREAM, TCP, TIMER...
pub type uv_handle_type = c_int;
pub const UV_POLL: uv_handle_type = 8;
pub const UV_TIMER: uv_handle_type = 13;

/// `enum uv_poll_event`.
pub const UV_READABLE: c_int = 1;

pub type uv_poll_cb = Option<unsafe extern "C" fn(*mut uv_poll_t, c_int, c_int)>;
pub type uv_timer_cb = Option<unsafe extern "C" fn(*mut uv_timer_t)>;
pub type uv_close_cb = Option<unsafe extern "C" fn(*mut uv_handle_t)>;

extern "C" {
    pub fn uv_handle_size(t: uv_handle_type) -> usize;
    pub fn uv_handle_set_data(handle: *mut uv_handle_t, data: *mut c_void);
    pub fn uv_handle_get_data(handle: *const uv_handle_t) -> *mut c_void;
    pub fn uv_close(handle: *mut uv_handle_t, close_cb: uv_close_cb);
    pub fn uv_poll_init(loop_: *mut uv_loop_t, handle: *mut uv_poll_t, fd: c_int) -> c_int;
    pub fn uv_poll_start(handle: *mut uv_poll_t, events: c_int, cb: uv_poll_cb) -> c_int;
    pub fn uv_poll_stop(handle: *mut uv_poll_t) -> c_int;
    pub fn uv_update_time(loop_: *mut uv_loop_t);
    pub fn uv_timer_init(loop_: *mut uv_loop_t, handle: *mut uv_timer_t) -> c_int;
    pub fn uv_timer_start(
        handle: *mut uv_timer_t,
        cb: uv_timer_cb,
        timeout: u64,
        repeat: u64,
    ) -> c_int;
}
