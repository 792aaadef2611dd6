//! Type-tagged externals: boxed Rust data owned by a JS value, handed to its
//! [`Finalize`] when the value is garbage-collected (or its environment
//! shuts down).

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use super::env::{Env, Value};
use super::ffi::{self, napi_env, napi_type_tag, ValueType};
use crate::error::{JsError, JsResult};

/// Data whose external needs the environment when it is collected.
pub trait Finalize: Sized + 'static {
    /// Called once, on the JS thread, when the external is collected or
    /// its environment shuts down (as the plain drop otherwise is).
    fn finalize(self: Box<Self>, env: Env);
}

/// Hands the box behind an external made by [`Env::external`] to
/// its [`Finalize::finalize`].
unsafe extern "C" fn finalize_with<T: Finalize>(
    env: napi_env,
    data: *mut c_void,
    _hint: *mut c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: data came from Box::into_raw in Env::external::<T>,
        // and Node finalizes each external once, on its JS thread, with this
        // env.
        let data = unsafe { Box::from_raw(data.cast::<T>()) };
        // SAFETY: Node passes the live env of the external's JS thread.
        data.finalize(unsafe { Env::from_raw(env) });
    }));
}

impl Env {
    /// Box `data` into a JS external tagged with `tag`; when the external is
    /// collected (or its environment shuts down) the box goes to
    /// [`Finalize::finalize`].
    pub fn external<T: Finalize>(&self, data: T, tag: &'static napi_type_tag) -> JsResult<Value> {
        let raw = Box::into_raw(Box::new(data));
        // SAFETY: valid env; raw is a live box that Node owns from here on
        // and hands to finalize::<T>; `o` is make's out-slot.
        let made = self.make(|o| unsafe {
            ffi::napi_create_external(
                self.raw,
                raw.cast(),
                Some(finalize_with::<T>),
                ptr::null_mut(),
                o,
            )
        });
        let v = match made {
            Ok(v) => v,
            Err(e) => {
                // SAFETY: Node did not take the box; it is still ours.
                drop(unsafe { Box::from_raw(raw) });
                return Err(e);
            }
        };
        // SAFETY: valid env, a fresh external, a static tag.
        self.check(unsafe { ffi::napi_type_tag_object(self.raw, v.0, tag) })?;
        Ok(v)
    }

    /// The data of an external made by [`Env::external`] with the same tag;
    /// anything else is `ERR_INVALID_ARG_TYPE`.
    pub fn external_ref<T: 'static>(
        &self,
        v: Value,
        tag: &'static napi_type_tag,
        what: &str,
    ) -> JsResult<&T> {
        let bad = || JsError::arg_type(format!("{what} is not a vmtap handle"));
        if self.type_of(v)? != ValueType::External {
            return Err(bad());
        }
        let mut ok = false;
        // SAFETY: valid env and handle, a static tag; the out-pointer is a local.
        self.check(unsafe { ffi::napi_check_object_type_tag(self.raw, v.0, tag, &mut ok) })?;
        if !ok {
            return Err(bad());
        }
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: v is an external; the out-pointer is a local.
        self.check(unsafe { ffi::napi_get_value_external(self.raw, v.0, &mut data) })?;
        // SAFETY: the tag proves it was made by `external::<T>`; the
        // external (and so the box) lives at least as long as this callback,
        // which the returned reference (tied to `self`) does not outlive.
        Ok(unsafe { &*data.cast::<T>() })
    }
}
