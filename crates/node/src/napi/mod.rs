//! A minimal, hand-written Node-API layer (the `napi`/`napi-derive` crates
//! are not used): every `unsafe` line about Node-API lives under this
//! directory, one job per file.
//!
//! * [`ffi`] — the C functions and types, declared by hand;
//! * [`env`] — [`Env`] (a `napi_env` for one callback) and [`Value`],
//!   constructors, properties, exceptions, calls;
//! * [`read`] — JS values into Rust (types, integer width);
//! * [`function`] — Rust functions as JS functions, panics caught;
//! * [`task`] — [`AsyncTask`], work on the libuv pool settling a promise;
//! * [`promise`] — [`Deferred`], a promise settled from Rust;
//! * [`reference`] — [`reference::Ref`], a JS value kept across calls;
//! * [`uv`] — the libuv functions the watcher uses, declared by hand;
//! * [`watch`] — waiting for an fd on the event loop (no pool thread);
//! * [`external`] — type-tagged boxed Rust data;
//! * [`instance`] — one JS value kept per environment;
//! * [`module`] — the entry points Node calls when it loads the addon.
//!
//! Errors are [`crate::error::JsError`]; turning one into a JS value is the
//! binding's error path (`crate::error`), which these wrappers call when a
//! function throws or a task rejects.

pub mod env;
pub mod external;
pub mod ffi;
pub mod function;
pub mod instance;
pub mod module;
pub mod promise;
pub mod read;
pub mod reference;
pub mod task;
pub mod uv;
pub mod watch;

pub use env::{Env, ErrorClass, Value};
pub use ffi::{napi_type_tag, ValueType};
pub use promise::Deferred;
pub use task::AsyncTask;
