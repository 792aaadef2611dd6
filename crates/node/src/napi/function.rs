//! Plain Rust functions as JS functions: [`Env::function`] wraps a
//! [`RustFn`] in the C [`trampoline`], which fetches the arguments, calls
//! it, throws its error through the binding's error path, and catches a
//! panic at the FFI boundary (it becomes `ERR_VMTAP_PANIC`, never an unwind
//! into Node).

use std::any::Any;
use std::ffi::{c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use super::env::{Env, Value};
use super::ffi::{self, napi_callback_info, napi_env, napi_value};
use crate::error::{self, JsError, JsResult};

/// The signature of a binding function.
pub type RustFn = fn(Env, &[Value]) -> JsResult<Value>;

/// The most arguments a binding function receives (more are ignored).
const MAX_ARGS: usize = 10;

/// What a caught panic said.
pub fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// The error a caught panic becomes.
pub fn panic_error(p: Box<dyn Any + Send>) -> JsError {
    JsError::panic(panic_message(&*p))
}

impl Env {
    /// A JS function calling `f`.
    pub fn function(&self, name: &str, f: RustFn) -> JsResult<Value> {
        // SAFETY: valid env; name points at name.len() bytes; the callback
        // data is the fn pointer `trampoline` turns back into a RustFn; `o`
        // is make's out-slot.
        self.make(|o| unsafe {
            ffi::napi_create_function(
                self.raw,
                name.as_ptr().cast(),
                name.len(),
                Some(trampoline),
                f as *mut c_void,
                o,
            )
        })
    }

    /// Export `f` as `name` on `obj`.
    pub fn export(&self, obj: Value, name: &CStr, f: RustFn) -> JsResult<()> {
        let func = self.function(name.to_str().unwrap_or("fn"), f)?;
        self.set(obj, name, func)
    }
}

/// The C callback behind every function made by [`Env::function`].
unsafe extern "C" fn trampoline(raw: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: Node passes the env of this callback, which `env` does not
    // outlive.
    let env = unsafe { Env::from_raw(raw) };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut argc = MAX_ARGS;
        let mut argv: [napi_value; MAX_ARGS] = [ptr::null_mut(); MAX_ARGS];
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: valid env and callback info; argv has room for argc values;
        // the other out-pointers are locals.
        env.check(unsafe {
            ffi::napi_get_cb_info(
                raw,
                info,
                &mut argc,
                argv.as_mut_ptr(),
                ptr::null_mut(),
                &mut data,
            )
        })?;
        // SAFETY: data is the RustFn that Env::function stored as this
        // function's callback data; fn pointers and data pointers have the
        // same size on every target Node runs on.
        let f: RustFn = unsafe { std::mem::transmute::<*mut c_void, RustFn>(data) };
        // On the stack: no malloc and free per call (perf showed them in
        // every writeFrame).
        let args: [Value; MAX_ARGS] = argv.map(Value);
        f(env, &args[..argc.min(MAX_ARGS)])
    }));
    match result.unwrap_or_else(|p| Err(panic_error(p))) {
        Ok(v) => v.0,
        Err(e) => {
            // Building the error runs JS (makeError); nothing may unwind
            // out of this callback either way.
            let _ = catch_unwind(AssertUnwindSafe(|| error::throw(env, e)));
            ptr::null_mut()
        }
    }
}
