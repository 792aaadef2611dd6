//! Frames from Node: a queue's fd read and written on the event loop.
//!
//! Reading: `frameReader(handle, queue, onFrames)` makes a reader on vmtap's
//! own close-on-exec duplicate of the queue's fd, watched by
//! [`crate::napi::watch`] (a private epoll fd, so the queue's O_NONBLOCK flag,
//! shared with a VMM that holds the same queue, is never changed). It starts
//! paused: `readerResume(id)` waits for frames; each time the queue is
//! readable the reader reads up to [`BATCH`] frames without waiting
//! (`preadv2(RWF_NOWAIT)`, see `vmtap_core::sys`) and hands them to
//! `onFrames(null, pool, start, lengths, hdrLen)` in one call: the frames
//! were read straight into `pool`, one after the other from `start`, and
//! their lengths are little-endian u32s in `lengths`. `pool` is a Buffer of
//! [`POOL_BYTES`] that later batches fill on, as Node's own pooled Buffers
//! (one Buffer per pool, not one per frame: making a Buffer through
//! Node-API costs more than reading a frame; JS hands out views of it).
//! `readerPause(id)` stops
//! waiting (back-pressure) and the kernel holds (or drops) what comes
//! meanwhile. `onFrames(error)` reports a failed read, after which the
//! reader is closed; `onFrames(null, null)` says the device was closed.
//! `readerClose(id)` ends it.
//!
//! Writing: `writeFrame(handle, queue, frame, header | null, onWait)` checks
//! the frame against the device (the core's rule, the MTU read once and
//! kept up to date by setMtu) and writes it at once without waiting; it
//! returns the bytes written, or, when the queue cannot take it now, a
//! promise for them (the frame copied, the fd duplicated, and the queue
//! watched until it is writable).
//!
//! Closing the device ends its readers and rejects its waiting writes
//! (ERR_VMTAP_CLOSED) before any of its fds is closed.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use vmtap_core::fdpass::{dup_fd, Step};
use vmtap_core::packet::{self, READ_BUFFER_BYTES};
use vmtap_core::{link, rules, Error, Mode, RealSys, Tap};

use crate::convert::arg;
use crate::device::with_device;
use crate::error::{JsError, JsResult};
use crate::fdpass::why_error;
use crate::napi::reference::Ref;
use crate::napi::watch::{self, Flow, Handler, Interest, Why};
use crate::napi::{Deferred, Env, Value, ValueType};

/// The most frames one readiness reads before JS gets them (the rest wait
/// for the next loop iteration: the watch is level-triggered). A reader may
/// ask for fewer (its high-water mark).
pub const BATCH: usize = 128;

/// The Buffer frames are read into, batch after batch, until it has no
/// room left for the longest frame ([`READ_BUFFER_BYTES`]); then a new one.
pub const POOL_BYTES: usize = 512 << 10;

/// A virtio-net header's GSO type byte: anything but NONE (ECN bit aside)
/// asks for segmentation.
const GSO_TYPE_OFFSET: usize = 1;
const GSO_ECN: u8 = 0x80;

/// What the packet functions need to know about a device, shared by its
/// handle and its readers and writers.
pub struct DeviceIo {
    pub ifname: String,
    pub mode: Mode,
    /// The vnet header size, read on first use (TUNGETVNETHDRSZ) and kept
    /// up to date by setVnetHdrSize; `usize::MAX` until then.
    hdr_len: AtomicUsize,
    /// The MTU, read on first use (SIOCGIFMTU) and kept up to date by
    /// setMtu; 0 until then.
    mtu: AtomicU32,
    /// The watches (readers, waiting writes) to end when the device closes.
    watches: Mutex<Vec<u64>>,
}

impl DeviceIo {
    pub fn new(tap: &Tap) -> Arc<Self> {
        Arc::new(DeviceIo {
            ifname: tap.ifname().to_owned(),
            mode: tap.mode(),
            hdr_len: AtomicUsize::new(if tap.vnet_hdr() { usize::MAX } else { 0 }),
            mtu: AtomicU32::new(0),
            watches: Mutex::new(Vec::new()),
        })
    }

    fn hdr_len(&self, tap: &Tap) -> JsResult<usize> {
        match self.hdr_len.load(Ordering::Relaxed) {
            usize::MAX => {
                let n = tap.frame_header_len(&RealSys)?;
                self.hdr_len.store(n, Ordering::Relaxed);
                Ok(n)
            }
            n => Ok(n),
        }
    }

    /// After TUNSETVNETHDRSZ.
    pub fn set_hdr_len(&self, n: usize) {
        self.hdr_len.store(n, Ordering::Relaxed);
    }

    fn mtu(&self) -> JsResult<u32> {
        match self.mtu.load(Ordering::Relaxed) {
            0 => {
                let m = link::mtu(&RealSys, &self.ifname)?;
                self.mtu.store(m, Ordering::Relaxed);
                Ok(m)
            }
            m => Ok(m),
        }
    }

    /// After SIOCSIFMTU.
    pub fn set_mtu(&self, mtu: u32) {
        self.mtu.store(mtu, Ordering::Relaxed);
    }

    fn add_watch(&self, id: u64) {
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id);
    }

    fn drop_watch(&self, id: u64) {
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|&w| w != id);
    }

    /// The device is closing: end every reader, reject every waiting write.
    pub fn end_all(&self, env: Env) {
        let ids = std::mem::take(&mut *self.watches.lock().unwrap_or_else(|p| p.into_inner()));
        for id in ids {
            watch::cancel(env, id, Why::Closed(Some(self.ifname.clone())));
        }
    }
}

/// The Buffer frames are read into, and where.
struct Pool {
    buffer: Ref,
    data: *mut u8,
    used: usize,
}

/// One queue's reader.
struct Reader {
    io: Arc<DeviceIo>,
    fd: OwnedFd,
    pool: Option<Pool>,
    /// The most frames of one batch (at most [`BATCH`]).
    batch: usize,
    /// The lengths of a batch's frames.
    lens: Vec<u8>,
    on_frames: Option<Ref>,
    id: u64,
}

impl Reader {
    fn call(&self, env: Env, args: &[Value]) -> JsResult<()> {
        if let Some(f) = self.on_frames.as_ref().and_then(|r| r.value(env)) {
            env.call(f, args)?;
        }
        Ok(())
    }

    /// The pool to read into, with room for a frame of any size: the
    /// current one, or a new one when it is full or JS detached it (its
    /// memory is then no longer this Buffer's: never written to again).
    fn pool(&mut self, env: Env) -> JsResult<(Value, *mut u8, usize)> {
        if let Some(p) = &self.pool {
            if let Some(v) = p.buffer.value(env) {
                if POOL_BYTES - p.used >= READ_BUFFER_BYTES
                    && env.buffer_span(v)? == (p.data, POOL_BYTES)
                {
                    return Ok((v, p.data, p.used));
                }
            }
        }
        if let Some(old) = self.pool.take() {
            old.buffer.delete(env);
        }
        let (v, data) = env.new_buffer(POOL_BYTES)?;
        self.pool = Some(Pool {
            buffer: env.reference(v)?,
            data,
            used: 0,
        });
        Ok((v, data, 0))
    }

    /// Read up to [`BATCH`] frames into the pool; their count and the pool.
    fn read_batch(&mut self, env: Env) -> (usize, Option<(Value, usize)>, Option<JsError>) {
        self.lens.clear();
        let (pool, data, start) = match self.pool(env) {
            Ok(p) => p,
            Err(e) => return (0, None, Some(e)),
        };
        let mut used = start;
        let mut count = 0;
        let mut failed = None;
        while count < self.batch && POOL_BYTES - used >= READ_BUFFER_BYTES {
            // SAFETY: data..data+POOL_BYTES is the pool Buffer's memory,
            // checked to be still its own above; no JS runs while the slice
            // lives, so nothing can detach or touch it meanwhile.
            let room = unsafe {
                std::slice::from_raw_parts_mut(
                    data.add(used).cast::<MaybeUninit<u8>>(),
                    READ_BUFFER_BYTES,
                )
            };
            match packet::read_frame(
                &RealSys,
                self.fd.as_fd(),
                room,
                &self.io.ifname,
                self.io.mode,
            ) {
                Ok(Step::Done(n)) => {
                    self.lens.extend_from_slice(&(n as u32).to_le_bytes());
                    used += n;
                    count += 1;
                }
                Ok(Step::WouldBlock) => break,
                Err(e) => {
                    failed = Some(e.into());
                    break;
                }
            }
        }
        if let Some(p) = &mut self.pool {
            p.used = used;
        }
        (count, Some((pool, start)), failed)
    }

    fn fail(&self, env: Env, err: JsError) {
        if let Some(e) = crate::error::value_of(env, err) {
            let _ = self.call(env, &[e]);
        }
    }
}

impl Handler for Reader {
    fn ready(&mut self, env: Env) -> Flow {
        let hdr_len = match self.io.hdr_len.load(Ordering::Relaxed) {
            usize::MAX => 0,
            n => n,
        };
        let (count, pool, mut failed) = self.read_batch(env);
        if let (true, Some((pool, start))) = (count > 0, pool) {
            let delivered = (|| {
                let args = [
                    env.null()?,
                    pool,
                    env.double(start as f64)?,
                    env.buffer(&self.lens)?,
                    env.double(hdr_len as f64)?,
                ];
                self.call(env, &args)
            })();
            if let Err(e) = delivered {
                // The callback threw: it stays pending, reported as uncaught.
                if !matches!(e, JsError::Pending) {
                    failed = Some(e);
                }
            }
        }
        match failed {
            None => Flow::Wait,
            Some(e) => {
                self.fail(env, e);
                Flow::Done
            }
        }
    }

    fn cancel(&mut self, env: Env, why: Why) {
        match why {
            Why::Closed(_) | Why::Aborted => {
                if let Ok(n) = env.null() {
                    let _ = self.call(env, &[n, n]);
                }
            }
            Why::Failed(e) => self.fail(env, e),
        }
    }

    fn release(&mut self, env: Env) {
        self.io.drop_watch(self.id);
        if let Some(r) = self.on_frames.take() {
            r.delete(env);
        }
        if let Some(p) = self.pool.take() {
            p.buffer.delete(env);
        }
    }
}

fn queue_of(env: Env, args: &[Value]) -> JsResult<usize> {
    Ok(env.u32_of(arg(env, args, 1)?, "queue")? as usize)
}

/// `frameReader(handle, queue, onFrames, batch?)` → the reader's id
/// (paused); `batch`: the most frames per call (1 to [`BATCH`], default
/// [`BATCH`]).
pub fn frame_reader(env: Env, args: &[Value]) -> JsResult<Value> {
    let queue = queue_of(env, args)?;
    let on_frames = arg(env, args, 2)?;
    let batch = crate::convert::optional(env, arg(env, args, 3)?, |v| env.u32_of(v, "batch"))?
        .map_or(BATCH, |b| (b as usize).clamp(1, BATCH));
    env.expect(on_frames, ValueType::Function, "onFrames")?;
    let (fd, io) = with_device(env, args, |tap, io| {
        let fd = tap.queue_fd(queue)?;
        io.hdr_len(tap)?;
        Ok((dup_fd(fd.as_raw_fd(), "the queue's fd")?, io.clone()))
    })?;
    let reader = Reader {
        io: io.clone(),
        fd,
        pool: None,
        batch,
        lens: Vec::new(),
        on_frames: Some(env.reference(on_frames)?),
        id: 0,
    };
    let raw = reader.fd.as_raw_fd();
    // SAFETY: raw is the reader's own fd, open while the watch (which keeps
    // the reader) lives; moving the reader does not close it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    let mut reader = Box::new(reader);
    let id_slot: *mut u64 = &mut reader.id;
    let id = watch::watch(
        env,
        borrowed,
        Interest::Read,
        None,
        "vmtap.frames",
        true,
        reader,
    )?;
    // SAFETY: the box moved into the watch without moving its contents; the
    // watch is paused, so no handler method runs before this store.
    unsafe { *id_slot = id };
    io.add_watch(id);
    env.double(id as f64)
}

fn id_of(env: Env, args: &[Value]) -> JsResult<u64> {
    let id = env.double_of(arg(env, args, 0)?, "id")?;
    Ok(if id >= 1.0 && id.fract() == 0.0 {
        id as u64
    } else {
        0
    })
}

/// `readerResume(id)`: wait for frames.
pub fn reader_resume(env: Env, args: &[Value]) -> JsResult<Value> {
    let id = id_of(env, args)?;
    env.boolean(watch::resume(env, id)?)
}

/// `readerPause(id)`: stop waiting until resumed.
pub fn reader_pause(env: Env, args: &[Value]) -> JsResult<Value> {
    let id = id_of(env, args)?;
    env.boolean(watch::pause(env, id))
}

/// `readerClose(id)`: end the reader (its duplicate fd is closed now).
pub fn reader_close(env: Env, args: &[Value]) -> JsResult<Value> {
    let id = id_of(env, args)?;
    env.boolean(watch::close(env, id))
}

/// A write waiting for its queue.
struct Write {
    io: Arc<DeviceIo>,
    fd: OwnedFd,
    header: Vec<u8>,
    frame: Vec<u8>,
    done: Option<Deferred>,
    id: u64,
}

impl Write {
    fn settle(&mut self, env: Env, outcome: JsResult<Value>) {
        if let Some(d) = self.done.take() {
            d.settle(env, outcome);
        }
    }
}

impl Handler for Write {
    fn ready(&mut self, env: Env) -> Flow {
        let r = packet::write_frame(
            &RealSys,
            self.fd.as_fd(),
            &self.header,
            &self.frame,
            &self.io.ifname,
            self.io.mode,
        );
        match r {
            Ok(Step::WouldBlock) => Flow::Wait,
            Ok(Step::Done(n)) => {
                let v = env.double(n as f64);
                self.settle(env, v);
                Flow::Done
            }
            Err(e) => {
                self.settle(env, Err(e.into()));
                Flow::Done
            }
        }
    }

    fn cancel(&mut self, env: Env, why: Why) {
        self.settle(env, Err(why_error(why)));
    }

    fn release(&mut self, _env: Env) {
        self.io.drop_watch(self.id);
    }
}

/// The vnet header sizes vmtap sets ([`rules::VNET_HDR_SIZES`]) fit here;
/// a larger one (set by another process on a shared device) takes the heap.
const HDR_STACK: usize = 20;

/// The vnet header to write, in `stack` (or `heap` past [`HDR_STACK`]
/// bytes): `hdr_len` bytes, the caller's header (at most 20 bytes,
/// serialised by TypeScript) or zeros.
fn header_bytes<'b>(
    given: &[u8],
    hdr_len: usize,
    io: &DeviceIo,
    stack: &'b mut [u8; HDR_STACK],
    heap: &'b mut Vec<u8>,
) -> JsResult<&'b [u8]> {
    if hdr_len == 0 {
        if given.iter().any(|&b| b != 0) {
            return Err(Error::invalid(
                "header",
                format!(
                    "{} has no virtio-net header (opened without vnetHdr)",
                    io.ifname
                ),
            )
            .into());
        }
        return Ok(&[]);
    }
    let h: &mut [u8] = if hdr_len <= HDR_STACK {
        &mut stack[..hdr_len]
    } else {
        heap.resize(hdr_len, 0);
        heap
    };
    let n = given.len().min(hdr_len);
    h[..n].copy_from_slice(&given[..n]);
    Ok(h)
}

/// `writeFrame(handle, queue, frame: Buffer, header: Buffer | null,
/// onWait: ((id) => void) | null)` → bytes written, or a Promise of them.
pub fn write_frame(env: Env, args: &[Value]) -> JsResult<Value> {
    let queue = queue_of(env, args)?;
    let frame_v = arg(env, args, 2)?;
    let header_v = arg(env, args, 3)?;
    let on_wait = arg(env, args, 4)?;
    let given = match env.type_of(header_v)? {
        ValueType::Null | ValueType::Undefined => Vec::new(),
        _ => env.bytes_of(header_v, "header")?,
    };
    let gso = given
        .get(GSO_TYPE_OFFSET)
        .is_some_and(|&t| t & !GSO_ECN != 0);
    let pending = with_device(env, args, |tap, io| {
        let fd = tap.queue_fd(queue)?;
        let hdr_len = io.hdr_len(tap)?;
        // No allocation per frame: the header is built on the stack.
        let (mut stack, mut heap) = ([0u8; HDR_STACK], Vec::new());
        let header = header_bytes(&given, hdr_len, io, &mut stack, &mut heap)?;
        let mtu = io.mtu()?;
        env.with_bytes(
            frame_v,
            "frame",
            |frame| -> JsResult<Result<usize, Vec<u8>>> {
                rules::check_frame(io.mode, frame.len(), mtu, gso)?;
                match packet::write_frame(&RealSys, fd, header, frame, &io.ifname, io.mode)? {
                    Step::Done(n) => Ok(Ok(n)),
                    Step::WouldBlock => Ok(Err(frame.to_vec())),
                }
            },
        )?
        .map(|r| r.map_err(|frame| (frame, header.to_vec(), fd.as_raw_fd(), io.clone())))
    })?;
    let (frame, header, raw, io) = match pending {
        Ok(n) => return env.double(n as f64),
        Err(p) => p,
    };
    // The queue is full: wait for it on the event loop, with copies.
    let fd = dup_fd(raw, "the queue's fd")?;
    let mut op = Box::new(Write {
        io: io.clone(),
        fd,
        header,
        frame,
        done: None,
        id: 0,
    });
    let op_ptr: *mut Write = &mut *op;
    // SAFETY: the op's own fd, open while the watch keeps the op.
    let borrowed = unsafe { BorrowedFd::borrow_raw(op.fd.as_raw_fd()) };
    let id = watch::watch(
        env,
        borrowed,
        Interest::Write,
        None,
        "vmtap.writeFrame",
        false,
        op,
    )?;
    let (deferred, promise) = match env.promise() {
        Ok(p) => p,
        Err(e) => {
            watch::close(env, id);
            return Err(e);
        }
    };
    // SAFETY: the op lives in the watch (its box did not move); no handler
    // method runs before the loop's next iteration.
    unsafe {
        (*op_ptr).id = id;
        (*op_ptr).done = Some(deferred);
    }
    io.add_watch(id);
    if env.type_of(on_wait)? == ValueType::Function {
        env.call(on_wait, &[env.double(id as f64)?])?;
    }
    Ok(promise)
}
