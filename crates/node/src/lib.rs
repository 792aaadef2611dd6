//! The vmtap Node.js addon: registration. The exports are the binding
//! interface of the vmtap TypeScript layer (`index.ts`), which validates
//! every argument first; the binding checks JS types and integer width
//! only, every range and cross-field rule is the core's (`vmtap-core`).
//!
//! * [`error`] — `init(makeError)` and the one error path;
//! * [`convert`] — arguments into Rust (Tristate, paths, `open`'s options);
//! * [`device`] — open, openMacvtap, adoptTap, close, closeAll and the per-device
//!   functions;
//! * [`host`] — probes, deleteTap, `constants`, `limits`;
//! * [`inventory`] — listTaps, tapHolders, gcTaps;
//! * [`fdpass`] — sendFds / recvFds (waiting on the event loop), cancel,
//!   dupFds;
//! * [`packet`] — frames: a queue read and written on the event loop;
//! * [`peer`] — peerCredentials;
//! * [`napi`] — the hand-written Node-API layer and the module entry point
//!   (all of the Node-API unsafe code).

mod convert;
mod device;
mod error;
mod fdpass;
mod host;
mod inventory;
mod napi;
mod packet;
mod peer;

use error::JsResult;
use napi::{Env, Value};

/// Fill `exports` (called once per environment by `napi::module`).
fn register(env: Env, exports: Value) -> JsResult<()> {
    env.export(exports, c"init", error::init)?;
    env.export(exports, c"open", device::open)?;
    env.export(exports, c"openAsync", device::open_async)?;
    env.export(exports, c"openBatch", device::open_batch)?;
    env.export(exports, c"openMacvtap", device::open_macvtap)?;
    env.export(exports, c"openMacvtapAsync", device::open_macvtap_async)?;
    env.export(exports, c"adoptTap", device::adopt_tap)?;
    env.export(exports, c"close", device::close)?;
    env.export(exports, c"closeAsync", device::close_async)?;
    env.export(exports, c"closeAll", device::close_all)?;
    env.export(exports, c"setPersist", device::set_persist)?;
    env.export(exports, c"setOwner", device::set_owner)?;
    env.export(exports, c"setGroup", device::set_group)?;
    env.export(exports, c"getVnetHdrSize", device::get_vnet_hdr_size)?;
    env.export(exports, c"setVnetHdrSize", device::set_vnet_hdr_size)?;
    env.export(exports, c"setOffloads", device::set_offloads)?;
    env.export(exports, c"setQueueEnabled", device::set_queue_enabled)?;
    env.export(exports, c"setLinkUp", device::set_link_up)?;
    env.export(exports, c"getLinkInfo", device::get_link_info)?;
    env.export(exports, c"setMtu", device::set_mtu)?;
    env.export(exports, c"setMac", device::set_mac)?;
    env.export(exports, c"attachToBridge", device::attach_to_bridge)?;
    env.export(exports, c"detachFromBridge", device::detach_from_bridge)?;
    env.export(exports, c"setTag", device::set_tag)?;
    env.export(exports, c"getStats", device::get_stats)?;
    env.export(exports, c"addAddress", device::add_address)?;
    env.export(exports, c"removeAddress", device::remove_address)?;
    env.export(exports, c"addRoute", device::add_route)?;
    env.export(exports, c"removeRoute", device::remove_route)?;
    env.export(exports, c"setProxyArp", device::set_proxy_arp)?;
    env.export(exports, c"setProxyNdp", device::set_proxy_ndp)?;
    env.export(exports, c"setForwarding", device::set_forwarding)?;
    env.export(exports, c"setBridgePort", device::set_bridge_port)?;
    env.export(exports, c"setTxQueueLen", device::set_tx_queue_len)?;
    env.export(exports, c"setCarrier", device::set_carrier)?;
    env.export(exports, c"probeFeatures", host::probe_features)?;
    env.export(exports, c"getTunFeatures", host::get_tun_features)?;
    env.export(exports, c"probeOffloads", host::probe_offloads)?;
    env.export(exports, c"deleteTap", host::delete_tap)?;
    env.export(exports, c"listTaps", inventory::list_taps)?;
    env.export(exports, c"tapHolders", inventory::tap_holders)?;
    env.export(exports, c"gcTaps", inventory::gc_taps)?;
    env.export(exports, c"sendFds", fdpass::send_fds)?;
    env.export(exports, c"recvFds", fdpass::recv_fds)?;
    env.export(exports, c"peerCredentials", peer::peer_credentials)?;
    env.export(exports, c"cancel", fdpass::cancel)?;
    env.export(exports, c"dupFds", fdpass::dup_fds)?;
    env.export(exports, c"frameReader", packet::frame_reader)?;
    env.export(exports, c"readerResume", packet::reader_resume)?;
    env.export(exports, c"readerPause", packet::reader_pause)?;
    env.export(exports, c"readerClose", packet::reader_close)?;
    env.export(exports, c"writeFrame", packet::write_frame)?;
    env.set(exports, c"constants", host::constants(env)?)?;
    env.set(exports, c"limits", host::limits(env)?)?;
    Ok(())
}
