//! Reading JS values into Rust: the JS type and, for numbers, integer-ness
//! and width (fits u32 / i32). No range beyond the width is checked here:
//! every limit is the core's (`vmtap_core::rules`).

use std::ptr;

use super::env::{Env, Value};
use super::ffi::{self, ValueType};
use crate::error::{JsError, JsResult};

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "boolean",
        ValueType::Number => "number",
        ValueType::String => "string",
        ValueType::Symbol => "symbol",
        ValueType::Object => "object",
        ValueType::Function => "function",
        ValueType::External => "external",
        ValueType::BigInt => "bigint",
    }
}

impl Env {
    /// `v` must be of type `t`: else `ERR_INVALID_ARG_TYPE`.
    pub fn expect(&self, v: Value, t: ValueType, what: &str) -> JsResult<()> {
        let got = self.type_of(v)?;
        if got != t {
            return Err(JsError::arg_type(format!(
                "{what} must be of type {}, got {}",
                type_name(t),
                type_name(got)
            )));
        }
        Ok(())
    }

    /// A number that is an integer (not NaN, ±Infinity, a fraction or -0)
    /// within `[min, max]`, the width of the Rust type it becomes.
    fn integer(&self, v: Value, what: &str, width: &str, min: f64, max: f64) -> JsResult<f64> {
        self.expect(v, ValueType::Number, what)?;
        let mut n = 0f64;
        // SAFETY: valid env; v is a number; the out-pointer is a local.
        self.check(unsafe { ffi::napi_get_value_double(self.raw, v.0, &mut n) })?;
        let negative_zero = n == 0.0 && n.is_sign_negative();
        if n.fract() != 0.0 || !(min..=max).contains(&n) || negative_zero {
            let shown = if negative_zero {
                "-0".to_owned()
            } else {
                n.to_string()
            };
            return Err(JsError::out_of_range(format!(
                "{what} must be an integer that fits {width}, got {shown}"
            )));
        }
        Ok(n)
    }

    /// Any number (NaN and infinities included).
    pub fn double_of(&self, v: Value, what: &str) -> JsResult<f64> {
        self.expect(v, ValueType::Number, what)?;
        let mut n = 0f64;
        // SAFETY: valid env; v is a number; the out-pointer is a local.
        self.check(unsafe { ffi::napi_get_value_double(self.raw, v.0, &mut n) })?;
        Ok(n)
    }

    /// An integer that fits u32.
    pub fn u32_of(&self, v: Value, what: &str) -> JsResult<u32> {
        Ok(self.integer(v, what, "u32", 0.0, u32::MAX as f64)? as u32)
    }

    /// An integer that fits i32.
    pub fn i32_of(&self, v: Value, what: &str) -> JsResult<i32> {
        Ok(self.integer(v, what, "i32", i32::MIN as f64, i32::MAX as f64)? as i32)
    }

    pub fn bool_of(&self, v: Value, what: &str) -> JsResult<bool> {
        self.expect(v, ValueType::Boolean, what)?;
        let mut b = false;
        // SAFETY: valid env; v is a boolean; the out-pointer is a local.
        self.check(unsafe { ffi::napi_get_value_bool(self.raw, v.0, &mut b) })?;
        Ok(b)
    }

    pub fn string_of(&self, v: Value, what: &str) -> JsResult<String> {
        self.expect(v, ValueType::String, what)?;
        let mut len = 0usize;
        // SAFETY: valid env; v is a string; a null buffer asks for the length.
        self.check(unsafe {
            ffi::napi_get_value_string_utf8(self.raw, v.0, ptr::null_mut(), 0, &mut len)
        })?;
        let mut buf = vmtap_core::error::try_zeroed(len.saturating_add(1), "a string argument")?;
        let mut written = 0usize;
        // SAFETY: buf has len + 1 bytes for the string and its NUL.
        self.check(unsafe {
            ffi::napi_get_value_string_utf8(
                self.raw,
                v.0,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut written,
            )
        })?;
        buf.truncate(written);
        String::from_utf8(buf).map_err(|_| JsError::arg_value(format!("{what} is not valid UTF-8")))
    }

    /// A copy of the bytes of a Buffer (or Uint8Array).
    pub fn bytes_of(&self, v: Value, what: &str) -> JsResult<Vec<u8>> {
        let copy = self.with_bytes(v, what, |b| {
            let mut out = Vec::new();
            out.try_reserve_exact(b.len())
                .map_err(|_| vmtap_core::Error::no_memory("a Buffer argument", b.len()))?;
            out.extend_from_slice(b);
            Ok::<_, vmtap_core::Error>(out)
        })?;
        Ok(copy?)
    }

    /// Run `f` on the bytes of a Buffer (or Uint8Array) in place, without
    /// copying them: `f` must not run JS (nothing may move or detach the
    /// buffer meanwhile).
    pub fn with_bytes<R>(&self, v: Value, what: &str, f: impl FnOnce(&[u8]) -> R) -> JsResult<R> {
        let mut is = false;
        // SAFETY: valid env and handle; the out-pointer is a local.
        self.check(unsafe { ffi::napi_is_buffer(self.raw, v.0, &mut is) })?;
        if !is {
            return Err(JsError::arg_type(format!("{what} must be a Buffer")));
        }
        let (data, len) = self.buffer_span(v)?;
        if len == 0 || data.is_null() {
            return Ok(f(&[]));
        }
        // SAFETY: Node says `data` points at `len` bytes of the buffer; the
        // slice lives only while `f` runs, which runs no JS (per the contract).
        Ok(f(unsafe {
            std::slice::from_raw_parts(data.cast::<u8>(), len)
        }))
    }

    /// The length of an array (`ERR_INVALID_ARG_TYPE` when `v` is not one).
    pub fn array_len(&self, v: Value, what: &str) -> JsResult<u32> {
        if !self.is_array(v)? {
            return Err(JsError::arg_type(format!("{what} must be an array")));
        }
        let mut len = 0u32;
        // SAFETY: valid env; v is an array; the out-pointer is a local.
        self.check(unsafe { ffi::napi_get_array_length(self.raw, v.0, &mut len) })?;
        Ok(len)
    }
}
