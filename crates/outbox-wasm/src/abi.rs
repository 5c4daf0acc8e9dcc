//! The module's exports: plain functions over linear memory, no glue.
//!
//! The host writes a call's input frame ([`crate::frame`]) into the buffer
//! `input(len)` returns, calls, and reads the output frame at `output()`
//! (`output_len()` bytes). Times are `f64` milliseconds since the epoch
//! (`Date.now()`), handles `u32` (0: none). Each export is a line calling
//! [`Module`]; the host's side is `web/host/core.ts`.
//!
//! The only `unsafe` of the crate is here: `#[unsafe(no_mangle)]` on the
//! exports (their names are the boundary), and `Sync` for the module's one
//! state, which a wasm32 module without threads only ever touches from
//! its one thread.
#![allow(unsafe_code)]

use core::cell::RefCell;

use crate::host::Module;

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// A panic is a bug: the module traps (the host reports the call as
/// failed), with none of the formatting machinery a message would need.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

struct State(RefCell<Option<Module>>);

// SAFETY: wasm32-unknown-unknown without the `atomics` feature has one
// thread; nothing else can reach the cell.
unsafe impl Sync for State {}

static STATE: State = State(RefCell::new(None));

fn with<T>(f: impl FnOnce(&mut Module) -> T) -> T {
    let mut state = STATE.0.borrow_mut();
    f(state.get_or_insert_with(Module::default))
}

fn ms(now: f64) -> u64 {
    if now > 0.0 { now as u64 } else { 0 }
}

/// The input buffer, `len` bytes long: the host writes the next call's
/// input frame there.
#[unsafe(no_mangle)]
pub extern "C" fn input(len: u32) -> *mut u8 {
    with(|m| m.input(len as usize).as_mut_ptr())
}

/// Where the last call's output frame is.
#[unsafe(no_mangle)]
pub extern "C" fn output() -> *const u8 {
    with(|m| m.output().as_ptr())
}

/// How long the last call's output frame is.
#[unsafe(no_mangle)]
pub extern "C" fn output_len() -> u32 {
    with(|m| m.output().len() as u32)
}

/// See [`Module::engine`].
#[unsafe(no_mangle)]
pub extern "C" fn engine(guest: u32, seed_lo: u32, seed_hi: u32) -> u32 {
    let seed = u64::from(seed_hi) << 32 | u64::from(seed_lo);
    with(|m| m.engine(guest != 0, seed))
}

/// See [`Module::drop_engine`].
#[unsafe(no_mangle)]
pub extern "C" fn drop_engine(engine: u32) {
    with(|m| m.drop_engine(engine))
}

/// See [`Module::drop_job`].
#[unsafe(no_mangle)]
pub extern "C" fn drop_job(job: u32) {
    with(|m| m.drop_job(job))
}

/// See [`Module::owns`].
#[unsafe(no_mangle)]
pub extern "C" fn owns(engine: u32) -> u32 {
    with(|m| u32::from(m.owns(engine)))
}

/// See [`Module::replay`].
#[unsafe(no_mangle)]
pub extern "C" fn replay(engine: u32) {
    with(|m| m.replay(engine))
}

/// See [`Module::flush`].
#[unsafe(no_mangle)]
pub extern "C" fn flush(engine: u32, exclusive: u32) -> u32 {
    with(|m| m.flush(engine, exclusive != 0))
}

/// See [`Module::respond`].
#[unsafe(no_mangle)]
pub extern "C" fn respond(engine: u32, queue: u32) -> u32 {
    with(|m| m.respond(engine, queue != 0))
}

/// See [`Module::submit`].
#[unsafe(no_mangle)]
pub extern "C" fn submit(engine: u32) -> u32 {
    with(|m| m.submit(engine))
}

/// See [`Module::submit_genesys`].
#[unsafe(no_mangle)]
pub extern "C" fn submit_genesys(engine: u32, open: u32) -> u32 {
    with(|m| m.submit_genesys(engine, open != 0))
}

/// See [`Module::guest_send`].
#[unsafe(no_mangle)]
pub extern "C" fn guest_send(engine: u32) -> u32 {
    with(|m| m.guest_send(engine))
}

/// See [`Module::token`].
#[unsafe(no_mangle)]
pub extern "C" fn token(engine: u32, expires_in: f64) -> u32 {
    with(|m| m.token(engine, expires_in))
}

/// See [`Module::network_back`].
#[unsafe(no_mangle)]
pub extern "C" fn network_back(engine: u32) -> u32 {
    with(|m| m.network_back(engine))
}

/// See [`Module::admin`].
#[unsafe(no_mangle)]
pub extern "C" fn admin(engine: u32, op: u32, n: u32, now: f64) -> u32 {
    with(|m| m.admin(engine, op, n, ms(now)))
}

/// See [`Module::step`].
#[unsafe(no_mangle)]
pub extern "C" fn step(job: u32, now: f64) -> u32 {
    with(|m| m.step(job, ms(now)))
}

/// See [`Module::tx`].
#[unsafe(no_mangle)]
pub extern "C" fn tx(job: u32, now: f64) -> u32 {
    with(|m| m.tx(job, ms(now)))
}

/// See [`Module::tx_end`].
#[unsafe(no_mangle)]
pub extern "C" fn tx_end(job: u32, ok: u32, now: f64) -> u32 {
    with(|m| u32::from(m.tx_end(job, ok != 0, ms(now))))
}

/// See [`Module::reply`].
#[unsafe(no_mangle)]
pub extern "C" fn reply(job: u32, now: f64) {
    with(|m| m.reply(job, ms(now)))
}

/// See [`Module::answer`].
#[unsafe(no_mangle)]
pub extern "C" fn answer(job: u32, k: u32, now: f64) {
    with(|m| m.answer(job, k, ms(now)))
}

/// See [`Module::replay_key`].
#[unsafe(no_mangle)]
pub extern "C" fn replay_key() {
    with(|m| m.replay_key())
}

/// See [`Module::guest_frame`].
#[unsafe(no_mangle)]
pub extern "C" fn guest_frame(kind: u32) {
    with(|m| m.guest_frame(kind))
}

/// See [`Module::guest_read`].
#[unsafe(no_mangle)]
pub extern "C" fn guest_read(kind: u32) {
    with(|m| m.guest_read(kind))
}
