//! Per-run host state and the host-side pieces that make a run deterministic and
//! contained: the frozen clocks, the seeded random sources, the resource limiter that
//! remembers why it refused, the wall-clock watchdog, the fuel charge per host call (which
//! also looks at the watchdog) and a non-blocking `poll_oneoff`.

use std::time::{Duration, Instant};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
use wasmtime::{
    AsContextMut, CallHook, Caller, Extern, Global, Linker, ResourceLimiter, StoreContextMut,
    StoreLimits, Trap, Val,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

use crate::{HOSTCALL_FUEL, VIRTUAL_UNIX_TIME_SECS};

/// Everything a [`wasmtime::Store`] carries for one run.
pub(crate) struct HostState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: Limiter,
    pub(crate) watchdog: Watchdog,
    /// What the guest sees of its files (`fsview`).
    pub(crate) files: crate::fsview::FileView,
    /// The directories it writes in and their quotas (`quota`).
    pub(crate) disk: crate::quota::DiskWatch,
    /// Under [`crate::Profile::CountedLoops`], the fuel the module meters itself with; `None`:
    /// the store's (wasmtime meters).
    pub(crate) fuel: Option<GuestFuel>,
}

/// The fuel of a module metered by the rewrite (`meter`), kept as wasmtime keeps a store's: the
/// module's counter global holds minus what is left of the current slice (a slice is
/// [`crate::sandbox::YIELD_FUEL`], or what is left), the rest is in `reserve`.
pub(crate) struct GuestFuel {
    /// The counter, found on the first refuel (the check on entry to the first function
    /// runs before any host call); until then it is the module's initial zero.
    pub(crate) global: Option<Global>,
    /// The module's marker of a call to refuel (found with the counter).
    pub(crate) refueling: Option<Global>,
    pub(crate) reserve: u64,
    /// The most fuel the counter holds at once: [`crate::sandbox::YIELD_FUEL`], so that the
    /// host is called (and looks at the clock) that often, or all of it where checks trap
    /// instead of calling the host (a worker process's runs, [`arm`]).
    slice: u64,
    /// The module charges its host calls (profile 5): the host charges only a call the module
    /// marked (through a table or a reference).
    module_charges: bool,
}

impl GuestFuel {
    /// Fuel kept by the module's counter, all of `limit` in reserve.
    pub(crate) fn new(limit: u64) -> GuestFuel {
        GuestFuel {
            global: None,
            refueling: None,
            reserve: limit,
            slice: crate::sandbox::YIELD_FUEL,
            module_charges: false,
        }
    }

    /// Whether the module charges its host calls ([`crate::Profile::charges_calls`]).
    pub(crate) fn charged_by_module(self, yes: bool) -> GuestFuel {
        GuestFuel {
            module_charges: yes,
            ..self
        }
    }

    /// For a module whose checks trap: [`arm`] puts all of `limit` in the counter.
    pub(crate) fn whole(limit: u64) -> GuestFuel {
        GuestFuel {
            slice: i64::MAX as u64,
            ..GuestFuel::new(limit)
        }
    }
}

/// Before the entry of a module whose checks trap (`meter::meter_with` without refuel) is
/// called: finds its counter and marker and puts all the fuel in the counter, as the first
/// refuel would put a slice there.
pub(crate) fn arm(
    instance: &wasmtime::Instance,
    mut cx: impl AsContextMut<Data = HostState>,
) -> wasmtime::Result<()> {
    let mut cx = cx.as_context_mut();
    let mut find = |name| {
        instance
            .get_global(&mut cx, name)
            .ok_or_else(|| wasmtime::Error::msg(format!("{name} is missing")))
    };
    let global = find(crate::meter::FUEL_GLOBAL)?;
    let refueling = find(crate::meter::REFUELING_GLOBAL)?;
    let left = match cx.data_mut().fuel.as_mut() {
        Some(fuel) => {
            fuel.global = Some(global);
            fuel.refueling = Some(refueling);
            fuel.reserve
        }
        None => {
            return Err(wasmtime::Error::msg(
                "a trapping run without a fuel counter",
            ));
        }
    };
    set_fuel_left(&mut cx, left)
}

/// Whether the run's last trap was a check of a module whose checks trap, finding no fuel left
/// (the module marks it as it marks a call to refuel).
pub(crate) fn check_trapped(mut cx: impl AsContextMut<Data = HostState>) -> bool {
    let mut cx = cx.as_context_mut();
    let Some(marker) = cx.data().fuel.as_ref().and_then(|f| f.refueling) else {
        return false;
    };
    marker.get(&mut cx).i32() == Some(1)
}

/// Whether the host charges [`HOSTCALL_FUEL`] for its entry about to run. Under profiles 1 to 4
/// for every entry but the meter's refuel (the first entry of a run always is: the check on
/// entry to the first function; later ones are marked by the module), wasmtime's libcalls
/// included; under profile 5 only for a call the module marked (through a table or a
/// reference: it charged the others itself).
fn host_charges(cx: &mut StoreContextMut<'_, HostState>) -> bool {
    let Some(fuel) = cx.data().fuel.as_ref() else {
        return true;
    };
    let module_charges = fuel.module_charges;
    match fuel.refueling {
        None => false,
        Some(marker) => {
            let mark = marker.get(&mut *cx).i32();
            if module_charges {
                mark == Some(2)
            } else {
                mark != Some(1)
            }
        }
    }
}

/// The fuel left: the store's, or the module's counter and reserve.
pub(crate) fn fuel_left(mut cx: impl AsContextMut<Data = HostState>) -> wasmtime::Result<u64> {
    let mut cx = cx.as_context_mut();
    let Some((global, reserve)) = cx.data().fuel.as_ref().map(|f| (f.global, f.reserve)) else {
        return cx.get_fuel();
    };
    let injected = match global {
        Some(global) => global.get(&mut cx).i64().unwrap_or(0),
        None => 0,
    };
    Ok(reserve.saturating_add_signed(-injected))
}

/// Sets the fuel left (wasmtime's `set_fuel`: a slice in the counter, the rest in reserve).
pub(crate) fn set_fuel_left(
    mut cx: impl AsContextMut<Data = HostState>,
    left: u64,
) -> wasmtime::Result<()> {
    let mut cx = cx.as_context_mut();
    let Some(global) = cx.data().fuel.as_ref().map(|f| f.global) else {
        return cx.set_fuel(left);
    };
    let slice = match (global, cx.data().fuel.as_ref()) {
        (Some(_), Some(fuel)) => left.min(fuel.slice),
        _ => 0,
    };
    if let Some(fuel) = cx.data_mut().fuel.as_mut() {
        fuel.reserve = left - slice;
    }
    match global {
        Some(global) => global.set(&mut cx, Val::I64(-i64::try_from(slice)?)),
        None => Ok(()),
    }
}

/// Takes `cost` fuel, or traps out of fuel (with none left).
pub(crate) fn charge(
    mut cx: impl AsContextMut<Data = HostState>,
    cost: u64,
) -> wasmtime::Result<()> {
    let left = fuel_left(&mut cx)?;
    match left.checked_sub(cost) {
        Some(left) => set_fuel_left(&mut cx, left),
        None => {
            set_fuel_left(&mut cx, 0)?;
            Err(Trap::OutOfFuel.into())
        }
    }
}

/// Links the function a module rewritten by `meter` calls when its counter reaches zero
/// (wasmtime's `out_of_gas`): the wall clock is looked at, then the next slice comes from the
/// reserve, or the run is out of fuel.
pub(crate) fn add_refuel(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        crate::meter::IMPORT_MODULE,
        crate::meter::REFUEL,
        |mut caller: Caller<'_, HostState>| -> wasmtime::Result<()> {
            if caller.data_mut().watchdog.expired() {
                return Err(Trap::Interrupt.into());
            }
            if caller
                .data()
                .fuel
                .as_ref()
                .is_some_and(|f| f.global.is_none())
            {
                let mut find = |name| {
                    caller
                        .get_export(name)
                        .and_then(Extern::into_global)
                        .ok_or_else(|| wasmtime::Error::msg(format!("{name} is missing")))
                };
                let global = find(crate::meter::FUEL_GLOBAL)?;
                let refueling = find(crate::meter::REFUELING_GLOBAL)?;
                if let Some(fuel) = caller.data_mut().fuel.as_mut() {
                    fuel.global = Some(global);
                    fuel.refueling = Some(refueling);
                }
            }
            let Some(marker) = caller.data().fuel.as_ref().and_then(|f| f.refueling) else {
                return Err(wasmtime::Error::msg("refuel without a fuel counter"));
            };
            marker.set(&mut caller, Val::I32(0))?;
            let left = fuel_left(&mut caller)?;
            if left == 0 {
                return Err(Trap::OutOfFuel.into());
            }
            set_fuel_left(&mut caller, left)
        },
    )?;
    Ok(())
}

/// Wraps [`StoreLimits`] (built with `trap_on_grow_failure(true)`) and records whether
/// it ever refused a memory or table growth, so a refusal is classified by a flag
/// rather than by parsing an error message.
///
/// A memory growth the limits allowed can still fail in the host: the system call that makes
/// the new pages accessible (`mprotect`, `mmap`) runs out of memory or of address-space maps
/// under pressure from other processes. That failure is no verdict on the guest — the same
/// task grows fine elsewhere, and reporting it as [`crate::Outcome::MemoryLimit`] with the fuel
/// used so far would be a result that disagrees with every honest run — so it is recorded
/// apart (`host_failure`) and the run ends with [`crate::SandboxError::Host`]. Growth beyond
/// the memory's declared maximum or its type's limits fails deterministically, without a
/// system error, and stays a refusal.
pub(crate) struct Limiter {
    inner: StoreLimits,
    /// The most bytes all of the guest's linear memories may hold together (multi-memory: the
    /// task's memory limit is for the whole guest, not each memory).
    memory_limit: usize,
    /// What its memories hold now.
    memory_total: usize,
    pub(crate) refused: bool,
    /// Whether the limits allowed the latest memory growth (a failure after that may be the
    /// host's).
    allowed: bool,
    pub(crate) host_failure: Option<String>,
}

impl Limiter {
    pub(crate) fn new(inner: StoreLimits, memory_limit: usize) -> Self {
        Limiter {
            inner,
            memory_limit,
            memory_total: 0,
            refused: false,
            allowed: false,
            host_failure: None,
        }
    }
}

/// Whether `error` comes from a failed system call (the host), not from a limit.
fn system_error(error: &wasmtime::Error) -> bool {
    error.chain().any(|e| {
        e.is::<std::io::Error>() || {
            #[cfg(unix)]
            {
                e.is::<rustix::io::Errno>()
            }
            #[cfg(not(unix))]
            {
                false
            }
        }
    })
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = desired.saturating_sub(current);
        let total = self.memory_total.saturating_add(grown);
        let verdict = if total > self.memory_limit {
            // As `StoreLimits` refuses one memory beyond its limit (`trap_on_grow_failure`).
            Err(wasmtime::Error::msg(format!(
                "the guest's memories would hold {total} bytes, beyond its limit of {}",
                self.memory_limit
            )))
        } else {
            self.inner.memory_growing(current, desired, maximum)
        };
        self.allowed = matches!(verdict, Ok(true));
        if self.allowed {
            self.memory_total = total;
        }
        if !self.allowed {
            self.refused = true;
        }
        verdict
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if std::mem::take(&mut self.allowed) && system_error(&error) {
            self.host_failure = Some(format!("{error:#}"));
            return Err(error.context("the host could not grow the guest's memory"));
        }
        self.refused = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let verdict = self.inner.table_growing(current, desired, maximum);
        if !matches!(verdict, Ok(true)) {
            self.refused = true;
        }
        verdict
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refused = true;
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// The wall limit, looked at whenever the guest yields (every [`crate::sandbox::YIELD_FUEL`]
/// units of fuel) and on every host call. (Disk quotas are enforced where the guest writes, at
/// points every host agrees on: `quota`.)
pub(crate) struct Watchdog {
    start: Instant,
    wall_limit: Duration,
    pub(crate) timed_out: bool,
    /// The run's account with the sandbox's gate (shared with the loop that drives the guest):
    /// looked at with the clock, and its held time not counted.
    pub(crate) pacer: std::sync::Arc<std::sync::Mutex<crate::gate::Pacer>>,
}

impl Watchdog {
    pub(crate) fn new(wall_limit: Duration, gate: Option<std::sync::Arc<crate::Gate>>) -> Self {
        Watchdog {
            start: Instant::now(),
            wall_limit,
            timed_out: false,
            pacer: std::sync::Arc::new(std::sync::Mutex::new(crate::gate::Pacer::new(gate))),
        }
    }

    /// Restarts the wall clock (called right before instantiation).
    pub(crate) fn start(&mut self) {
        self.start = Instant::now();
    }

    /// Whether the wall limit has passed (and, if so, the run timed out).
    /// A paused gate holds the run here; a stopped one ends it as a timeout.
    pub(crate) fn expired(&mut self) -> bool {
        let mut pacer = self.pacer.lock().unwrap_or_else(|p| p.into_inner());
        if !pacer.checkpoint() || self.start.elapsed().saturating_sub(pacer.held) >= self.wall_limit
        {
            self.timed_out = true;
        }
        self.timed_out
    }
}

/// The store's call hook: charges [`HOSTCALL_FUEL`] on every call into the host,
/// trapping with [`Trap::OutOfFuel`] when not enough is left. (Fuel has just been
/// written back to the store at that point, so the charge is exact.)
pub(crate) fn charge_hostcall(
    mut cx: StoreContextMut<'_, HostState>,
    hook: CallHook,
) -> wasmtime::Result<()> {
    if let CallHook::CallingHost = hook {
        // A guest making slow host calls yields rarely: it is stopped here instead.
        if cx.data_mut().watchdog.expired() {
            return Err(Trap::Interrupt.into());
        }
        if host_charges(&mut cx) {
            charge(&mut cx, HOSTCALL_FUEL)?;
        }
    }
    Ok(())
}

/// A wall clock frozen at [`VIRTUAL_UNIX_TIME_SECS`].
struct FixedWallClock;

impl HostWallClock for FixedWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        Duration::from_secs(VIRTUAL_UNIX_TIME_SECS)
    }
}

/// A monotonic clock that never advances.
struct FixedMonotonicClock;

impl HostMonotonicClock for FixedMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        1_000_000_000
    }
}

/// Installs the frozen clocks and the random sources derived from `seed` (independent
/// streams for secure random, insecure random and the insecure seed).
pub(crate) fn make_deterministic(builder: &mut WasiCtxBuilder, seed: u64) {
    let seed = seed.to_le_bytes();
    let secure = blake3::derive_key("gridmint sandbox 2025 secure random", &seed);
    let insecure = blake3::derive_key("gridmint sandbox 2025 insecure random", &seed);
    let insecure_seed = blake3::derive_key("gridmint sandbox 2025 insecure seed", &seed);
    let mut seed_bytes = [0u8; 16];
    seed_bytes.copy_from_slice(&insecure_seed[..16]);
    builder
        .wall_clock(FixedWallClock)
        .monotonic_clock(FixedMonotonicClock)
        .secure_random(ChaCha20Rng::from_seed(secure))
        .insecure_random(ChaCha8Rng::from_seed(insecure))
        .insecure_random_seed(u128::from_le_bytes(seed_bytes));
}

/// Fuel charged per `poll_oneoff` subscription, so that a huge subscription array
/// is not free host work.
const POLL_FUEL_PER_SUBSCRIPTION: u64 = 32;

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;

/// Replaces wasmtime-wasi's `poll_oneoff`, which really sleeps (a guest could block
/// its host thread past the wall limit, where no watchdog can reach it).
/// Under the frozen virtual clock every clock subscription has already expired and
/// every fd (stdin/out are in-memory, files never block) is ready, so all
/// subscriptions fire at once: `sleep` returns immediately and deterministically.
pub(crate) fn add_virtual_poll(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "poll_oneoff",
        |mut caller: Caller<'_, HostState>,
         subs: i32,
         events: i32,
         nsubscriptions: i32,
         nevents: i32|
         -> wasmtime::Result<i32> {
            let n = nsubscriptions.cast_unsigned();
            let cost = u64::from(n).saturating_mul(POLL_FUEL_PER_SUBSCRIPTION);
            charge(&mut caller, cost)?;
            if n == 0 {
                return Ok(ERRNO_INVAL);
            }
            let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
                return Err(wasmtime::Error::msg("missing required memory export"));
            };
            let mem = memory.data_mut(&mut caller);
            Ok(poll_all_ready(
                mem,
                subs.cast_unsigned(),
                events.cast_unsigned(),
                n,
                nevents.cast_unsigned(),
            ))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Reads `n` subscriptions at `subs` and writes one "ready" event per subscription at
/// `events`, then the count at `nevents`. Returns a WASI errno.
fn poll_all_ready(mem: &mut [u8], subs: u32, events: u32, n: u32, nevents: u32) -> i32 {
    let (Ok(subs), Ok(events), Ok(n), Ok(nevents)) = (
        usize::try_from(subs),
        usize::try_from(events),
        usize::try_from(n),
        usize::try_from(nevents),
    ) else {
        return ERRNO_FAULT;
    };
    let mut fired = Vec::with_capacity(n.min(4096));
    for i in 0..n {
        let Some(at) = i
            .checked_mul(SUBSCRIPTION_SIZE)
            .and_then(|off| subs.checked_add(off))
        else {
            return ERRNO_FAULT;
        };
        let Some(sub) = at
            .checked_add(SUBSCRIPTION_SIZE)
            .and_then(|end| mem.get(at..end))
        else {
            return ERRNO_FAULT;
        };
        let (Some(userdata), Some(&tag)) = (read_u64(sub, 0), sub.get(8)) else {
            return ERRNO_FAULT;
        };
        if tag > 2 {
            return ERRNO_INVAL;
        }
        fired.push((userdata, tag));
    }
    for (i, (userdata, tag)) in fired.into_iter().enumerate() {
        let Some(at) = i
            .checked_mul(EVENT_SIZE)
            .and_then(|off| events.checked_add(off))
        else {
            return ERRNO_FAULT;
        };
        let mut event = [0u8; EVENT_SIZE];
        event[..8].copy_from_slice(&userdata.to_le_bytes());
        // error (u16 at 8) stays 0 = success; type (u8 at 10) = subscription tag;
        // fd_readwrite.nbytes (u64 at 16) and flags (u16 at 24) stay 0.
        event[10] = tag;
        if !write_bytes(mem, at, &event) {
            return ERRNO_FAULT;
        }
    }
    let count = u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    if !write_bytes(mem, nevents, &count) {
        return ERRNO_FAULT;
    }
    ERRNO_SUCCESS
}

fn read_u64(mem: &[u8], at: usize) -> Option<u64> {
    let bytes = mem.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn write_bytes(mem: &mut [u8], at: usize, bytes: &[u8]) -> bool {
    match at
        .checked_add(bytes.len())
        .and_then(|end| mem.get_mut(at..end))
    {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_fires_every_subscription() {
        let mut mem = vec![0u8; 1024];
        // Two subscriptions at 0: a clock (tag 0) and an fd_read (tag 1).
        mem[..8].copy_from_slice(&7u64.to_le_bytes());
        mem[48..56].copy_from_slice(&9u64.to_le_bytes());
        mem[56] = 1;
        assert_eq!(poll_all_ready(&mut mem, 0, 512, 2, 1000), ERRNO_SUCCESS);
        assert_eq!(read_u64(&mem, 512), Some(7));
        assert_eq!(mem[522], 0);
        assert_eq!(read_u64(&mem, 544), Some(9));
        assert_eq!(mem[554], 1);
        assert_eq!(&mem[1000..1004], &2u32.to_le_bytes());
    }

    #[test]
    fn poll_rejects_out_of_bounds_and_bad_tags() {
        let mut mem = vec![0u8; 128];
        assert_eq!(poll_all_ready(&mut mem, 100, 0, 1, 0), ERRNO_FAULT);
        assert_eq!(poll_all_ready(&mut mem, 0, 120, 1, 0), ERRNO_FAULT);
        assert_eq!(poll_all_ready(&mut mem, 0, 48, 1, 126), ERRNO_FAULT);
        assert_eq!(
            poll_all_ready(&mut mem, u32::MAX - 10, 0, u32::MAX, 0),
            ERRNO_FAULT
        );
        mem[8] = 3;
        assert_eq!(poll_all_ready(&mut mem, 0, 48, 1, 0), ERRNO_INVAL);
    }
}
