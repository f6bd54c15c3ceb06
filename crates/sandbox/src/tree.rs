//! Directory trees as content-addressed blobs: a job may mount a directory read-only (a Python
//! standard library at `/usr/local`, a dataset), and that directory travels as one blob whose
//! BLAKE3 is the tree's identity.
//!
//! The blob is a tar archive, written by [`pack`] in one canonical form so that the same tree
//! always gives the same bytes, whatever host, clock, owner or permission bits it was packed
//! with:
//!
//! - the directory's contents, not the directory itself: every entry is named by its path
//!   relative to the packed directory, a directory with a trailing `/` (`lib/`, `lib/os.py`);
//! - directories and regular files only, nothing else (no symlinks, hard links, devices, fifos);
//! - entries in the byte order of their names as written (so a directory precedes what it
//!   holds), every directory listed explicitly, empty ones included;
//! - GNU headers with mode `0o755` (directories) or `0o644` (files), mtime 0, uid and gid 0 and
//!   empty owner names; a path longer than the 100-byte name field goes in a GNU long-name
//!   entry (`././@LongLink`, itself with fixed fields) before its header;
//! - the standard end-of-archive marker, two zero blocks, and nothing after it. An empty
//!   directory therefore packs to exactly 1024 zero bytes.
//!
//! [`check`] is what a coordinator runs on an uploaded blob: it accepts exactly the archives that
//! [`unpack`] writes, without writing anything. It does not demand the canonical form (any
//! well-formed tree of directories and files is accepted, in any order, with any header modes
//! and times, which are ignored), but it refuses anything that is not plainly a tree: other
//! entry kinds, pax extended headers, paths that are absolute or climb out with `..`, names
//! Windows or another parser could read differently (`\`, `.`, empty components), duplicates,
//! entries inside a file, more than [`MAX_TREE_ENTRIES`] files and directories, and any archive
//! that does not parse cleanly to its end marker. A zero-byte blob is not an archive and is
//! refused as [`TreeError::Malformed`]; the empty tree is the 1024 zero bytes above.
//!
//! [`unpack`] writes a checked tree into a fresh directory beside its destination and renames it
//! into place, so an error or a crashed process never leaves half a tree at the destination. It
//! never follows anything and takes nothing from the archive but paths and contents: files are
//! created read-only (`0o444` on unix), directories with the process's default mode.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::path::Path;

use tar::{Archive, Builder, EntryType, Header};

/// Most files plus directories one tree may hold (directories only implied by a deeper path
/// count too).
pub const MAX_TREE_ENTRIES: usize = 65_536;

/// Most bytes in an entry's path relative to the tree's root (without a directory's trailing
/// `/`).
pub const MAX_TREE_PATH: usize = 1024;

/// Most bytes in one component of a path (a file or directory name): what common file systems
/// allow, so that a tree [`check`] accepts can be written.
pub const MAX_TREE_NAME: usize = 255;

/// Most components in an entry's path: `a/b/c` has depth 3.
pub const MAX_TREE_DEPTH: usize = 32;

/// Tar's block size; headers and data are padded to it.
const BLOCK: u64 = 512;

/// The end-of-archive marker: two zero blocks.
const END_MARKER: usize = 1024;

/// What a tree holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeSummary {
    /// Directories, the root excluded (those only implied by a deeper path included).
    pub dirs: u64,
    /// Regular files.
    pub files: u64,
    /// The files' sizes added up.
    pub file_bytes: u64,
}

/// Why a path cannot name an entry of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathFault {
    /// The path is empty (or is only `/` for a directory).
    Empty,
    /// The path starts with `/`.
    Absolute,
    /// A component is `..`.
    ParentDir,
    /// A component is `.`.
    CurrentDir,
    /// Two `/` in a row (or a file's path ends in `/`).
    EmptyComponent,
    /// The path contains a NUL byte.
    Nul,
    /// The path contains `\`, a separator on Windows.
    Backslash,
    /// The path is not UTF-8.
    NotUtf8,
    /// The path is longer than [`MAX_TREE_PATH`] bytes.
    TooLong,
    /// A component is longer than [`MAX_TREE_NAME`] bytes.
    NameTooLong,
    /// The path has more than [`MAX_TREE_DEPTH`] components.
    TooDeep,
}

impl fmt::Display for PathFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathFault::Empty => f.write_str("it is empty"),
            PathFault::Absolute => f.write_str("it is absolute"),
            PathFault::ParentDir => f.write_str("it has a `..` component"),
            PathFault::CurrentDir => f.write_str("it has a `.` component"),
            PathFault::EmptyComponent => f.write_str("it has an empty component"),
            PathFault::Nul => f.write_str("it contains a NUL byte"),
            PathFault::Backslash => f.write_str("it contains a backslash"),
            PathFault::NotUtf8 => f.write_str("it is not UTF-8"),
            PathFault::TooLong => write!(f, "it is longer than {MAX_TREE_PATH} bytes"),
            PathFault::NameTooLong => {
                write!(f, "it has a component longer than {MAX_TREE_NAME} bytes")
            }
            PathFault::TooDeep => write!(f, "it is deeper than {MAX_TREE_DEPTH} levels"),
        }
    }
}

/// Why a directory cannot be packed, or a blob is not a tree or cannot be unpacked.
///
/// Paths in these errors are paths inside the tree (relative, as the archive names them),
/// except in [`TreeError::Io`] and [`TreeError::Exists`], which name host paths.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    /// Reading the directory being packed or writing the unpacked tree failed; the message
    /// names the host path.
    #[error("{0}")]
    Io(String),
    /// The entry is neither a directory nor a regular file (`kind` says what it is), or it is
    /// described by a pax extended header.
    #[error("{path:?} is a {kind}: a tree holds only directories and regular files")]
    Unsupported {
        /// The entry's path.
        path: String,
        /// What the entry is, in words (`symbolic link`, `hard link`, ...).
        kind: String,
    },
    /// The path cannot name an entry of a tree.
    #[error("bad path {path:?}: {why}")]
    BadPath {
        /// The path, lossily decoded if it is not UTF-8.
        path: String,
        /// What is wrong with it.
        why: PathFault,
    },
    /// Two entries have this path (two files, a file and a directory, or a directory listed
    /// twice).
    #[error("{0:?} appears twice in the tree")]
    Duplicate(String),
    /// An entry lies inside a path that is a file.
    #[error("{path:?} is inside {file:?}, which is a file")]
    UnderFile {
        /// The entry's path.
        path: String,
        /// The file it would be inside.
        file: String,
    },
    /// The tree holds more than `limit` ([`MAX_TREE_ENTRIES`]) files and directories.
    #[error("the tree holds more than {limit} files and directories")]
    TooManyEntries {
        /// The limit that was passed.
        limit: usize,
    },
    /// The bytes are not a well-formed tar archive: empty, truncated, a bad header checksum,
    /// garbage, data after the end marker.
    #[error("malformed tree archive: {0}")]
    Malformed(String),
    /// The destination of [`unpack`] already exists.
    #[error("{0} already exists")]
    Exists(String),
}

/// Packs the contents of `dir` (not `dir` itself) into a canonical tar archive (see the module
/// documentation): the same tree gives the same bytes on any host.
///
/// `dir` itself may be a symlink to a directory; anything inside it that is not a directory or
/// a regular file is [`TreeError::Unsupported`], naming it. Names must satisfy the rules
/// [`check`] applies ([`TreeError::BadPath`]), and the tree must hold at most
/// [`MAX_TREE_ENTRIES`] entries, so a packed tree always passes [`check`].
pub fn pack(dir: &Path) -> Result<Vec<u8>, TreeError> {
    let meta = fs::metadata(dir).map_err(|e| io_error("read", dir, &e))?;
    if !meta.is_dir() {
        return Err(TreeError::Io(format!(
            "cannot pack {}: not a directory",
            dir.display()
        )));
    }
    let mut entries = Vec::new();
    collect(dir, "", &mut entries)?;
    // Names as written: a directory's trailing `/` sorts it before anything it holds.
    entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));

    let mut builder = Builder::new(Vec::new());
    for entry in &entries {
        let mut header = Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let write = |e: io::Error| {
            TreeError::Io(format!(
                "cannot write the archive entry {}: {e}",
                entry.name
            ))
        };
        if entry.is_dir {
            header.set_entry_type(EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder
                .append_data(&mut header, &entry.name, io::empty())
                .map_err(write)?;
        } else {
            let data = read_regular(&entry.host, &entry.name)?;
            header.set_entry_type(EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            builder
                .append_data(&mut header, &entry.name, data.as_slice())
                .map_err(write)?;
        }
    }
    builder
        .into_inner()
        .map_err(|e| TreeError::Io(format!("cannot finish the archive: {e}")))
}

/// Checks that `bytes` is a well-formed tree archive, exactly as [`unpack`] would, writing
/// nothing, and says what it holds.
pub fn check(bytes: &[u8]) -> Result<TreeSummary, TreeError> {
    check_with_limit(bytes, MAX_TREE_ENTRIES)
}

/// [`check`] with `max_entries` in place of [`MAX_TREE_ENTRIES`].
fn check_with_limit(bytes: &[u8], max_entries: usize) -> Result<TreeSummary, TreeError> {
    walk(bytes, max_entries, |_, _| Ok(()))
}

/// Writes the tree in `bytes` into `dest`, which must not exist ([`TreeError::Exists`]), after
/// [`check`]ing it.
///
/// Missing parents of `dest` are created. The tree is built in a temporary directory beside
/// `dest` (`.tree-*` in the same parent) and renamed into place at the end, so an error or a
/// crashed process never leaves part of a tree at `dest`; on an error the temporary directory
/// is removed. Nothing is fsync'd: a caller that needs the tree to survive a power loss must
/// sync it (or check it again) itself. Should another process create `dest` meanwhile, the
/// rename fails with [`TreeError::Exists`] — unless what it created is an empty directory,
/// which the rename replaces.
///
/// Files are created (never opened if they exist) and filled with their contents; on unix
/// they are read-only (`0o444`). Directories get the process's default mode, so the tree can
/// be removed again; `dest` itself included (tempfile creates its directories with the default
/// mode). Nothing else from the archive (modes, times, owners) is applied.
pub fn unpack(bytes: &[u8], dest: &Path) -> Result<TreeSummary, TreeError> {
    unpack_with_limit(bytes, dest, MAX_TREE_ENTRIES)
}

/// [`unpack`] with `max_entries` in place of [`MAX_TREE_ENTRIES`].
fn unpack_with_limit(
    bytes: &[u8],
    dest: &Path,
    max_entries: usize,
) -> Result<TreeSummary, TreeError> {
    let summary = check_with_limit(bytes, max_entries)?;
    match dest.symlink_metadata() {
        Ok(_) => return Err(TreeError::Exists(dest.display().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("inspect", dest, &e)),
    }
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(|e| io_error("create", parent, &e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tree-")
        .tempdir_in(parent)
        .map_err(|e| io_error("create a temporary directory in", parent, &e))?;

    walk(bytes, max_entries, |path, data| {
        let at = tmp.path().join(path);
        let named = || dest.join(path);
        match data {
            None => fs::create_dir_all(&at).map_err(|e| io_error("create", &named(), &e)),
            Some(data) => {
                if let Some(dir) = at.parent() {
                    fs::create_dir_all(dir).map_err(|e| io_error("create", &named(), &e))?;
                }
                let mut options = fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o444);
                let mut file = options
                    .open(&at)
                    .map_err(|e| io_error("create", &named(), &e))?;
                file.write_all(data)
                    .map_err(|e| io_error("write", &named(), &e))
            }
        }
    })?;

    if let Err(e) = fs::rename(tmp.path(), dest) {
        if dest.symlink_metadata().is_ok() {
            return Err(TreeError::Exists(dest.display().to_string()));
        }
        return Err(io_error("move the unpacked tree to", dest, &e));
    }
    // The temporary directory is `dest` now: nothing is left to clean up.
    tmp.disable_cleanup(true);
    Ok(summary)
}

/// One entry [`pack`] found.
struct Found {
    /// The name as written in the archive: the relative path, with a trailing `/` for a
    /// directory.
    name: String,
    /// Where it is on this host.
    host: std::path::PathBuf,
    is_dir: bool,
}

/// Adds to `out` every entry under `host`, whose path in the tree is `prefix` (empty for the
/// root), recursively, without following symlinks.
fn collect(host: &Path, prefix: &str, out: &mut Vec<Found>) -> Result<(), TreeError> {
    let listing = fs::read_dir(host).map_err(|e| io_error("read", host, &e))?;
    for item in listing {
        let item = item.map_err(|e| io_error("read", host, &e))?;
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            }
        };
        let path = match item.file_name().into_string() {
            Ok(name) => join(&name),
            Err(name) => {
                return Err(TreeError::BadPath {
                    path: join(&name.to_string_lossy()),
                    why: PathFault::NotUtf8,
                });
            }
        };
        tree_path(path.as_bytes())?;
        let kind = item
            .file_type()
            .map_err(|e| io_error("read", &item.path(), &e))?;
        if kind.is_dir() {
            out.push(Found {
                name: format!("{path}/"),
                host: item.path(),
                is_dir: true,
            });
        } else if kind.is_file() {
            out.push(Found {
                name: path.clone(),
                host: item.path(),
                is_dir: false,
            });
        } else {
            return Err(TreeError::Unsupported {
                path,
                kind: host_kind(kind).to_owned(),
            });
        }
        if out.len() > MAX_TREE_ENTRIES {
            return Err(TreeError::TooManyEntries {
                limit: MAX_TREE_ENTRIES,
            });
        }
        if kind.is_dir() {
            collect(&item.path(), &path, out)?;
        }
    }
    Ok(())
}

/// The contents of the regular file at `host`, whose tree path is `name`; refused if it is no
/// longer a regular file when opened.
fn read_regular(host: &Path, name: &str) -> Result<Vec<u8>, TreeError> {
    let mut file = fs::File::open(host).map_err(|e| io_error("read", host, &e))?;
    let meta = file.metadata().map_err(|e| io_error("read", host, &e))?;
    if !meta.is_file() {
        return Err(TreeError::Unsupported {
            path: name.to_owned(),
            kind: "file that stopped being a regular file while packing".to_owned(),
        });
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| io_error("read", host, &e))?;
    Ok(data)
}

/// What a host file system entry that is neither a directory nor a regular file is.
fn host_kind(kind: fs::FileType) -> &'static str {
    if kind.is_symlink() {
        return "symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "fifo";
        }
        if kind.is_socket() {
            return "socket";
        }
        if kind.is_char_device() {
            return "character device";
        }
        if kind.is_block_device() {
            return "block device";
        }
    }
    "special file"
}

/// What an archive entry of a kind a tree cannot hold is, in words.
fn entry_kind(kind: EntryType) -> String {
    match kind {
        EntryType::Link => "hard link".into(),
        EntryType::Symlink => "symbolic link".into(),
        EntryType::Char => "character device".into(),
        EntryType::Block => "block device".into(),
        EntryType::Fifo => "fifo".into(),
        EntryType::Continuous => "contiguous file".into(),
        EntryType::GNUSparse => "GNU sparse file".into(),
        EntryType::XGlobalHeader => "pax global header".into(),
        EntryType::XHeader => "pax extended header".into(),
        EntryType::GNULongName => "GNU long name without a recognized header".into(),
        EntryType::GNULongLink => "GNU long link name without a recognized header".into(),
        other => format!("entry of type {:?}", char::from(other.as_byte())),
    }
}

/// `raw` as a tree path (a directory's without its trailing `/`), if it is one.
fn tree_path(raw: &[u8]) -> Result<&str, TreeError> {
    let Ok(path) = std::str::from_utf8(raw) else {
        return Err(TreeError::BadPath {
            path: String::from_utf8_lossy(raw).into_owned(),
            why: PathFault::NotUtf8,
        });
    };
    let bad = |why| {
        Err(TreeError::BadPath {
            path: path.to_owned(),
            why,
        })
    };
    if path.is_empty() {
        return bad(PathFault::Empty);
    }
    if path.starts_with('/') {
        return bad(PathFault::Absolute);
    }
    if path.len() > MAX_TREE_PATH {
        return bad(PathFault::TooLong);
    }
    if path.contains('\0') {
        return bad(PathFault::Nul);
    }
    if path.contains('\\') {
        return bad(PathFault::Backslash);
    }
    let mut depth = 0;
    for name in path.split('/') {
        depth += 1;
        match name {
            "" => return bad(PathFault::EmptyComponent),
            "." => return bad(PathFault::CurrentDir),
            ".." => return bad(PathFault::ParentDir),
            _ if name.len() > MAX_TREE_NAME => return bad(PathFault::NameTooLong),
            _ => {}
        }
    }
    if depth > MAX_TREE_DEPTH {
        return bad(PathFault::TooDeep);
    }
    Ok(path)
}

/// A path of the tree seen so far.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Node {
    File,
    /// A directory with its own entry.
    Dir,
    /// A directory only implied, so far, by the path of something inside it.
    ImpliedDir,
}

/// Validates the archive in `bytes` entry by entry (the rules in the module documentation),
/// calling `visit` with each valid entry's path and, for a file, its contents (`None` for a
/// directory), in archive order. Stops at the first invalid entry or `visit` error.
fn walk<'a>(
    bytes: &'a [u8],
    max_entries: usize,
    mut visit: impl FnMut(&str, Option<&'a [u8]>) -> Result<(), TreeError>,
) -> Result<TreeSummary, TreeError> {
    let malformed = |e: io::Error| TreeError::Malformed(e.to_string());
    let mut archive = Archive::new(Cursor::new(bytes));
    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut summary = TreeSummary::default();
    // Where the last entry (its data padded to a block) ends: the end marker starts there.
    let mut end: u64 = 0;

    for entry in archive.entries_with_seek().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let lossy = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let is_dir = match entry.header().entry_type() {
            EntryType::Regular => false,
            EntryType::Directory => true,
            other => {
                return Err(TreeError::Unsupported {
                    path: lossy,
                    kind: entry_kind(other),
                });
            }
        };
        // A pax header could rename the entry or change its size behind the header's back.
        if entry.pax_extensions().map_err(malformed)?.is_some() {
            return Err(TreeError::Unsupported {
                path: lossy,
                kind: "entry described by a pax extended header".into(),
            });
        }
        if entry.link_name_bytes().is_some_and(|link| !link.is_empty()) {
            return Err(TreeError::Malformed(format!(
                "{lossy:?} is a directory or file but names a link target"
            )));
        }
        let raw = entry.path_bytes();
        let raw = if is_dir {
            raw.strip_suffix(b"/").unwrap_or(&raw)
        } else {
            &raw
        };
        let path = tree_path(raw)?.to_owned();

        let size = entry.size();
        if is_dir && size != 0 {
            return Err(TreeError::Malformed(format!(
                "the directory {path:?} carries {size} bytes of data"
            )));
        }
        let start = entry.raw_file_position();
        let data = start
            .checked_add(size)
            .and_then(|stop| Some(usize::try_from(start).ok()?..usize::try_from(stop).ok()?))
            .and_then(|range| bytes.get(range))
            .ok_or_else(|| {
                TreeError::Malformed(format!("truncated inside the data of {path:?}"))
            })?;
        end = start
            .checked_add(size)
            .and_then(|stop| stop.checked_next_multiple_of(BLOCK))
            .ok_or_else(|| TreeError::Malformed(format!("the size of {path:?} overflows")))?;

        // Every node's ancestors are directories in `nodes`: look upwards for the first
        // known one, noting the missing ones in between.
        let mut implied = Vec::new();
        let mut above = path.as_str();
        while let Some(slash) = above.rfind('/') {
            above = &path[..slash];
            match nodes.get(above) {
                Some(Node::File) => {
                    let file = above.to_owned();
                    return Err(TreeError::UnderFile { path, file });
                }
                Some(Node::Dir | Node::ImpliedDir) => break,
                None => implied.push(above),
            }
        }
        let is_new = match nodes.get(path.as_str()) {
            None => true,
            Some(Node::ImpliedDir) if is_dir => false,
            Some(_) => return Err(TreeError::Duplicate(path)),
        };
        let added = implied.len() + usize::from(is_new);
        if nodes.len().saturating_add(added) > max_entries {
            return Err(TreeError::TooManyEntries { limit: max_entries });
        }
        for dir in implied {
            nodes.insert(dir.to_owned(), Node::ImpliedDir);
            summary.dirs += 1;
        }
        if is_dir {
            if is_new {
                summary.dirs += 1;
            }
            nodes.insert(path.clone(), Node::Dir);
            visit(&path, None)?;
        } else {
            nodes.insert(path.clone(), Node::File);
            summary.files += 1;
            summary.file_bytes += size;
            visit(&path, Some(data))?;
        }
    }

    let tail = usize::try_from(end)
        .ok()
        .and_then(|end| bytes.get(end..))
        .ok_or_else(|| TreeError::Malformed("truncated inside an entry's padding".into()))?;
    if tail.len() < END_MARKER {
        return Err(TreeError::Malformed(
            "no end-of-archive marker (two zero blocks)".into(),
        ));
    }
    if tail.len() % BLOCK as usize != 0 {
        return Err(TreeError::Malformed(
            "the length is not a whole number of 512-byte blocks".into(),
        ));
    }
    if tail.iter().any(|&byte| byte != 0) {
        return Err(TreeError::Malformed(
            "data after the end-of-archive marker".into(),
        ));
    }
    Ok(summary)
}

/// An I/O failure to `verb` the host path `path`.
fn io_error(verb: &str, path: &Path, error: &io::Error) -> TreeError {
    TreeError::Io(format!("cannot {verb} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use super::*;

    /// Every path under `root` (relative, `/`-separated) with a file's contents or `None` for a
    /// directory.
    fn listing(root: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
        fn go(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
            for item in fs::read_dir(dir).unwrap() {
                let item = item.unwrap();
                let name = item.file_name().into_string().unwrap();
                let path = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let kind = item.file_type().unwrap();
                if kind.is_dir() {
                    out.insert(path.clone(), None);
                    go(&item.path(), &path, out);
                } else {
                    assert!(kind.is_file(), "{path} is neither a file nor a directory");
                    out.insert(path, Some(fs::read(item.path()).unwrap()));
                }
            }
        }
        let mut out = BTreeMap::new();
        go(root, "", &mut out);
        out
    }

    const LONG_DIR: &str =
        "a-directory-name-of-seventy-bytes-that-pushes-the-path-past-one-hundred";

    /// A tree with nested and empty directories, an empty file, a file of several blocks, a
    /// path longer than the 100-byte name field, and non-ASCII names; written in `order`.
    fn sample_tree(root: &Path, reverse: bool) {
        let big: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let long_file = format!("{LONG_DIR}/and-a-file-name-long-enough-too.txt");
        let mut files: Vec<(String, Vec<u8>)> = vec![
            ("top.txt".into(), b"top\n".to_vec()),
            ("a/b/c/deep.txt".into(), b"deep".to_vec()),
            ("a/empty-file".into(), Vec::new()),
            ("a/big.bin".into(), big),
            (long_file, b"long".to_vec()),
            ("données/π.txt".into(), "ünïcödé".as_bytes().to_vec()),
            ("日本/語".into(), b"x".to_vec()),
        ];
        let mut dirs = vec!["empty", "a/b/c", LONG_DIR, "données", "日本"];
        if reverse {
            files.reverse();
            dirs.reverse();
        }
        for dir in dirs {
            fs::create_dir_all(root.join(dir)).unwrap();
        }
        for (path, data) in files {
            fs::write(root.join(path), data).unwrap();
        }
    }

    #[test]
    fn a_packed_tree_unpacks_to_the_same_directories_files_and_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src, false);
        let blob = pack(&src).unwrap();
        // The long path needed the GNU long-name extension.
        assert!(blob.windows(13).any(|w| w == b"././@LongLink"));
        let expected = TreeSummary {
            // empty, a, a/b, a/b/c, LONG_DIR, données, 日本
            dirs: 7,
            files: 7,
            file_bytes: 4 + 4 + 3000 + 4 + "ünïcödé".len() as u64 + 1,
        };
        assert_eq!(check(&blob), Ok(expected));

        // Missing parents of the destination are created.
        let dest = tmp.path().join("cache/trees/one");
        assert_eq!(unpack(&blob, &dest), Ok(expected));
        assert_eq!(listing(&dest), listing(&src));
        assert!(listing(&dest).contains_key("empty"));
        // No temporary directory is left beside the tree.
        let beside: Vec<_> = fs::read_dir(tmp.path().join("cache/trees"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, vec![std::ffi::OsString::from("one")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dest.join("a/big.bin"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o444);
            let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode(&dest), mode(&dest.join("a")));
        }
        // The unpacked tree packs to the same blob.
        assert_eq!(pack(&dest).unwrap(), blob);
    }

    #[test]
    fn packing_ignores_mtimes_permissions_and_creation_order() {
        let tmp = tempfile::tempdir().unwrap();
        let first = tmp.path().join("first");
        let second = tmp.path().join("second");
        sample_tree(&first, false);
        sample_tree(&second, true);
        let blob = pack(&first).unwrap();
        assert_eq!(pack(&first).unwrap(), blob);

        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        for (path, contents) in listing(&second) {
            let at = second.join(&path);
            let mut perms = fs::metadata(&at).unwrap().permissions();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                perms.set_mode(if contents.is_some() { 0o600 } else { 0o700 });
            }
            #[cfg(not(unix))]
            perms.set_readonly(contents.is_some());
            if contents.is_some() {
                fs::File::options()
                    .write(true)
                    .open(&at)
                    .unwrap()
                    .set_modified(when)
                    .unwrap();
            }
            fs::set_permissions(&at, perms).unwrap();
        }
        assert_eq!(pack(&second).unwrap(), blob);

        // And what the blob records is the canonical form.
        let mut archive = Archive::new(blob.as_slice());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.username_bytes(), Some(&b""[..]));
            let dir = header.entry_type() == EntryType::Directory;
            assert_eq!(header.mode().unwrap(), if dir { 0o755 } else { 0o644 });
            names.push(entry.path_bytes().into_owned());
        }
        assert!(names.is_sorted(), "entries are not sorted by name");
        assert!(names.contains(&b"empty/".to_vec()));
    }

    #[test]
    fn an_empty_directory_packs_to_the_bare_end_marker_and_is_an_empty_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let blob = pack(tmp.path()).unwrap();
        assert_eq!(blob, vec![0; 1024]);
        assert_eq!(check(&blob), Ok(TreeSummary::default()));
        let dest = tmp.path().join("out");
        assert_eq!(unpack(&blob, &dest), Ok(TreeSummary::default()));
        assert!(listing(&dest).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn pack_refuses_a_symlink_and_names_it() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("sub")).unwrap();
        fs::write(tmp.path().join("sub/target"), b"x").unwrap();
        std::os::unix::fs::symlink("target", tmp.path().join("sub/link")).unwrap();
        assert_eq!(
            pack(tmp.path()),
            Err(TreeError::Unsupported {
                path: "sub/link".into(),
                kind: "symbolic link".into(),
            })
        );
    }

    #[test]
    fn pack_refuses_a_name_with_a_backslash() {
        if cfg!(windows) {
            return; // A backslash cannot be part of a name there.
        }
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(r"a\b"), b"x").unwrap();
        assert_eq!(
            pack(tmp.path()),
            Err(TreeError::BadPath {
                path: r"a\b".into(),
                why: PathFault::Backslash,
            })
        );
    }

    /// A hand-made archive, hostile or not.
    #[derive(Default)]
    struct Hand {
        out: Vec<u8>,
    }

    impl Hand {
        /// An entry whose name field holds exactly `name` (no checks, no normalization).
        fn raw(mut self, name: &[u8], kind: EntryType, data: &[u8]) -> Self {
            let mut header = Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_entry_type(kind);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            header.set_cksum();
            self.push(&header, data);
            self
        }

        fn file(self, name: &str, data: &[u8]) -> Self {
            self.raw(name.as_bytes(), EntryType::Regular, data)
        }

        fn dir(self, name: &str) -> Self {
            self.raw(name.as_bytes(), EntryType::Directory, b"")
        }

        /// An entry written through the tar crate's own path handling (GNU long names).
        fn long(mut self, name: &str, kind: EntryType) -> Self {
            let mut builder = Builder::new(Vec::new());
            let mut header = Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(0);
            builder.append_data(&mut header, name, io::empty()).unwrap();
            let bytes = builder.into_inner().unwrap();
            self.out.extend_from_slice(&bytes[..bytes.len() - 1024]);
            self
        }

        fn link(mut self, name: &str, kind: EntryType, target: &str) -> Self {
            let mut header = Header::new_gnu();
            header.set_path(name).unwrap();
            header.set_entry_type(kind);
            header.set_size(0);
            header.set_link_name(target).unwrap();
            header.set_cksum();
            self.push(&header, b"");
            self
        }

        fn push(&mut self, header: &Header, data: &[u8]) {
            self.out.extend_from_slice(header.as_bytes());
            self.out.extend_from_slice(data);
            let padded = self.out.len().next_multiple_of(512);
            self.out.resize(padded, 0);
        }

        fn done(mut self) -> Vec<u8> {
            self.out.extend_from_slice(&[0; 1024]);
            self.out
        }
    }

    /// `check` refuses `bytes` with `expected`, and so does `unpack`, leaving neither the
    /// destination nor a temporary directory behind.
    #[track_caller]
    fn refused_with_limit(bytes: &[u8], limit: usize, expected: TreeError) {
        assert_eq!(check_with_limit(bytes, limit), Err(expected.clone()));
        let tmp = tempfile::tempdir().unwrap();
        let dest: PathBuf = tmp.path().join("dest");
        assert_eq!(unpack_with_limit(bytes, &dest, limit), Err(expected));
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "left something"
        );
    }

    #[track_caller]
    fn refused(bytes: &[u8], expected: TreeError) {
        refused_with_limit(bytes, MAX_TREE_ENTRIES, expected);
    }

    fn bad(path: &str, why: PathFault) -> TreeError {
        TreeError::BadPath {
            path: path.into(),
            why,
        }
    }

    fn unsupported(path: &str, kind: &str) -> TreeError {
        TreeError::Unsupported {
            path: path.into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn an_absolute_path_is_refused() {
        let blob = Hand::default().file("/etc/x", b"x").done();
        refused(&blob, bad("/etc/x", PathFault::Absolute));
    }

    #[test]
    fn a_path_that_climbs_out_is_refused() {
        let blob = Hand::default().file("../x", b"x").done();
        refused(&blob, bad("../x", PathFault::ParentDir));
        let blob = Hand::default().dir("a/").file("a/../../x", b"x").done();
        refused(&blob, bad("a/../../x", PathFault::ParentDir));
    }

    #[test]
    fn a_name_with_a_backslash_a_dot_or_an_empty_component_is_refused() {
        let blob = Hand::default().file(r"a\..\x", b"x").done();
        refused(&blob, bad(r"a\..\x", PathFault::Backslash));
        let blob = Hand::default().file("./x", b"x").done();
        refused(&blob, bad("./x", PathFault::CurrentDir));
        let blob = Hand::default().dir("./").done();
        refused(&blob, bad(".", PathFault::CurrentDir));
        let blob = Hand::default().file("a//x", b"x").done();
        refused(&blob, bad("a//x", PathFault::EmptyComponent));
        let blob = Hand::default().file("a/", b"x").done();
        refused(&blob, bad("a/", PathFault::EmptyComponent));
        let blob = Hand::default().dir("/").done();
        refused(&blob, bad("", PathFault::Empty));
    }

    #[test]
    fn a_name_that_is_not_utf8_is_refused() {
        let blob = Hand::default()
            .raw(b"caf\xe9", EntryType::Regular, b"x")
            .done();
        refused(&blob, bad("caf\u{fffd}", PathFault::NotUtf8));
    }

    #[test]
    fn a_path_too_long_too_deep_or_with_a_too_long_name_is_refused() {
        let long = ["abcdefghijklmnop"; 64].join("/"); // 64 * 17 - 1 = 1087 bytes
        let blob = Hand::default().long(&long, EntryType::Regular).done();
        refused(&blob, bad(&long, PathFault::TooLong));
        let deep = ["a"; MAX_TREE_DEPTH + 1].join("/");
        let blob = Hand::default().file(&deep, b"").done();
        refused(&blob, bad(&deep, PathFault::TooDeep));
        let name = "n".repeat(MAX_TREE_NAME + 1);
        let blob = Hand::default().long(&name, EntryType::Regular).done();
        refused(&blob, bad(&name, PathFault::NameTooLong));

        // At the limits, and through GNU long names for a directory too, all is well.
        let deepest = ["a"; MAX_TREE_DEPTH].join("/");
        let longest = format!(
            "{}/{}",
            "d".repeat(MAX_TREE_NAME),
            "f".repeat(MAX_TREE_NAME)
        );
        let blob = Hand::default()
            .file(&deepest, b"")
            .long(
                &format!("{}/", "d".repeat(MAX_TREE_NAME)),
                EntryType::Directory,
            )
            .long(&longest, EntryType::Regular)
            .done();
        let summary = TreeSummary {
            dirs: MAX_TREE_DEPTH as u64,
            files: 2,
            file_bytes: 0,
        };
        assert_eq!(check(&blob), Ok(summary));
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(unpack(&blob, &tmp.path().join("t")), Ok(summary));
        assert!(tmp.path().join("t").join(&longest).is_file());
    }

    #[test]
    fn links_devices_fifos_and_pax_headers_are_refused() {
        let blob = Hand::default()
            .link("link", EntryType::Symlink, "/etc/passwd")
            .done();
        refused(&blob, unsupported("link", "symbolic link"));
        let blob = Hand::default()
            .file("target", b"x")
            .link("hard", EntryType::Link, "target")
            .done();
        refused(&blob, unsupported("hard", "hard link"));
        let blob = Hand::default().raw(b"tty", EntryType::Char, b"").done();
        refused(&blob, unsupported("tty", "character device"));
        let blob = Hand::default().raw(b"pipe", EntryType::Fifo, b"").done();
        refused(&blob, unsupported("pipe", "fifo"));
        let blob = Hand::default()
            .raw(
                b"pax_global_header",
                EntryType::XGlobalHeader,
                b"11 path=ab\n",
            )
            .file("cd", b"x")
            .done();
        refused(&blob, unsupported("pax_global_header", "pax global header"));
        // A local pax header renames the entry after it.
        let blob = Hand::default()
            .raw(b"PaxHeader/cd", EntryType::XHeader, b"11 path=ab\n")
            .file("cd", b"x")
            .done();
        refused(
            &blob,
            unsupported("ab", "entry described by a pax extended header"),
        );
    }

    #[test]
    fn a_path_given_twice_is_a_duplicate() {
        let blob = Hand::default().file("a", b"1").file("a", b"2").done();
        refused(&blob, TreeError::Duplicate("a".into()));
        let blob = Hand::default().file("a", b"1").dir("a/").done();
        refused(&blob, TreeError::Duplicate("a".into()));
        let blob = Hand::default().dir("a/").file("a", b"1").done();
        refused(&blob, TreeError::Duplicate("a".into()));
        let blob = Hand::default().dir("a/").dir("a").done();
        refused(&blob, TreeError::Duplicate("a".into()));
        // A directory first implied by a path inside it, then a file of its name.
        let blob = Hand::default().file("a/b", b"1").file("a", b"2").done();
        refused(&blob, TreeError::Duplicate("a".into()));
    }

    #[test]
    fn a_directory_may_be_listed_after_a_path_that_implies_it() {
        let blob = Hand::default()
            .file("a/b/c", b"1")
            .dir("a/b/")
            .dir("a/")
            .done();
        let summary = TreeSummary {
            dirs: 2,
            files: 1,
            file_bytes: 1,
        };
        assert_eq!(check(&blob), Ok(summary));
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(unpack(&blob, &tmp.path().join("t")), Ok(summary));
        assert_eq!(fs::read(tmp.path().join("t/a/b/c")).unwrap(), b"1");
    }

    #[test]
    fn an_entry_inside_a_file_is_refused() {
        let blob = Hand::default().file("a", b"1").file("a/b", b"2").done();
        refused(
            &blob,
            TreeError::UnderFile {
                path: "a/b".into(),
                file: "a".into(),
            },
        );
        let blob = Hand::default().file("a", b"1").dir("a/b/c/").done();
        refused(
            &blob,
            TreeError::UnderFile {
                path: "a/b/c".into(),
                file: "a".into(),
            },
        );
    }

    #[test]
    fn more_entries_than_the_limit_are_refused_implied_directories_included() {
        let blob = Hand::default()
            .file("1", b"")
            .file("2", b"")
            .file("3", b"")
            .done();
        assert!(check_with_limit(&blob, 3).is_ok());
        refused_with_limit(&blob, 2, TreeError::TooManyEntries { limit: 2 });
        let blob = Hand::default().file("a/b/c", b"").done();
        assert!(check_with_limit(&blob, 3).is_ok());
        refused_with_limit(&blob, 2, TreeError::TooManyEntries { limit: 2 });
    }

    fn malformed(bytes: &[u8]) {
        assert!(
            matches!(check(bytes), Err(TreeError::Malformed(_))),
            "{:?}",
            check(bytes)
        );
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        assert!(matches!(unpack(bytes, &dest), Err(TreeError::Malformed(_))));
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_truncated_archive_is_malformed() {
        let data = vec![7; 2000];
        let blob = Hand::default().file("a", b"x").file("b", &data).done();
        // Header, data block, header, then half of the second file's data.
        malformed(&blob[..512 * 3 + 1000]);
        assert_eq!(
            check(&blob[..512 * 3 + 1000]),
            Err(TreeError::Malformed(
                "truncated inside the data of \"b\"".into()
            ))
        );
        // Cut at the end of the data, inside its padding.
        malformed(&blob[..512 * 3 + 2000]);
        // Cut at an entry boundary, with no end marker at all.
        malformed(&blob[..blob.len() - 1024]);
        // One zero block of the two.
        malformed(&blob[..blob.len() - 512]);
        // Cut inside a header.
        malformed(&blob[..512 + 512 + 100]);
    }

    #[test]
    fn garbage_a_bad_checksum_or_data_after_the_end_is_malformed() {
        let mut garbage = vec![0; 4096];
        blake3::Hasher::new()
            .update(b"garbage")
            .finalize_xof()
            .fill(&mut garbage);
        malformed(&garbage);

        let blob = Hand::default().file("a", b"x").done();
        let mut tampered = blob.clone();
        tampered[0] = b'b'; // the name, without fixing the checksum
        malformed(&tampered);

        let mut trailing = blob.clone();
        trailing.extend_from_slice(&blob);
        malformed(&trailing);
        let mut ragged = blob.clone();
        ragged.push(0);
        malformed(&ragged);
        // Zero blocks after the marker (a tar record's padding) are fine.
        let mut padded = blob;
        padded.resize(10240, 0);
        assert!(check(&padded).is_ok());
    }

    #[test]
    fn a_zero_byte_blob_is_malformed_but_two_zero_blocks_are_the_empty_tree() {
        malformed(&[]);
        malformed(&[0; 512]);
        assert_eq!(check(&[0; 1024]), Ok(TreeSummary::default()));
    }

    #[test]
    fn a_directory_carrying_data_is_malformed() {
        let blob = Hand::default()
            .raw(b"d/", EntryType::Directory, b"hidden")
            .done();
        malformed(&blob);
    }

    #[test]
    fn unpack_into_an_existing_path_is_exists_and_leaves_it_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src, false);
        let blob = pack(&src).unwrap();
        let dir = tmp.path().join("dir");
        fs::create_dir(&dir).unwrap();
        assert_eq!(
            unpack(&blob, &dir),
            Err(TreeError::Exists(dir.display().to_string()))
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        let file = tmp.path().join("file");
        fs::write(&file, b"mine").unwrap();
        assert_eq!(
            unpack(&blob, &file),
            Err(TreeError::Exists(file.display().to_string()))
        );
        assert_eq!(fs::read(&file).unwrap(), b"mine");
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with(".tree-"))
            .collect();
        assert!(names.is_empty(), "left {names:?}");
    }
}
