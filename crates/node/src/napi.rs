//! A minimal, hand-written Node-API layer.
//!
//! The `napi`/`napi-derive` crates are not reachable from these machines, so
//! the few C functions of Node-API that vmtap needs are declared here (from
//! Node's `node_api.h` / `js_native_api.h`; they resolve against the `node`
//! binary when the addon is loaded) and wrapped in a small safe API:
//!
//! * [`Env`] — a `napi_env` for the duration of one callback, with the value
//!   constructors and accessors the binding uses;
//! * [`Value`] — a `napi_value` handle, valid in the current handle scope;
//! * [`JsError`] — what a binding function returns to throw;
//! * [`function`] / [`trampoline`] — turning a plain Rust
//!   `fn(Env, &[Value]) -> JsResult<Value>` into a JS function, with panics
//!   caught at the FFI boundary;
//! * [`Env::external`] / [`Env::external_ref`] — type-tagged boxed Rust data;
//! * [`AsyncTask`] — run a closure on the libuv pool and settle a promise.
//!
//! Everything `unsafe` about Node-API lives in this file. To move to the
//! `napi` crate later, replace this module; `lib.rs` only uses the wrappers.
//! Node-API version 8 (type tags) is the highest used.

#![allow(non_camel_case_types)]
// A small but complete layer: not every wrapper is used by every caller.
#![allow(dead_code)]

use std::any::Any;
use std::ffi::{c_char, c_void, CStr};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

pub type napi_status = i32;
pub const NAPI_OK: napi_status = 0;
pub const NAPI_PENDING_EXCEPTION: napi_status = 10;

/// Opaque Node-API handle targets: only ever used behind pointers.
macro_rules! opaque {
    ($($name:ident),*) => {
        $(#[repr(C)]
        pub struct $name {
            _p: [u8; 0],
        })*
    };
}
opaque!(
    napi_env__,
    napi_value__,
    napi_callback_info__,
    napi_deferred__,
    napi_async_work__
);

pub type napi_env = *mut napi_env__;
pub type napi_value = *mut napi_value__;
pub type napi_callback_info = *mut napi_callback_info__;
pub type napi_deferred = *mut napi_deferred__;
pub type napi_async_work = *mut napi_async_work__;
pub type napi_callback = Option<unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value>;
pub type napi_finalize = Option<unsafe extern "C" fn(napi_env, *mut c_void, *mut c_void)>;
pub type napi_async_execute_callback = Option<unsafe extern "C" fn(napi_env, *mut c_void)>;
pub type napi_async_complete_callback =
    Option<unsafe extern "C" fn(napi_env, napi_status, *mut c_void)>;

#[repr(C)]
pub struct napi_type_tag {
    pub lower: u64,
    pub upper: u64,
}

/// `napi_valuetype`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Undefined = 0,
    Null = 1,
    Boolean = 2,
    Number = 3,
    String = 4,
    Symbol = 5,
    Object = 6,
    Function = 7,
    External = 8,
    BigInt = 9,
}

extern "C" {
    fn napi_get_undefined(env: napi_env, result: *mut napi_value) -> napi_status;
    fn napi_get_null(env: napi_env, result: *mut napi_value) -> napi_status;
    fn napi_get_boolean(env: napi_env, value: bool, result: *mut napi_value) -> napi_status;
    fn napi_create_object(env: napi_env, result: *mut napi_value) -> napi_status;
    fn napi_create_array_with_length(
        env: napi_env,
        length: usize,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_create_int32(env: napi_env, value: i32, result: *mut napi_value) -> napi_status;
    fn napi_create_uint32(env: napi_env, value: u32, result: *mut napi_value) -> napi_status;
    fn napi_create_double(env: napi_env, value: f64, result: *mut napi_value) -> napi_status;
    fn napi_create_string_utf8(
        env: napi_env,
        s: *const c_char,
        length: usize,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_create_function(
        env: napi_env,
        name: *const c_char,
        length: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_create_error(
        env: napi_env,
        code: napi_value,
        msg: napi_value,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_create_type_error(
        env: napi_env,
        code: napi_value,
        msg: napi_value,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_create_range_error(
        env: napi_env,
        code: napi_value,
        msg: napi_value,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_throw(env: napi_env, error: napi_value) -> napi_status;
    fn napi_is_exception_pending(env: napi_env, result: *mut bool) -> napi_status;
    fn napi_get_cb_info(
        env: napi_env,
        cbinfo: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this_arg: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;
    fn napi_typeof(env: napi_env, value: napi_value, result: *mut ValueType) -> napi_status;
    fn napi_get_value_double(env: napi_env, value: napi_value, result: *mut f64) -> napi_status;
    fn napi_get_value_bool(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_get_value_string_utf8(
        env: napi_env,
        value: napi_value,
        buf: *mut c_char,
        bufsize: usize,
        result: *mut usize,
    ) -> napi_status;
    fn napi_set_named_property(
        env: napi_env,
        object: napi_value,
        name: *const c_char,
        value: napi_value,
    ) -> napi_status;
    fn napi_get_named_property(
        env: napi_env,
        object: napi_value,
        name: *const c_char,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_set_element(
        env: napi_env,
        object: napi_value,
        index: u32,
        value: napi_value,
    ) -> napi_status;
    fn napi_get_element(
        env: napi_env,
        object: napi_value,
        index: u32,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_get_array_length(env: napi_env, value: napi_value, result: *mut u32) -> napi_status;
    fn napi_is_array(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_create_external(
        env: napi_env,
        data: *mut c_void,
        finalize_cb: napi_finalize,
        finalize_hint: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_get_value_external(
        env: napi_env,
        value: napi_value,
        result: *mut *mut c_void,
    ) -> napi_status;
    fn napi_type_tag_object(
        env: napi_env,
        value: napi_value,
        type_tag: *const napi_type_tag,
    ) -> napi_status;
    fn napi_check_object_type_tag(
        env: napi_env,
        value: napi_value,
        type_tag: *const napi_type_tag,
        result: *mut bool,
    ) -> napi_status;
    fn napi_object_freeze(env: napi_env, object: napi_value) -> napi_status;
    fn napi_is_buffer(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_get_buffer_info(
        env: napi_env,
        value: napi_value,
        data: *mut *mut c_void,
        length: *mut usize,
    ) -> napi_status;
    fn napi_create_buffer_copy(
        env: napi_env,
        length: usize,
        data: *const c_void,
        result_data: *mut *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_create_promise(
        env: napi_env,
        deferred: *mut napi_deferred,
        promise: *mut napi_value,
    ) -> napi_status;
    fn napi_resolve_deferred(
        env: napi_env,
        deferred: napi_deferred,
        resolution: napi_value,
    ) -> napi_status;
    fn napi_reject_deferred(
        env: napi_env,
        deferred: napi_deferred,
        rejection: napi_value,
    ) -> napi_status;
    fn napi_create_async_work(
        env: napi_env,
        async_resource: napi_value,
        async_resource_name: napi_value,
        execute: napi_async_execute_callback,
        complete: napi_async_complete_callback,
        data: *mut c_void,
        result: *mut napi_async_work,
    ) -> napi_status;
    fn napi_delete_async_work(env: napi_env, work: napi_async_work) -> napi_status;
    fn napi_queue_async_work(env: napi_env, work: napi_async_work) -> napi_status;
}

/// A JS value handle, valid until the current callback returns.
#[derive(Clone, Copy)]
pub struct Value(napi_value);

impl Value {
    /// Wrap a handle Node gave us.
    pub fn from_raw(v: napi_value) -> Self {
        Value(v)
    }

    pub fn raw(self) -> napi_value {
        self.0
    }
}

/// What a binding function throws.
#[derive(Debug)]
pub enum JsError {
    /// `TypeError` with a Node-style `code` (`ERR_INVALID_ARG_TYPE`...).
    Type { code: &'static str, message: String },
    /// `RangeError` with a Node-style `code` (`ERR_OUT_OF_RANGE`).
    Range { code: &'static str, message: String },
    /// `Error` with `code` and extra properties, set in order.
    Error {
        code: String,
        message: String,
        props: Vec<(&'static CStr, Prop)>,
    },
    /// An exception is already pending in the engine: just return.
    Pending,
}

/// A primitive property value for [`JsError::Error`].
#[derive(Debug, Clone)]
pub enum Prop {
    Str(String),
    Int(i32),
}

pub type JsResult<T> = Result<T, JsError>;

/// A `napi_env` borrowed for one callback (or one async completion).
#[derive(Clone, Copy)]
pub struct Env {
    raw: napi_env,
    _not_send: PhantomData<*mut ()>,
}

impl Env {
    /// # Safety
    /// `raw` must be the env Node passed to the current callback.
    pub unsafe fn from_raw(raw: napi_env) -> Self {
        Env {
            raw,
            _not_send: PhantomData,
        }
    }

    fn check(&self, status: napi_status) -> JsResult<()> {
        if status == NAPI_OK {
            return Ok(());
        }
        let mut pending = false;
        // SAFETY: valid env; out-pointer to a local.
        unsafe { napi_is_exception_pending(self.raw, &mut pending) };
        if pending || status == NAPI_PENDING_EXCEPTION {
            Err(JsError::Pending)
        } else {
            Err(JsError::Error {
                code: "ERR_VMTAP_NAPI".into(),
                message: format!("internal error: a Node-API call failed with status {status}"),
                props: Vec::new(),
            })
        }
    }

    fn make(&self, f: impl FnOnce(*mut napi_value) -> napi_status) -> JsResult<Value> {
        let mut out: napi_value = ptr::null_mut();
        self.check(f(&mut out))?;
        Ok(Value(out))
    }

    pub fn undefined(&self) -> JsResult<Value> {
        // SAFETY (all value constructors below): valid env, out-pointer to a local.
        self.make(|o| unsafe { napi_get_undefined(self.raw, o) })
    }

    pub fn null(&self) -> JsResult<Value> {
        self.make(|o| unsafe { napi_get_null(self.raw, o) })
    }

    pub fn boolean(&self, b: bool) -> JsResult<Value> {
        self.make(|o| unsafe { napi_get_boolean(self.raw, b, o) })
    }

    pub fn int32(&self, n: i32) -> JsResult<Value> {
        self.make(|o| unsafe { napi_create_int32(self.raw, n, o) })
    }

    pub fn uint32(&self, n: u32) -> JsResult<Value> {
        self.make(|o| unsafe { napi_create_uint32(self.raw, n, o) })
    }

    pub fn double(&self, n: f64) -> JsResult<Value> {
        self.make(|o| unsafe { napi_create_double(self.raw, n, o) })
    }

    pub fn string(&self, s: &str) -> JsResult<Value> {
        self.make(|o| unsafe { napi_create_string_utf8(self.raw, s.as_ptr().cast(), s.len(), o) })
    }

    pub fn object(&self) -> JsResult<Value> {
        self.make(|o| unsafe { napi_create_object(self.raw, o) })
    }

    /// A JS array of int32 values.
    pub fn int_array(&self, items: &[i32]) -> JsResult<Value> {
        let arr =
            self.make(|o| unsafe { napi_create_array_with_length(self.raw, items.len(), o) })?;
        for (i, &n) in items.iter().enumerate() {
            let v = self.int32(n)?;
            // SAFETY: valid env and handles.
            self.check(unsafe { napi_set_element(self.raw, arr.0, i as u32, v.0) })?;
        }
        Ok(arr)
    }

    pub fn set(&self, obj: Value, name: &CStr, value: Value) -> JsResult<()> {
        // SAFETY: valid env and handles; name is NUL-terminated.
        self.check(unsafe { napi_set_named_property(self.raw, obj.0, name.as_ptr(), value.0) })
    }

    pub fn get(&self, obj: Value, name: &CStr) -> JsResult<Value> {
        self.make(|o| unsafe { napi_get_named_property(self.raw, obj.0, name.as_ptr(), o) })
    }

    pub fn freeze(&self, obj: Value) -> JsResult<()> {
        // SAFETY: valid env and handle.
        self.check(unsafe { napi_object_freeze(self.raw, obj.0) })
    }

    pub fn type_of(&self, v: Value) -> JsResult<ValueType> {
        let mut t = ValueType::Undefined;
        // SAFETY: valid env and handle; out-pointer to a local.
        self.check(unsafe { napi_typeof(self.raw, v.0, &mut t) })?;
        Ok(t)
    }

    pub fn is_array(&self, v: Value) -> JsResult<bool> {
        let mut b = false;
        // SAFETY: as above.
        self.check(unsafe { napi_is_array(self.raw, v.0, &mut b) })?;
        Ok(b)
    }

    fn expect(&self, v: Value, t: ValueType, what: &str) -> JsResult<()> {
        if self.type_of(v)? != t {
            return Err(JsError::Type {
                code: "ERR_INVALID_ARG_TYPE",
                message: format!("{what} must be of type {t:?}"),
            });
        }
        Ok(())
    }

    /// A number that must be an integer in `[min, max]`.
    pub fn int_in(&self, v: Value, min: i64, max: i64, what: &str) -> JsResult<i64> {
        self.expect(v, ValueType::Number, what)?;
        let mut n = 0f64;
        // SAFETY: valid env; v is a number.
        self.check(unsafe { napi_get_value_double(self.raw, v.0, &mut n) })?;
        if n.fract() != 0.0 || !(min as f64..=max as f64).contains(&n) {
            return Err(JsError::Range {
                code: "ERR_OUT_OF_RANGE",
                message: format!("{what} must be an integer from {min} to {max}, got {n}"),
            });
        }
        Ok(n as i64)
    }

    pub fn bool_of(&self, v: Value, what: &str) -> JsResult<bool> {
        self.expect(v, ValueType::Boolean, what)?;
        let mut b = false;
        // SAFETY: valid env; v is a boolean.
        self.check(unsafe { napi_get_value_bool(self.raw, v.0, &mut b) })?;
        Ok(b)
    }

    pub fn string_of(&self, v: Value, what: &str) -> JsResult<String> {
        self.expect(v, ValueType::String, what)?;
        let mut len = 0usize;
        // SAFETY: valid env; a null buffer asks for the length.
        self.check(unsafe {
            napi_get_value_string_utf8(self.raw, v.0, ptr::null_mut(), 0, &mut len)
        })?;
        let mut buf = vec![0u8; len + 1];
        let mut written = 0usize;
        // SAFETY: buf has len + 1 bytes for the string and its NUL.
        self.check(unsafe {
            napi_get_value_string_utf8(
                self.raw,
                v.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut written,
            )
        })?;
        buf.truncate(written);
        String::from_utf8(buf).map_err(|_| JsError::Type {
            code: "ERR_INVALID_ARG_VALUE",
            message: format!("{what} is not valid UTF-8"),
        })
    }

    /// A copy of the bytes of a Buffer (or Uint8Array).
    pub fn bytes_of(&self, v: Value, what: &str) -> JsResult<Vec<u8>> {
        let mut is = false;
        // SAFETY: valid env and handle.
        self.check(unsafe { napi_is_buffer(self.raw, v.0, &mut is) })?;
        if !is {
            return Err(JsError::Type {
                code: "ERR_INVALID_ARG_TYPE",
                message: format!("{what} must be a Buffer"),
            });
        }
        let mut data: *mut c_void = ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: v is a buffer; the pointer is valid for len bytes now.
        self.check(unsafe { napi_get_buffer_info(self.raw, v.0, &mut data, &mut len) })?;
        if len == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: as above; copied before anything can run JS.
        Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec())
    }

    /// A new Buffer holding a copy of `bytes`.
    pub fn buffer(&self, bytes: &[u8]) -> JsResult<Value> {
        let mut out_data: *mut c_void = ptr::null_mut();
        self.make(|o| unsafe {
            napi_create_buffer_copy(
                self.raw,
                bytes.len(),
                bytes.as_ptr().cast(),
                &mut out_data,
                o,
            )
        })
    }

    /// A new array of `len` holes.
    pub fn array(&self, len: usize) -> JsResult<Value> {
        self.make(|o| unsafe { napi_create_array_with_length(self.raw, len, o) })
    }

    pub fn set_element(&self, arr: Value, index: u32, v: Value) -> JsResult<()> {
        // SAFETY: valid env and handles.
        self.check(unsafe { napi_set_element(self.raw, arr.0, index, v.0) })
    }

    /// The length of an array (TypeError when `v` is not one).
    pub fn array_len(&self, v: Value, what: &str) -> JsResult<u32> {
        if !self.is_array(v)? {
            return Err(JsError::Type {
                code: "ERR_INVALID_ARG_TYPE",
                message: format!("{what} must be an array"),
            });
        }
        let mut len = 0u32;
        // SAFETY: valid env; v is an array.
        self.check(unsafe { napi_get_array_length(self.raw, v.0, &mut len) })?;
        Ok(len)
    }

    pub fn element(&self, arr: Value, index: u32) -> JsResult<Value> {
        self.make(|o| unsafe { napi_get_element(self.raw, arr.0, index, o) })
    }

    /// An array of integers, each in `[min, max]`.
    pub fn int_array_of(&self, v: Value, min: i64, max: i64, what: &str) -> JsResult<Vec<i64>> {
        let len = self.array_len(v, what)?;
        (0..len)
            .map(|i| self.int_in(self.element(v, i)?, min, max, what))
            .collect()
    }

    /// Box `data` into a JS external tagged with `tag`; it is dropped when the
    /// external is garbage-collected (or its environment shuts down).
    pub fn external<T: 'static>(&self, data: T, tag: &'static napi_type_tag) -> JsResult<Value> {
        unsafe extern "C" fn finalize<T>(_env: napi_env, data: *mut c_void, _hint: *mut c_void) {
            // SAFETY: data came from Box::into_raw below and is finalized once.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                drop(unsafe { Box::from_raw(data.cast::<T>()) })
            }));
        }
        let raw = Box::into_raw(Box::new(data));
        let made = self.make(|o| unsafe {
            napi_create_external(
                self.raw,
                raw.cast(),
                Some(finalize::<T>),
                ptr::null_mut(),
                o,
            )
        });
        let v = match made {
            Ok(v) => v,
            Err(e) => {
                // SAFETY: Node did not take ownership; reclaim the box.
                drop(unsafe { Box::from_raw(raw) });
                return Err(e);
            }
        };
        // SAFETY: valid env and a fresh external.
        self.check(unsafe { napi_type_tag_object(self.raw, v.0, tag) })?;
        Ok(v)
    }

    /// The data of an external made by [`Env::external`] with the same tag.
    /// Anything else is a `TypeError`.
    pub fn external_ref<T: 'static>(
        &self,
        v: Value,
        tag: &'static napi_type_tag,
        what: &str,
    ) -> JsResult<&T> {
        let bad = || JsError::Type {
            code: "ERR_INVALID_ARG_TYPE",
            message: format!("{what} is not a vmtap handle"),
        };
        if self.type_of(v)? != ValueType::External {
            return Err(bad());
        }
        let mut ok = false;
        // SAFETY: valid env and handle.
        self.check(unsafe { napi_check_object_type_tag(self.raw, v.0, tag, &mut ok) })?;
        if !ok {
            return Err(bad());
        }
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: v is an external.
        self.check(unsafe { napi_get_value_external(self.raw, v.0, &mut data) })?;
        // SAFETY: the tag proves it was made by `external::<T>`; the external
        // (and so the box) lives at least as long as this callback.
        Ok(unsafe { &*data.cast::<T>() })
    }

    /// Build the JS error object for `err`.
    pub fn error_value(&self, err: &JsError) -> JsResult<Value> {
        match err {
            JsError::Type { code, message } => {
                let (c, m) = (self.string(code)?, self.string(message)?);
                self.make(|o| unsafe { napi_create_type_error(self.raw, c.0, m.0, o) })
            }
            JsError::Range { code, message } => {
                let (c, m) = (self.string(code)?, self.string(message)?);
                self.make(|o| unsafe { napi_create_range_error(self.raw, c.0, m.0, o) })
            }
            JsError::Error {
                code,
                message,
                props,
            } => {
                let (c, m) = (self.string(code)?, self.string(message)?);
                let e = self.make(|o| unsafe { napi_create_error(self.raw, c.0, m.0, o) })?;
                for (name, p) in props {
                    let v = match p {
                        Prop::Str(s) => self.string(s)?,
                        Prop::Int(n) => self.int32(*n)?,
                    };
                    self.set(e, name, v)?;
                }
                Ok(e)
            }
            JsError::Pending => self.undefined(),
        }
    }

    pub fn throw(&self, err: JsError) {
        if let JsError::Pending = err {
            return;
        }
        if let Ok(v) = self.error_value(&err) {
            // SAFETY: valid env and handle.
            unsafe { napi_throw(self.raw, v.0) };
        }
    }

    /// A JS function calling `f`.
    pub fn function(&self, name: &str, f: RustFn) -> JsResult<Value> {
        self.make(|o| unsafe {
            napi_create_function(
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

/// The signature of a binding function.
pub type RustFn = fn(Env, &[Value]) -> JsResult<Value>;

/// The `Error` a caught panic becomes (never an unwind into Node).
fn panic_error(p: Box<dyn Any + Send>) -> JsError {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    JsError::Error {
        code: "ERR_VMTAP_PANIC".into(),
        message: format!("internal error in vmtap: {what}"),
        props: Vec::new(),
    }
}

/// The C callback behind every function made by [`Env::function`]: fetches
/// up to 8 arguments, calls the Rust function stored in the callback data,
/// throws its error, and turns a panic into an `Error` instead of unwinding
/// into Node.
unsafe extern "C" fn trampoline(raw: napi_env, info: napi_callback_info) -> napi_value {
    // SAFETY: Node passes a valid env for this callback.
    let env = unsafe { Env::from_raw(raw) };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut argc = 8usize;
        let mut argv: [napi_value; 8] = [ptr::null_mut(); 8];
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: argv has room for argc values.
        env.check(unsafe {
            napi_get_cb_info(
                raw,
                info,
                &mut argc,
                argv.as_mut_ptr(),
                ptr::null_mut(),
                &mut data,
            )
        })?;
        // SAFETY: data is the RustFn stored by Env::function.
        let f: RustFn = unsafe { std::mem::transmute::<*mut c_void, RustFn>(data) };
        let args: Vec<Value> = argv[..argc.min(8)].iter().map(|&v| Value(v)).collect();
        f(env, &args)
    }));
    let outcome = match result {
        Ok(r) => r,
        Err(p) => Err(panic_error(p)),
    };
    match outcome {
        Ok(v) => v.0,
        Err(e) => {
            env.throw(e);
            ptr::null_mut()
        }
    }
}

/// Work for the libuv thread pool whose outcome settles a promise.
///
/// `run` executes off the JS thread and must not touch JS; `settle` runs
/// back on the JS thread with the result and builds the resolution value
/// (or the error to reject with).
pub struct AsyncTask<T: Send + 'static> {
    run: Option<Box<dyn FnOnce() -> T + Send>>,
    settle: fn(Env, T) -> JsResult<Value>,
    output: Option<std::thread::Result<T>>,
    deferred: napi_deferred,
    work: napi_async_work,
}

impl<T: Send + 'static> AsyncTask<T> {
    /// Queue `run` on the libuv pool; return the promise.
    pub fn spawn(
        env: Env,
        name: &str,
        run: impl FnOnce() -> T + Send + 'static,
        settle: fn(Env, T) -> JsResult<Value>,
    ) -> JsResult<Value> {
        let mut deferred: napi_deferred = ptr::null_mut();
        // SAFETY: valid env, out-pointer to a local.
        let promise = env.make(|o| unsafe { napi_create_promise(env.raw, &mut deferred, o) })?;
        let task = Box::into_raw(Box::new(AsyncTask {
            run: Some(Box::new(run)),
            settle,
            output: None,
            deferred,
            work: ptr::null_mut(),
        }));
        let resource_name = env.string(name)?;
        // SAFETY: task is a live box; the callbacks below take it back.
        let status = unsafe {
            napi_create_async_work(
                env.raw,
                ptr::null_mut(),
                resource_name.0,
                Some(Self::execute),
                Some(Self::complete),
                task.cast(),
                &mut (*task).work,
            )
        };
        let status = if status == NAPI_OK {
            // SAFETY: work was just created.
            unsafe { napi_queue_async_work(env.raw, (*task).work) }
        } else {
            status
        };
        if status != NAPI_OK {
            // SAFETY: not queued: we still own the box (and the work, if made).
            let task = unsafe { Box::from_raw(task) };
            if !task.work.is_null() {
                unsafe { napi_delete_async_work(env.raw, task.work) };
            }
            env.check(status)?;
        }
        Ok(promise)
    }

    unsafe extern "C" fn execute(_env: napi_env, data: *mut c_void) {
        // SAFETY: data is the task box; only this thread touches it now.
        let task = unsafe { &mut *data.cast::<Self>() };
        if let Some(run) = task.run.take() {
            task.output = Some(catch_unwind(AssertUnwindSafe(run)));
        }
    }

    unsafe extern "C" fn complete(raw: napi_env, status: napi_status, data: *mut c_void) {
        // SAFETY: data is the task box, returned to us once, on the JS thread.
        let mut task = unsafe { Box::from_raw(data.cast::<Self>()) };
        let env = unsafe { Env::from_raw(raw) };
        let (deferred, work, settle, output) =
            (task.deferred, task.work, task.settle, task.output.take());
        drop(task);
        let outcome = catch_unwind(AssertUnwindSafe(|| -> JsResult<Value> {
            match output {
                Some(Ok(v)) => settle(env, v),
                Some(Err(p)) => Err(panic_error(p)),
                None => Err(JsError::Error {
                    code: "ERR_VMTAP_CANCELLED".into(),
                    message: format!("the operation was cancelled (status {status})"),
                    props: Vec::new(),
                }),
            }
        }))
        .unwrap_or_else(|p| Err(panic_error(p)));
        // SAFETY: deferred is settled exactly once, here; work deleted once.
        unsafe {
            match outcome {
                Ok(v) => napi_resolve_deferred(raw, deferred, v.0),
                Err(e) => {
                    let v = env
                        .error_value(&e)
                        .unwrap_or_else(|_| env.undefined().unwrap_or(Value(ptr::null_mut())));
                    napi_reject_deferred(raw, deferred, v.0)
                }
            };
            napi_delete_async_work(raw, work);
        }
    }
}
