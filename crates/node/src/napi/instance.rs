//! Per-environment state: a few JS values kept alive for this addon in each
//! environment (the main thread, each Worker) through Node-API instance
//! data and strong references. The binding keeps `makeError` and the
//! unclosed-device callback there ([`SLOTS`] of them, by index).

use std::ffi::c_void;
use std::ptr;

use super::env::{Env, Value};
use super::ffi::{self, napi_env, napi_ref};
use crate::error::JsResult;

/// How many values an environment keeps.
pub const SLOTS: usize = 2;

/// What `napi_set_instance_data` holds: the references, null until set.
struct Slot {
    values: [napi_ref; SLOTS],
}

/// Frees the slot when the environment shuts down.
unsafe extern "C" fn finalize_slot(env: napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: data is the Slot box set by set_instance_value, finalized once.
    let slot = unsafe { Box::from_raw(data.cast::<Slot>()) };
    for value in slot.values {
        if !value.is_null() {
            // SAFETY: the reference was made in this env and not deleted
            // yet; Node runs instance-data finalizers before it frees the
            // remaining references, so deleting it here is allowed.
            unsafe { ffi::napi_delete_reference(env, value) };
        }
    }
}

impl Env {
    fn slot(&self) -> JsResult<*mut Slot> {
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: valid env; the out-pointer is a local.
        self.check(unsafe { ffi::napi_get_instance_data(self.raw, &mut data) })?;
        Ok(data.cast())
    }

    /// Keep `v` for this environment in slot `index` (< [`SLOTS`]),
    /// replacing what was kept there before.
    pub fn set_instance_value(&self, index: usize, v: Value) -> JsResult<()> {
        let mut reference: napi_ref = ptr::null_mut();
        // SAFETY: valid env and handle; the out-pointer is a local.
        self.check(unsafe { ffi::napi_create_reference(self.raw, v.0, 1, &mut reference) })?;
        let slot = self.slot()?;
        if slot.is_null() {
            let mut values = [ptr::null_mut(); SLOTS];
            values[index] = reference;
            let fresh = Box::into_raw(Box::new(Slot { values }));
            // SAFETY: valid env; Node owns the box from here on and hands it
            // to finalize_slot.
            let status = unsafe {
                ffi::napi_set_instance_data(
                    self.raw,
                    fresh.cast(),
                    Some(finalize_slot),
                    ptr::null_mut(),
                )
            };
            if status != ffi::NAPI_OK {
                // SAFETY: Node did not take the box; the reference is ours.
                unsafe {
                    drop(Box::from_raw(fresh));
                    ffi::napi_delete_reference(self.raw, reference);
                }
            }
            return self.check(status);
        }
        // SAFETY: slot is the live Slot of this env (only its JS thread
        // touches it); the old reference was made in this env.
        unsafe {
            let old = std::mem::replace(&mut (*slot).values[index], reference);
            if !old.is_null() {
                ffi::napi_delete_reference(self.raw, old);
            }
        }
        Ok(())
    }

    /// What [`Env::set_instance_value`] kept in slot `index`, if anything.
    pub fn instance_value(&self, index: usize) -> Option<Value> {
        let slot = self.slot().ok()?;
        if slot.is_null() {
            return None;
        }
        // SAFETY: slot is the live Slot of this env.
        let reference = unsafe { (*slot).values[index] };
        if reference.is_null() {
            return None;
        }
        let mut v: ffi::napi_value = ptr::null_mut();
        // SAFETY: valid env; a live reference of this env; the out-pointer
        // is a local.
        let status = unsafe { ffi::napi_get_reference_value(self.raw, reference, &mut v) };
        (status == ffi::NAPI_OK && !v.is_null()).then_some(Value(v))
    }
}
