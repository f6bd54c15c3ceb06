//! Disk quotas enforced at points every host agrees on.
//!
//! A guest writes in its working directory (quota: its inputs plus a multiple of its output
//! limit) and in its scratch directory (quota: what the job asked for). Measuring those trees on
//! a wall-clock tick would stop a run at a moment that differs between hosts — a different fuel
//! count, a different outcome for a program that goes over for a moment and cleans up — and
//! honest providers would disagree. So the trees are measured when the guest itself makes them
//! grow:
//!
//! - after `fd_write`/`fd_pwrite` to a file (not stdio) once [`CHECK_EVERY_BYTES`] bytes have
//!   been written since the last measurement;
//! - after every `fd_filestat_set_size` (a file can grow without a write);
//! - after every [`CHECK_EVERY_ENTRIES`]th `path_open` with `O_CREAT`, `path_create_directory`,
//!   `path_symlink` or `path_link`.
//!
//! A tree found over its hard limit stops the run there with [`DiskFull`] (a trap: the same
//! call, the same fuel, on every host). The hard limit of the scratch directory is twice its
//! quota (a tool may go over for a moment and clean up); when the run ends, what the scratch
//! holds must be within the quota itself. These wrappers call wasmtime-wasi's own implementation
//! of each call (as `fsview` does) and only count.

use std::path::PathBuf;

use wasmtime::{AsContextMut, Caller, Linker};
use wasmtime_wasi::p1::types;
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1;
use wiggle::{GuestMemory, GuestPtr};

use crate::host::HostState;
use crate::workdir::{DiskQuota, exceeds_quota};

const MODULE: &str = "wasi_snapshot_preview1";
/// Bytes written to files between two measurements (at most one `fd_write` more: wasmtime-wasi
/// writes one buffer per call).
pub(crate) const CHECK_EVERY_BYTES: u64 = 256 << 10;
/// Entries created between two measurements.
pub(crate) const CHECK_EVERY_ENTRIES: u64 = 32;
/// `O_CREAT` in `path_open`'s `oflags`.
const OFLAGS_CREAT: i32 = 1;

/// The trap that stops a guest whose directory went over its hard limit.
#[derive(Debug)]
pub(crate) struct DiskFull {
    /// Which directory (`/`, or the scratch's guest path).
    pub(crate) dir: String,
}

impl std::fmt::Display for DiskFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "directory {} is over its disk quota", self.dir)
    }
}

impl std::error::Error for DiskFull {}

/// The directories a run writes in, with their hard limits, and what it did since they were
/// last measured.
#[derive(Default)]
pub(crate) struct DiskWatch {
    /// `(host directory, hard limit, guest path)`.
    dirs: Vec<(PathBuf, DiskQuota, String)>,
    written: u64,
    created: u64,
}

impl DiskWatch {
    pub(crate) fn new(dirs: Vec<(PathBuf, DiskQuota, String)>) -> DiskWatch {
        DiskWatch {
            dirs,
            written: 0,
            created: 0,
        }
    }

    /// Measures every directory; `Err` for the first over its limit.
    fn measure(&mut self) -> wasmtime::Result<()> {
        self.written = 0;
        self.created = 0;
        for (dir, quota, guest) in &self.dirs {
            if exceeds_quota(dir, *quota) {
                return Err(wasmtime::Error::new(DiskFull { dir: guest.clone() }));
            }
        }
        Ok(())
    }

    fn wrote(&mut self, fd: i32, bytes: u64) -> wasmtime::Result<()> {
        if fd <= 2 || self.dirs.is_empty() {
            return Ok(());
        }
        self.written = self.written.saturating_add(bytes);
        if self.written >= CHECK_EVERY_BYTES {
            return self.measure();
        }
        Ok(())
    }

    fn created(&mut self) -> wasmtime::Result<()> {
        if self.dirs.is_empty() {
            return Ok(());
        }
        self.created = self.created.saturating_add(1);
        if self.created >= CHECK_EVERY_ENTRIES {
            return self.measure();
        }
        Ok(())
    }
}

fn fd_of(fd: i32) -> types::Fd {
    types::Fd::from(fd.cast_unsigned())
}

fn errno(e: types::Error) -> wasmtime::Result<i32> {
    Ok(i32::from(u16::from(e.downcast()?)))
}

fn memory(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(wasmtime::Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::Error::msg("missing required memory export")),
    }
}

/// Writes `value` at guest address `at`; the errno (`FAULT` if out of bounds).
fn put_u32(mem: &mut [u8], at: i32, value: u32) -> i32 {
    let at = at.cast_unsigned() as usize;
    match mem.get_mut(at..at.saturating_add(4)) {
        Some(out) => {
            out.copy_from_slice(&value.to_le_bytes());
            0
        }
        None => i32::from(u16::from(types::Errno::Fault)),
    }
}

/// Shadows the growing calls (see the module's doc) on `linker`.
pub(crate) fn add_disk_quotas(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut caller: Caller<'_, HostState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         nwritten: i32|
         -> wasmtime::Result<i32> {
            let memory = memory(&mut caller)?;
            let fuel = caller.as_context_mut().hostcall_fuel();
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            state.wasi.set_hostcall_fuel(fuel);
            let ciovs = GuestPtr::new((iovs.cast_unsigned(), iovs_len.cast_unsigned()));
            let got = wasmtime_wasi::runtime::in_tokio(state.wasi.fd_write(
                &mut GuestMemory::Unshared(mem),
                fd_of(fd),
                ciovs,
            ));
            match got {
                Ok(n) => {
                    let errno = put_u32(mem, nwritten, n);
                    state.disk.wrote(fd, u64::from(n))?;
                    Ok(errno)
                }
                Err(e) => errno(e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_pwrite",
        |mut caller: Caller<'_, HostState>,
         fd: i32,
         iovs: i32,
         iovs_len: i32,
         offset: i64,
         nwritten: i32|
         -> wasmtime::Result<i32> {
            let memory = memory(&mut caller)?;
            let fuel = caller.as_context_mut().hostcall_fuel();
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            state.wasi.set_hostcall_fuel(fuel);
            let ciovs = GuestPtr::new((iovs.cast_unsigned(), iovs_len.cast_unsigned()));
            let got = wasmtime_wasi::runtime::in_tokio(state.wasi.fd_pwrite(
                &mut GuestMemory::Unshared(mem),
                fd_of(fd),
                ciovs,
                offset.cast_unsigned(),
            ));
            match got {
                Ok(n) => {
                    let errno = put_u32(mem, nwritten, n);
                    state.disk.wrote(fd, u64::from(n))?;
                    Ok(errno)
                }
                Err(e) => errno(e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_set_size",
        |mut caller: Caller<'_, HostState>, fd: i32, size: i64| -> wasmtime::Result<i32> {
            let memory = memory(&mut caller)?;
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            let got = wasmtime_wasi::runtime::in_tokio(state.wasi.fd_filestat_set_size(
                &mut GuestMemory::Unshared(mem),
                fd_of(fd),
                size.cast_unsigned(),
            ));
            match got {
                Ok(()) => {
                    if !state.disk.dirs.is_empty() {
                        state.disk.measure()?;
                    }
                    Ok(0)
                }
                Err(e) => errno(e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_open",
        |mut caller: Caller<'_, HostState>,
         dirfd: i32,
         dirflags: i32,
         path: i32,
         path_len: i32,
         oflags: i32,
         rights_base: i64,
         rights_inheriting: i64,
         fdflags: i32,
         opened: i32|
         -> wasmtime::Result<i32> {
            let inval = || Ok(i32::from(u16::from(types::Errno::Inval)));
            let Ok(lookup) = types::Lookupflags::try_from(dirflags) else {
                return inval();
            };
            let Ok(flags) = types::Oflags::try_from(oflags) else {
                return inval();
            };
            let Ok(fdflags_t) = types::Fdflags::try_from(fdflags) else {
                return inval();
            };
            let memory = memory(&mut caller)?;
            let fuel = caller.as_context_mut().hostcall_fuel();
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            state.wasi.set_hostcall_fuel(fuel);
            let path = GuestPtr::<str>::new((path.cast_unsigned(), path_len.cast_unsigned()));
            let got = wasmtime_wasi::runtime::in_tokio(state.wasi.path_open(
                &mut GuestMemory::Unshared(mem),
                fd_of(dirfd),
                lookup,
                path,
                flags,
                types::Rights::from_bits_truncate(rights_base.cast_unsigned()),
                types::Rights::from_bits_truncate(rights_inheriting.cast_unsigned()),
                fdflags_t,
            ));
            match got {
                Ok(fd) => {
                    let errno = put_u32(mem, opened, u32::from(fd));
                    if oflags & OFLAGS_CREAT != 0 {
                        state.disk.created()?;
                    }
                    Ok(errno)
                }
                Err(e) => errno(e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_create_directory",
        |mut caller: Caller<'_, HostState>,
         dirfd: i32,
         path: i32,
         path_len: i32|
         -> wasmtime::Result<i32> {
            let memory = memory(&mut caller)?;
            let fuel = caller.as_context_mut().hostcall_fuel();
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            state.wasi.set_hostcall_fuel(fuel);
            let path = GuestPtr::<str>::new((path.cast_unsigned(), path_len.cast_unsigned()));
            let got = wasmtime_wasi::runtime::in_tokio(state.wasi.path_create_directory(
                &mut GuestMemory::Unshared(mem),
                fd_of(dirfd),
                path,
            ));
            match got {
                Ok(()) => {
                    state.disk.created()?;
                    Ok(0)
                }
                Err(e) => errno(e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_symlink",
        |mut caller: Caller<'_, HostState>,
         old: i32,
         old_len: i32,
         dirfd: i32,
         new: i32,
         new_len: i32|
         -> wasmtime::Result<i32> {
            let memory = memory(&mut caller)?;
            let fuel = caller.as_context_mut().hostcall_fuel();
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            state.wasi.set_hostcall_fuel(fuel);
            let old = GuestPtr::<str>::new((old.cast_unsigned(), old_len.cast_unsigned()));
            let new = GuestPtr::<str>::new((new.cast_unsigned(), new_len.cast_unsigned()));
            let got = wasmtime_wasi::runtime::in_tokio(state.wasi.path_symlink(
                &mut GuestMemory::Unshared(mem),
                old,
                fd_of(dirfd),
                new,
            ));
            match got {
                Ok(()) => {
                    state.disk.created()?;
                    Ok(0)
                }
                Err(e) => errno(e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_link",
        |mut caller: Caller<'_, HostState>,
         old_fd: i32,
         old_flags: i32,
         old: i32,
         old_len: i32,
         new_fd: i32,
         new: i32,
         new_len: i32|
         -> wasmtime::Result<i32> {
            let Ok(flags) = types::Lookupflags::try_from(old_flags) else {
                return Ok(i32::from(u16::from(types::Errno::Inval)));
            };
            let memory = memory(&mut caller)?;
            let fuel = caller.as_context_mut().hostcall_fuel();
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            state.wasi.set_hostcall_fuel(fuel);
            let old = GuestPtr::<str>::new((old.cast_unsigned(), old_len.cast_unsigned()));
            let new = GuestPtr::<str>::new((new.cast_unsigned(), new_len.cast_unsigned()));
            let got = wasmtime_wasi::runtime::in_tokio(state.wasi.path_link(
                &mut GuestMemory::Unshared(mem),
                fd_of(old_fd),
                flags,
                old,
                fd_of(new_fd),
                new,
            ));
            match got {
                Ok(()) => {
                    state.disk.created()?;
                    Ok(0)
                }
                Err(e) => errno(e),
            }
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
