//! The binding's one error path. Every error it throws or rejects with —
//! argument types, the core's errors (kernel and argument), a closed
//! handle, a panic, a failed Node-API call, a cancelled task, each failure
//! of `closeAll` — is a [`JsError`] that becomes a JS value here: a context
//! object `{ code, message?, errno?, syscall?, path?, ifname?, holders? }` is passed
//! to the `makeError` function registered by `init(makeError)` for this
//! environment, and what it returns is the error. Without `init`, or when
//! `makeError` throws or returns a non-object, the error is built here: an
//! `Error` (a `TypeError` / `RangeError` for argument codes) with `code`
//! and the kernel fields set.

use std::borrow::Cow;

use vmtap_core::error::errno_name;
use vmtap_core::Error;

use crate::convert::arg;
use crate::napi::{Env, ErrorClass, Value, ValueType};

/// What a binding function fails with.
#[derive(Debug)]
pub enum JsError {
    /// A JS exception is already pending (a getter, a Proxy trap): it
    /// propagates as is.
    Pending,
    /// An error to build through the error path.
    Ctx(Box<ErrorCtx>),
}

pub type JsResult<T> = Result<T, JsError>;

/// What `makeError` receives.
#[derive(Debug, Default)]
pub struct ErrorCtx {
    /// An errno name (`EPERM`), `ERR_INVALID_ARG_TYPE`,
    /// `ERR_INVALID_ARG_VALUE`, `ERR_OUT_OF_RANGE` or `ERR_VMTAP_*`.
    pub code: String,
    /// `None` for vmtap's own codes whose text JavaScript keeps.
    pub message: Option<String>,
    /// Negative, as in Node's fs errors.
    pub errno: Option<i32>,
    pub syscall: Option<&'static str>,
    pub path: Option<String>,
    pub ifname: Option<String>,
    /// The processes holding the device (EBUSY), when known.
    pub holders: Vec<vmtap_core::Holder>,
}

impl JsError {
    fn ctx(code: &str, message: Option<String>) -> Self {
        JsError::Ctx(Box::new(ErrorCtx {
            code: code.to_owned(),
            message,
            ..ErrorCtx::default()
        }))
    }

    /// A JS value of the wrong type.
    pub fn arg_type(message: impl Into<String>) -> Self {
        Self::ctx("ERR_INVALID_ARG_TYPE", Some(message.into()))
    }

    /// A JS value of the right type that cannot be used.
    pub fn arg_value(message: impl Into<String>) -> Self {
        Self::ctx("ERR_INVALID_ARG_VALUE", Some(message.into()))
    }

    /// A number that is not an integer or does not fit its Rust type.
    pub fn out_of_range(message: impl Into<String>) -> Self {
        Self::ctx("ERR_OUT_OF_RANGE", Some(message.into()))
    }

    /// The handle's device was closed.
    pub fn closed(ifname: Option<&str>) -> Self {
        let mut e = Self::ctx("ERR_VMTAP_CLOSED", None);
        if let JsError::Ctx(c) = &mut e {
            c.ifname = ifname.map(str::to_owned);
        }
        e
    }

    /// A panic inside the binding or the core, caught.
    pub fn panic(what: String) -> Self {
        Self::ctx(
            "ERR_VMTAP_PANIC",
            Some(format!("internal error in vmtap: {what}")),
        )
    }

    /// A Node-API call that failed without a JS exception.
    pub fn napi(status: i32) -> Self {
        Self::ctx(
            "ERR_VMTAP_NAPI",
            Some(format!(
                "internal error: a Node-API call failed with status {status}"
            )),
        )
    }

    /// A wait cancelled by an AbortSignal (Node's AbortError code).
    pub fn aborted() -> Self {
        Self::ctx("ABORT_ERR", None)
    }

    /// Async work that never ran.
    pub fn cancelled(status: i32) -> Self {
        Self::ctx(
            "ERR_VMTAP_CANCELLED",
            Some(format!("the operation was cancelled (status {status})")),
        )
    }
}

impl From<Error> for JsError {
    fn from(e: Error) -> Self {
        let code = e.code();
        let message = e.to_string();
        match e {
            Error::Os(os) => JsError::Ctx(Box::new(ErrorCtx {
                code: errno_name(os.errno).to_owned(),
                message: Some(message),
                errno: Some(-(os.errno as i32)),
                syscall: Some(os.syscall),
                path: os.path,
                ifname: os.ifname,
                holders: os.holders,
            })),
            Error::InvalidArgument { .. } => Self::ctx(code, Some(message)),
            Error::Closed => Self::closed(None),
            Error::NoMemory { .. } => Self::ctx(code, Some(message)),
        }
    }
}

/// The instance slot of `makeError`.
const MAKE_ERROR: usize = 0;
/// The instance slot of `onUnclosed(ifname)`.
pub const ON_UNCLOSED: usize = 1;

/// `init(makeError, onUnclosed)`: register this environment's error factory
/// and what to call (with the device's name) when a device nobody closed is
/// garbage-collected.
pub fn init(env: Env, args: &[Value]) -> JsResult<Value> {
    let f = arg(env, args, 0)?;
    env.expect(f, ValueType::Function, "makeError")?;
    let g = arg(env, args, 1)?;
    env.expect(g, ValueType::Function, "onUnclosed")?;
    env.set_instance_value(MAKE_ERROR, f)?;
    env.set_instance_value(ON_UNCLOSED, g)?;
    env.undefined()
}

/// The most bytes of a message (or path) an error carries: the core's
/// messages quote arguments capped already; this is the last line, so that
/// no message is too long to become a JS string (V8's limit is ~512 MiB).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `s`, cut at [`MAX_MESSAGE_BYTES`] (on a character boundary) with its
/// length appended when longer.
pub fn capped(s: &str) -> Cow<'_, str> {
    if s.len() <= MAX_MESSAGE_BYTES {
        return Cow::Borrowed(s);
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}... ({} bytes in all)", &s[..end], s.len()))
}

/// The JS error for `err`; `None` for [`JsError::Pending`] (the exception
/// is already pending) or when not even the last-resort error could be
/// built.
pub fn value_of(env: Env, err: JsError) -> Option<Value> {
    let JsError::Ctx(mut ctx) = err else {
        return None;
    };
    if let Some(m) = &ctx.message {
        if let Cow::Owned(c) = capped(m) {
            ctx.message = Some(c);
        }
    }
    if let Some(p) = &ctx.path {
        if let Cow::Owned(c) = capped(p) {
            ctx.path = Some(c);
        }
    }
    if let Some(make_error) = env.instance_value(MAKE_ERROR) {
        match ctx_object(env, &ctx).and_then(|o| env.call(make_error, &[o])) {
            Ok(v) if matches!(env.type_of(v), Ok(ValueType::Object)) => return Some(v),
            // makeError threw (or something failed on the way): drop that
            // exception and build the error here.
            _ => drop(env.take_exception()),
        }
    }
    fallback(env, &ctx)
        .or_else(|_| {
            let _ = env.take_exception();
            env.error(
                ErrorClass::Error,
                "ERR_VMTAP_NAPI",
                "internal error: vmtap could not build the error to throw",
            )
        })
        .ok()
}

/// Throw `err` from the current callback.
pub fn throw(env: Env, err: JsError) {
    if let Some(v) = value_of(env, err) {
        env.throw_value(v);
    }
}

fn ctx_object(env: Env, ctx: &ErrorCtx) -> JsResult<Value> {
    let o = env.object()?;
    env.set(o, c"code", env.string(&ctx.code)?)?;
    if let Some(m) = &ctx.message {
        env.set(o, c"message", env.string(m)?)?;
    }
    set_fields(env, o, ctx)?;
    Ok(o)
}

/// errno, syscall, path, ifname, holders, when known.
fn set_fields(env: Env, o: Value, ctx: &ErrorCtx) -> JsResult<()> {
    if !ctx.holders.is_empty() {
        let h = crate::inventory::holders_value(env, &ctx.holders)?;
        env.set(o, c"holders", h)?;
    }
    if let Some(n) = ctx.errno {
        env.set(o, c"errno", env.int32(n)?)?;
    }
    if let Some(s) = ctx.syscall {
        env.set(o, c"syscall", env.string(s)?)?;
    }
    if let Some(p) = &ctx.path {
        env.set(o, c"path", env.string(p)?)?;
    }
    if let Some(n) = &ctx.ifname {
        env.set(o, c"ifname", env.string(n)?)?;
    }
    Ok(())
}

/// The error without `makeError`.
fn fallback(env: Env, ctx: &ErrorCtx) -> JsResult<Value> {
    let class = match ctx.code.as_str() {
        "ERR_INVALID_ARG_TYPE" | "ERR_INVALID_ARG_VALUE" => ErrorClass::TypeError,
        "ERR_OUT_OF_RANGE" => ErrorClass::RangeError,
        _ => ErrorClass::Error,
    };
    let message = match (&ctx.message, ctx.code.as_str()) {
        (Some(m), _) => m.clone(),
        (None, "ERR_VMTAP_CLOSED") => Error::Closed.to_string(),
        (None, code) => code.to_owned(),
    };
    let e = env.error(class, &ctx.code, &message)?;
    set_fields(env, e, ctx)?;
    Ok(e)
}
