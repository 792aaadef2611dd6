//! [`AsyncTask`]: a closure on the libuv thread pool whose outcome settles
//! a promise back on the JS thread.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use super::env::{Env, Value};
use super::ffi::{self, napi_async_work, napi_deferred, napi_env, napi_status};
use super::function::panic_error;
use super::promise::rejection;
use crate::error::{JsError, JsResult};

/// Work for the libuv thread pool whose outcome settles a promise.
///
/// `run` executes off the JS thread and must not touch JS; `settle` runs
/// back on the JS thread with the result and builds the resolution value
/// (or the error to reject with, which goes through the binding's error
/// path like a thrown one).
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
        // SAFETY: valid env; the deferred out-pointer is a local; `o` is
        // make's out-slot.
        let promise =
            env.make(|o| unsafe { ffi::napi_create_promise(env.raw, &mut deferred, o) })?;
        let resource_name = env.string(name)?;
        let task = Box::into_raw(Box::new(AsyncTask {
            run: Some(Box::new(run)),
            settle,
            output: None,
            deferred,
            work: ptr::null_mut(),
        }));
        // SAFETY: valid env; task is a live box whose ownership passes to
        // the work (execute/complete take it back); `(*task).work` is the
        // out-slot for the work handle.
        let status = unsafe {
            ffi::napi_create_async_work(
                env.raw,
                ptr::null_mut(),
                resource_name.0,
                Some(Self::execute),
                Some(Self::complete),
                task.cast(),
                &mut (*task).work,
            )
        };
        let status = if status == ffi::NAPI_OK {
            // SAFETY: the work was just created and not queued yet.
            unsafe { ffi::napi_queue_async_work(env.raw, (*task).work) }
        } else {
            status
        };
        if status != ffi::NAPI_OK {
            // SAFETY: nothing was queued, so the box is still ours to free.
            let task = unsafe { Box::from_raw(task) };
            if !task.work.is_null() {
                // SAFETY: the work exists and was never queued.
                unsafe { ffi::napi_delete_async_work(env.raw, task.work) };
            }
            // The promise is dropped unsettled; the caller gets the error.
            env.check(status)?;
        }
        Ok(promise)
    }

    unsafe extern "C" fn execute(_env: napi_env, data: *mut c_void) {
        // SAFETY: data is the task box; while the work runs, only this pool
        // thread touches it.
        let task = unsafe { &mut *data.cast::<Self>() };
        if let Some(run) = task.run.take() {
            task.output = Some(catch_unwind(AssertUnwindSafe(run)));
        }
    }

    unsafe extern "C" fn complete(raw: napi_env, status: napi_status, data: *mut c_void) {
        // SAFETY: data is the task box, handed back once, on the JS thread,
        // after execute finished (or never ran).
        let mut task = unsafe { Box::from_raw(data.cast::<Self>()) };
        // SAFETY: Node passes the env of this completion, which `env` does
        // not outlive.
        let env = unsafe { Env::from_raw(raw) };
        let (deferred, work, settle, output) =
            (task.deferred, task.work, task.settle, task.output.take());
        drop(task);
        let settled = catch_unwind(AssertUnwindSafe(|| -> Result<Value, Value> {
            let outcome = match output {
                Some(Ok(v)) => settle(env, v),
                Some(Err(p)) => Err(panic_error(p)),
                None => Err(JsError::cancelled(status)),
            };
            outcome.map_err(|e| rejection(env, e))
        }))
        .unwrap_or_else(|p| {
            Err(
                catch_unwind(AssertUnwindSafe(|| rejection(env, panic_error(p))))
                    .unwrap_or(Value(ptr::null_mut())),
            )
        });
        match settled {
            // SAFETY: the deferred is settled exactly once, here, on the JS
            // thread that made it.
            Ok(v) => unsafe { ffi::napi_resolve_deferred(raw, deferred, v.0) },
            // SAFETY: as above.
            Err(v) => unsafe { ffi::napi_reject_deferred(raw, deferred, v.0) },
        };
        // SAFETY: the work is deleted once, after it completed.
        unsafe { ffi::napi_delete_async_work(raw, work) };
    }
}
