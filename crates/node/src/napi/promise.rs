//! [`Deferred`]: the settling end of a JS promise, settled once, on the JS
//! thread, with a value or an error built through the binding's error path.

use std::ptr;

use super::env::{Env, Value};
use super::ffi::{self, napi_deferred};
use crate::error::{self, JsError, JsResult};

/// The settling end of a promise made by [`Env::promise`]. Settling it
/// frees it; one never settled is freed with its environment.
pub struct Deferred(napi_deferred);

impl Env {
    /// A new promise and its settling end.
    pub fn promise(&self) -> JsResult<(Deferred, Value)> {
        let mut deferred: napi_deferred = ptr::null_mut();
        // SAFETY: valid env; the deferred out-pointer is a local; `o` is
        // make's out-slot.
        let promise =
            self.make(|o| unsafe { ffi::napi_create_promise(self.raw, &mut deferred, o) })?;
        Ok((Deferred(deferred), promise))
    }
}

impl Deferred {
    /// Resolve with `Ok`'s value or reject with `Err`'s error (built through
    /// the error path; a JS exception pending instead rejects in its place).
    pub fn settle(self, env: Env, outcome: JsResult<Value>) {
        match outcome {
            // SAFETY: the deferred is settled exactly once (self is
            // consumed), on the JS thread of the env that made it.
            Ok(v) => unsafe { ffi::napi_resolve_deferred(env.raw, self.0, v.0) },
            // SAFETY: as above.
            Err(e) => unsafe { ffi::napi_reject_deferred(env.raw, self.0, rejection(env, e).0) },
        };
    }
}

/// The value to reject with: `err` built through the error path, or the JS
/// exception that is pending instead (a getter, makeError...), taken so it
/// rejects the promise rather than escaping as uncaught.
pub(super) fn rejection(env: Env, err: JsError) -> Value {
    let built = error::value_of(env, err);
    if let Some(v) = env.take_exception() {
        return v;
    }
    built
        .or_else(|| env.undefined().ok())
        .unwrap_or(Value(ptr::null_mut()))
}
