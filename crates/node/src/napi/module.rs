//! The addon's entry points: Node calls `napi_register_module_v1` once per
//! environment (the main thread and each Worker) and the binding's
//! [`crate::register`] fills `exports`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::env::{Env, Value};
use super::ffi::{napi_env, napi_value};
use crate::error;

/// # Safety
/// Called by Node with a valid env and exports object.
#[no_mangle]
pub unsafe extern "C" fn napi_register_module_v1(raw: napi_env, exports: napi_value) -> napi_value {
    // SAFETY: Node passes the env of the environment being initialised, for
    // the duration of this call.
    let env = unsafe { Env::from_raw(raw) };
    let exports = Value(exports);
    let registered = catch_unwind(AssertUnwindSafe(|| match crate::register(env, exports) {
        Ok(()) => true,
        Err(e) => {
            error::throw(env, e);
            false
        }
    }));
    match registered {
        Ok(true) => exports.0,
        _ => std::ptr::null_mut(),
    }
}

/// The Node-API version this addon is written against (type tags: 8).
#[no_mangle]
pub extern "C" fn node_api_module_get_api_version_v1() -> i32 {
    8
}
