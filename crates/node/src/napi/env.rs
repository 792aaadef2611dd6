//! [`Env`] and [`Value`]: a `napi_env` borrowed for one callback and the
//! `napi_value` handles made in it, with the constructors, property access
//! and exception handling the binding uses.

use std::ffi::{c_void, CStr};
use std::marker::PhantomData;
use std::ptr;

use super::ffi::{self, napi_env, napi_status, napi_value, ValueType};
use crate::error::{JsError, JsResult};

/// A JS value handle, valid until the current callback returns. Transparent:
/// a `&[Value]` is an array of `napi_value` (see [`Env::call`]).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Value(pub(super) napi_value);

/// Which constructor [`Env::error`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Error,
    TypeError,
    RangeError,
}

/// A `napi_env` borrowed for one callback (or one async completion, or one
/// module registration). Not `Send`: it never leaves the JS thread.
#[derive(Clone, Copy)]
pub struct Env {
    pub(super) raw: napi_env,
    _not_send: PhantomData<*mut ()>,
}

impl Env {
    /// # Safety
    /// `raw` must be the env Node passed to the callback that is running,
    /// and the `Env` must not outlive that callback.
    pub unsafe fn from_raw(raw: napi_env) -> Self {
        Env {
            raw,
            _not_send: PhantomData,
        }
    }

    /// A Node-API status as a result: a pending JS exception is
    /// [`JsError::Pending`] (it propagates as is), anything else
    /// `ERR_VMTAP_NAPI`.
    pub(super) fn check(&self, status: napi_status) -> JsResult<()> {
        if status == ffi::NAPI_OK {
            return Ok(());
        }
        if status == ffi::NAPI_PENDING_EXCEPTION || self.exception_pending() {
            Err(JsError::Pending)
        } else {
            Err(JsError::napi(status))
        }
    }

    /// Run a Node-API constructor writing one value.
    pub(super) fn make(&self, f: impl FnOnce(*mut napi_value) -> napi_status) -> JsResult<Value> {
        let mut out: napi_value = ptr::null_mut();
        self.check(f(&mut out))?;
        Ok(Value(out))
    }

    pub fn exception_pending(&self) -> bool {
        let mut pending = false;
        // SAFETY: valid env; the out-pointer is a local.
        let status = unsafe { ffi::napi_is_exception_pending(self.raw, &mut pending) };
        status == ffi::NAPI_OK && pending
    }

    /// Take the pending JS exception, if any (the engine no longer throws it).
    pub fn take_exception(&self) -> Option<Value> {
        if !self.exception_pending() {
            return None;
        }
        let mut v: napi_value = ptr::null_mut();
        // SAFETY: valid env; the out-pointer is a local.
        let status = unsafe { ffi::napi_get_and_clear_last_exception(self.raw, &mut v) };
        (status == ffi::NAPI_OK && !v.is_null()).then_some(Value(v))
    }

    /// Throw `v` from the current callback.
    pub fn throw_value(&self, v: Value) {
        // SAFETY: valid env and handle.
        unsafe { ffi::napi_throw(self.raw, v.0) };
    }

    pub fn undefined(&self) -> JsResult<Value> {
        // SAFETY: valid env; `o` is make's out-slot.
        self.make(|o| unsafe { ffi::napi_get_undefined(self.raw, o) })
    }

    pub fn null(&self) -> JsResult<Value> {
        // SAFETY: valid env; `o` is make's out-slot.
        self.make(|o| unsafe { ffi::napi_get_null(self.raw, o) })
    }

    pub fn boolean(&self, b: bool) -> JsResult<Value> {
        // SAFETY: valid env; `o` is make's out-slot.
        self.make(|o| unsafe { ffi::napi_get_boolean(self.raw, b, o) })
    }

    pub fn int32(&self, n: i32) -> JsResult<Value> {
        // SAFETY: valid env; `o` is make's out-slot.
        self.make(|o| unsafe { ffi::napi_create_int32(self.raw, n, o) })
    }

    pub fn uint32(&self, n: u32) -> JsResult<Value> {
        // SAFETY: valid env; `o` is make's out-slot.
        self.make(|o| unsafe { ffi::napi_create_uint32(self.raw, n, o) })
    }

    pub fn double(&self, n: f64) -> JsResult<Value> {
        // SAFETY: valid env; `o` is make's out-slot.
        self.make(|o| unsafe { ffi::napi_create_double(self.raw, n, o) })
    }

    pub fn string(&self, s: &str) -> JsResult<Value> {
        // SAFETY: valid env; the pointer and length describe `s`, which
        // Node copies; `o` is make's out-slot.
        self.make(|o| unsafe {
            ffi::napi_create_string_utf8(self.raw, s.as_ptr().cast(), s.len(), o)
        })
    }

    pub fn object(&self) -> JsResult<Value> {
        // SAFETY: valid env; `o` is make's out-slot.
        self.make(|o| unsafe { ffi::napi_create_object(self.raw, o) })
    }

    /// A new array of `len` holes.
    pub fn array(&self, len: usize) -> JsResult<Value> {
        // SAFETY: valid env; `o` is make's out-slot.
        self.make(|o| unsafe { ffi::napi_create_array_with_length(self.raw, len, o) })
    }

    /// A JS array of int32 values.
    pub fn int_array(&self, items: &[i32]) -> JsResult<Value> {
        let arr = self.array(items.len())?;
        for (i, &n) in items.iter().enumerate() {
            self.set_element(arr, i as u32, self.int32(n)?)?;
        }
        Ok(arr)
    }

    /// A new Buffer holding a copy of `bytes`.
    pub fn buffer(&self, bytes: &[u8]) -> JsResult<Value> {
        let mut out_data: *mut c_void = ptr::null_mut();
        // SAFETY: valid env; the pointer and length describe `bytes`, which
        // Node copies; both out-pointers are locals.
        self.make(|o| unsafe {
            ffi::napi_create_buffer_copy(
                self.raw,
                bytes.len(),
                bytes.as_ptr().cast(),
                &mut out_data,
                o,
            )
        })
    }

    /// A new zero-filled Buffer of `len` bytes and where its bytes are (they
    /// stay there: a Buffer's memory does not move, though JS may detach it,
    /// see [`Env::buffer_span`]).
    pub fn new_buffer(&self, len: usize) -> JsResult<(Value, *mut u8)> {
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: valid env; both out-pointers are locals / make's out-slot.
        let v = self.make(|o| unsafe { ffi::napi_create_buffer(self.raw, len, &mut data, o) })?;
        Ok((v, data.cast()))
    }

    /// Where a Buffer's bytes are and how many there are now (a detached
    /// one has none).
    pub fn buffer_span(&self, v: Value) -> JsResult<(*mut u8, usize)> {
        let mut data: *mut c_void = ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: valid env and handle; both out-pointers are locals.
        self.check(unsafe { ffi::napi_get_buffer_info(self.raw, v.0, &mut data, &mut len) })?;
        Ok((data.cast(), len))
    }

    /// A new `Error`, `TypeError` or `RangeError` with `code` and `message`.
    pub fn error(&self, class: ErrorClass, code: &str, message: &str) -> JsResult<Value> {
        let (c, m) = (self.string(code)?, self.string(message)?);
        let create = match class {
            ErrorClass::Error => ffi::napi_create_error,
            ErrorClass::TypeError => ffi::napi_create_type_error,
            ErrorClass::RangeError => ffi::napi_create_range_error,
        };
        // SAFETY: valid env; code and message are strings made above; `o`
        // is make's out-slot.
        self.make(|o| unsafe { create(self.raw, c.0, m.0, o) })
    }

    pub fn set(&self, obj: Value, name: &CStr, value: Value) -> JsResult<()> {
        // SAFETY: valid env and handles; name is NUL-terminated.
        self.check(unsafe { ffi::napi_set_named_property(self.raw, obj.0, name.as_ptr(), value.0) })
    }

    /// `obj[name]`; runs getters and Proxy traps (their exception is
    /// [`JsError::Pending`]).
    pub fn get(&self, obj: Value, name: &CStr) -> JsResult<Value> {
        // SAFETY: valid env and handle; name is NUL-terminated; `o` is
        // make's out-slot.
        self.make(|o| unsafe { ffi::napi_get_named_property(self.raw, obj.0, name.as_ptr(), o) })
    }

    pub fn set_element(&self, arr: Value, index: u32, v: Value) -> JsResult<()> {
        // SAFETY: valid env and handles.
        self.check(unsafe { ffi::napi_set_element(self.raw, arr.0, index, v.0) })
    }

    pub fn element(&self, arr: Value, index: u32) -> JsResult<Value> {
        // SAFETY: valid env and handle; `o` is make's out-slot.
        self.make(|o| unsafe { ffi::napi_get_element(self.raw, arr.0, index, o) })
    }

    pub fn freeze(&self, obj: Value) -> JsResult<()> {
        // SAFETY: valid env and handle.
        self.check(unsafe { ffi::napi_object_freeze(self.raw, obj.0) })
    }

    pub fn type_of(&self, v: Value) -> JsResult<ValueType> {
        let mut t = ValueType::Undefined;
        // SAFETY: valid env and handle; the out-pointer is a local of the
        // enum napi_typeof writes.
        self.check(unsafe { ffi::napi_typeof(self.raw, v.0, &mut t) })?;
        Ok(t)
    }

    pub fn is_array(&self, v: Value) -> JsResult<bool> {
        let mut b = false;
        // SAFETY: valid env and handle; the out-pointer is a local.
        self.check(unsafe { ffi::napi_is_array(self.raw, v.0, &mut b) })?;
        Ok(b)
    }

    /// Call `f(...args)` with `this` undefined. A JS exception it throws
    /// stays pending and is [`JsError::Pending`].
    pub fn call(&self, f: Value, args: &[Value]) -> JsResult<Value> {
        let recv = self.undefined()?;
        let argv: *const napi_value = args.as_ptr().cast();
        // SAFETY: valid env and handles; Value is repr(transparent) over
        // napi_value, so argv points at args.len() napi_values; `o` is
        // make's out-slot.
        self.make(|o| unsafe {
            ffi::napi_call_function(self.raw, recv.0, f.0, args.len(), argv, o)
        })
    }
}
