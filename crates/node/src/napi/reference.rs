//! [`Ref`]: a strong reference that keeps a JS value (a callback) alive
//! across calls, deleted on the JS thread, or freed with its environment.

use std::ptr;

use super::env::{Env, Value};
use super::ffi::{self, napi_ref};
use crate::error::JsResult;

/// A strong reference made by [`Env::reference`].
pub struct Ref(napi_ref);

impl Env {
    /// Keep `v` alive until [`Ref::delete`] (or the environment ends).
    pub fn reference(&self, v: Value) -> JsResult<Ref> {
        let mut r: napi_ref = ptr::null_mut();
        // SAFETY: valid env and handle; the out-pointer is a local.
        self.check(unsafe { ffi::napi_create_reference(self.raw, v.0, 1, &mut r) })?;
        Ok(Ref(r))
    }
}

impl Ref {
    /// The value, in the env that made the reference.
    pub fn value(&self, env: Env) -> Option<Value> {
        let mut v: ffi::napi_value = ptr::null_mut();
        // SAFETY: valid env; a live reference made in it; the out-pointer
        // is a local.
        let status = unsafe { ffi::napi_get_reference_value(env.raw, self.0, &mut v) };
        (status == ffi::NAPI_OK && !v.is_null()).then_some(Value(v))
    }

    /// Delete the reference (once), on the JS thread of its env.
    pub fn delete(self, env: Env) {
        // SAFETY: a live reference made in env, deleted once (self is consumed).
        unsafe { ffi::napi_delete_reference(env.raw, self.0) };
    }
}
