//! What a guest sees of its files is the same on every host. wasmtime-wasi reports the host's
//! view: modification, access and status-change times of the working directory's copies (when
//! the provider copied them), inode and device numbers (hashes of the host's), link counts and
//! directory sizes (which depend on the file system), and directory entries in the host file
//! system's order (hash order on ext4, reverse creation order on tmpfs). A guest that archives
//! or lists its inputs would then give different outputs, and honest providers would disagree.
//!
//! These overrides call wasmtime-wasi's own implementation of each call (its
//! `WasiSnapshotPreview1` methods, on host buffers) and rewrite what it returns:
//!
//! | call | what the guest sees |
//! |---|---|
//! | `fd_filestat_get`, `path_filestat_get` | times: the frozen clock ([`VIRTUAL_UNIX_TIME_SECS`]); `dev` 1; `ino` numbered 1, 2, … in the order the run first sees each file; `nlink` 1; a directory's size 0; a file's size and type as they are |
//! | `fd_readdir` | every entry, `.` and `..` first and the rest sorted by name (bytes), cookies 1, 2, … in that order; `d_ino` as above |
//!
//! Setting times (`*_filestat_set_times`) is allowed and has no visible effect. Everything else
//! a guest can observe of a file — contents, sizes, types, names, errors — follows from the job's
//! inputs and the guest's own deterministic actions.

use std::collections::HashMap;

use wasmtime::{AsContextMut, Caller, Extern, Linker, Memory};
use wasmtime_wasi::p1::types;
use wasmtime_wasi::p1::wasi_snapshot_preview1::WasiSnapshotPreview1;
use wiggle::{GuestMemory, GuestPtr};

use crate::VIRTUAL_UNIX_TIME_SECS;
use crate::host::HostState;

const MODULE: &str = "wasi_snapshot_preview1";
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
/// `filestat`: dev u64, ino u64, filetype u8 (+7), nlink u64, size u64, atim, mtim, ctim u64.
const FILESTAT_SIZE: usize = 64;
/// `dirent` header: d_next u64, d_ino u64, d_namlen u32, d_type u8 (+3); the name follows.
const DIRENT_SIZE: usize = 24;
const FILETYPE_DIRECTORY: u8 = 3;
const FILETYPE_REGULAR: u8 = 4;
const FILETYPE_SYMLINK: u8 = 7;
/// Host buffer a directory listing is first gathered into (doubled while one entry does not fit).
const GATHER_BYTES: usize = 64 << 10;
/// Fuel charged per directory entry a listing gathers (on top of the call's own charge).
const FUEL_PER_ENTRY: u64 = 64;
/// The frozen clock in WASI nanoseconds.
const FROZEN_NS: u64 = VIRTUAL_UNIX_TIME_SECS * 1_000_000_000;

/// Per-run state: the inode numbering.
#[derive(Default)]
pub(crate) struct FileView {
    inodes: HashMap<u64, u64>,
}

impl FileView {
    /// The run's number for the host's inode hash `host` (1, 2, … in order of first sight).
    fn inode(&mut self, host: u64) -> u64 {
        let next = self.inodes.len() as u64 + 1;
        *self.inodes.entry(host).or_insert(next)
    }
}

/// Shadows the calls in the table above on `linker`.
pub(crate) fn add_deterministic_files(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap(
        MODULE,
        "fd_filestat_get",
        |mut caller: Caller<'_, HostState>, fd: i32, buf: i32| -> wasmtime::Result<i32> {
            let memory = memory(&mut caller)?;
            let fuel = caller.as_context_mut().hostcall_fuel();
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            state.wasi.set_hostcall_fuel(fuel);
            let got = wasmtime_wasi::runtime::in_tokio(
                state
                    .wasi
                    .fd_filestat_get(&mut GuestMemory::Unshared(mem), fd_of(fd)),
            );
            match got {
                Ok(stat) => Ok(write_filestat(mem, &mut state.files, buf, &stat)),
                Err(e) => errno(e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "path_filestat_get",
        |mut caller: Caller<'_, HostState>,
         fd: i32,
         flags: i32,
         path: i32,
         path_len: i32,
         buf: i32|
         -> wasmtime::Result<i32> {
            let Ok(flags) = types::Lookupflags::try_from(flags) else {
                return Ok(i32::from(u16::from(types::Errno::Inval)));
            };
            let memory = memory(&mut caller)?;
            let fuel = caller.as_context_mut().hostcall_fuel();
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            state.wasi.set_hostcall_fuel(fuel);
            let path = GuestPtr::<str>::new((path.cast_unsigned(), path_len.cast_unsigned()));
            let got = wasmtime_wasi::runtime::in_tokio(state.wasi.path_filestat_get(
                &mut GuestMemory::Unshared(mem),
                fd_of(fd),
                flags,
                path,
            ));
            match got {
                Ok(stat) => Ok(write_filestat(mem, &mut state.files, buf, &stat)),
                Err(e) => errno(e),
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_readdir",
        |mut caller: Caller<'_, HostState>,
         fd: i32,
         buf: i32,
         buf_len: i32,
         cookie: i64,
         bufused: i32|
         -> wasmtime::Result<i32> {
            let fuel = caller.as_context_mut().hostcall_fuel();
            let entries = match gather(&mut caller.data_mut().wasi, fuel, fd) {
                Ok(entries) => entries,
                Err(e) => return errno(e),
            };
            charge(
                &mut caller,
                FUEL_PER_ENTRY.saturating_mul(entries.len() as u64),
            )?;
            let memory = memory(&mut caller)?;
            let (mem, state) = memory.data_and_store_mut(&mut caller);
            Ok(write_listing(
                mem,
                &mut state.files,
                entries,
                buf,
                buf_len,
                cookie,
                bufused,
            ))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

fn fd_of(fd: i32) -> types::Fd {
    types::Fd::from(fd.cast_unsigned())
}

/// A WASI error as the guest's errno, or the trap it stands for.
fn errno(e: types::Error) -> wasmtime::Result<i32> {
    Ok(i32::from(u16::from(e.downcast()?)))
}

/// Takes `cost` fuel, or traps out of fuel.
fn charge(caller: &mut Caller<'_, HostState>, cost: u64) -> wasmtime::Result<()> {
    crate::host::charge(caller, cost)
}

fn memory(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::Error::msg("missing required memory export")),
    }
}

/// Writes `stat` at `buf` as the guest sees it (the table above); returns the errno.
fn write_filestat(mem: &mut [u8], files: &mut FileView, buf: i32, stat: &types::Filestat) -> i32 {
    let at = buf.cast_unsigned() as usize;
    let Some(out) = at
        .checked_add(FILESTAT_SIZE)
        .and_then(|end| mem.get_mut(at..end))
    else {
        return ERRNO_FAULT;
    };
    let filetype = u8::from(stat.filetype);
    let (dev, ino, nlink, size, times) = if matches!(
        filetype,
        FILETYPE_DIRECTORY | FILETYPE_REGULAR | FILETYPE_SYMLINK
    ) {
        let size = if filetype == FILETYPE_DIRECTORY {
            0
        } else {
            stat.size
        };
        (1, files.inode(stat.ino), 1, size, [FROZEN_NS; 3])
    } else {
        // stdio and the like: wasmtime-wasi reports fixed values for them already.
        (
            stat.dev,
            stat.ino,
            stat.nlink,
            stat.size,
            [stat.atim, stat.mtim, stat.ctim],
        )
    };
    let mut bytes = [0u8; FILESTAT_SIZE];
    bytes[0..8].copy_from_slice(&dev.to_le_bytes());
    bytes[8..16].copy_from_slice(&ino.to_le_bytes());
    bytes[16] = filetype;
    bytes[24..32].copy_from_slice(&nlink.to_le_bytes());
    bytes[32..40].copy_from_slice(&size.to_le_bytes());
    for (i, t) in times.into_iter().enumerate() {
        bytes[40 + 8 * i..48 + 8 * i].copy_from_slice(&t.to_le_bytes());
    }
    out.copy_from_slice(&bytes);
    ERRNO_SUCCESS
}

/// One directory entry as wasmtime-wasi listed it.
struct Entry {
    ino: u64,
    filetype: u8,
    name: Vec<u8>,
}

/// Every entry of directory `fd`, gathered through wasmtime-wasi's (host-ordered) listing into
/// host memory, `.` and `..` first and the rest sorted by name.
fn gather(
    wasi: &mut wasmtime_wasi::p1::WasiP1Ctx,
    hostcall_fuel: usize,
    fd: i32,
) -> Result<Vec<Entry>, types::Error> {
    let mut scratch = vec![0u8; GATHER_BYTES];
    let mut entries: Vec<Entry> = Vec::new();
    let mut next: u64 = 0;
    loop {
        let len = u32::try_from(scratch.len()).unwrap_or(u32::MAX);
        wasi.set_hostcall_fuel(hostcall_fuel);
        let used = wasmtime_wasi::runtime::in_tokio(wasi.fd_readdir(
            &mut GuestMemory::Unshared(&mut scratch),
            fd_of(fd),
            GuestPtr::new(0),
            len,
            next,
        ))? as usize;
        let listed = scratch.get(..used).unwrap_or_default();
        let before = entries.len();
        let mut off = 0;
        while let Some(header) = listed.get(off..off + DIRENT_SIZE) {
            let d_next = u64::from_le_bytes(header[0..8].try_into().unwrap_or_default());
            let ino = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
            let namlen = u32::from_le_bytes(header[16..20].try_into().unwrap_or_default()) as usize;
            let Some(name) = listed.get(off + DIRENT_SIZE..off + DIRENT_SIZE + namlen) else {
                break;
            };
            entries.push(Entry {
                ino,
                filetype: header[20],
                name: name.to_vec(),
            });
            next = d_next;
            off += DIRENT_SIZE + namlen;
        }
        if used < scratch.len() {
            break;
        }
        if entries.len() == before {
            // One entry larger than the buffer: a longer buffer.
            let longer = scratch.len().saturating_mul(2);
            scratch.resize(longer, 0);
        }
    }
    let (mut listing, mut rest): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| e.name == b"." || e.name == b"..");
    rest.sort_by(|a, b| a.name.cmp(&b.name));
    listing.extend(rest);
    Ok(listing)
}

/// Writes the listing from `cookie` on into the guest's buffer exactly as wasmtime-wasi would
/// (cookies 1, 2, … in listing order; the last entry cut off at the buffer's end) and the bytes
/// written at `bufused`; returns the errno.
fn write_listing(
    mem: &mut [u8],
    files: &mut FileView,
    entries: Vec<Entry>,
    buf: i32,
    buf_len: i32,
    cookie: i64,
    bufused: i32,
) -> i32 {
    let at = buf.cast_unsigned() as usize;
    let len = buf_len.cast_unsigned() as usize;
    let skip = usize::try_from(cookie).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        // Numbered in listing order, every entry (also those skipped), so numbers do not
        // depend on how the guest pages through the listing.
        let ino = files.inode(e.ino);
        if i < skip || out.len() >= len {
            continue;
        }
        let mut header = [0u8; DIRENT_SIZE];
        header[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        header[8..16].copy_from_slice(&ino.to_le_bytes());
        header[16..20].copy_from_slice(&(e.name.len() as u32).to_le_bytes());
        header[20] = e.filetype;
        out.extend_from_slice(&header);
        out.extend_from_slice(&e.name);
    }
    out.truncate(len);
    let used = bufused.cast_unsigned() as usize;
    let Some(target) = at
        .checked_add(out.len())
        .and_then(|end| mem.get_mut(at..end))
    else {
        return ERRNO_FAULT;
    };
    target.copy_from_slice(&out);
    let Some(count) = used.checked_add(4).and_then(|end| mem.get_mut(used..end)) else {
        return ERRNO_FAULT;
    };
    count.copy_from_slice(&(out.len() as u32).to_le_bytes());
    ERRNO_SUCCESS
}
