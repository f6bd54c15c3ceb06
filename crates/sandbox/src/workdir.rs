//! The per-run temporary directory a guest sees as `/`: file-name validation, copying
//! the declared inputs in, measuring what the guest wrote, and reading the output file
//! back without following anything the guest planted.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{SandboxError, TaskRun};

/// Checks that `name` is a plain file name: non-empty, not `.`/`..`, no path
/// separators, no NUL, at most 255 bytes.
pub(crate) fn validate_name(name: &str) -> Result<(), SandboxError> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['/', '\\', '\0']);
    if bad {
        return Err(SandboxError::InvalidTask(format!(
            "file name {name:?} is not a plain file name"
        )));
    }
    Ok(())
}

/// Checks that `path` is an absolute guest path below `/`: `/` then plain names
/// ([`validate_name`]) separated by single slashes.
pub(crate) fn validate_guest_dir(path: &str) -> Result<Vec<&str>, SandboxError> {
    let bad = |why: &str| SandboxError::InvalidTask(format!("directory path {path:?} {why}"));
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| bad("is not absolute"))?;
    if rest.is_empty() {
        return Err(bad("is the working directory"));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    for part in &parts {
        validate_name(part).map_err(|_| bad("has a component that is not a plain name"))?;
    }
    Ok(parts)
}

/// Validates every file name a task declares (inputs and output), rejecting duplicates, and
/// every directory it mounts: absolute, and none inside another (or the scratch directory).
pub(crate) fn validate_task(task: &TaskRun) -> Result<(), SandboxError> {
    let mut dirs: Vec<Vec<&str>> = Vec::new();
    let guest_dirs = task
        .mounts
        .iter()
        .map(|(path, _)| path.as_str())
        .chain(task.scratch.as_ref().map(|(path, _)| path.as_str()));
    for path in guest_dirs {
        let parts = validate_guest_dir(path)?;
        if dirs
            .iter()
            .any(|d| d.starts_with(&parts) || parts.starts_with(d))
        {
            return Err(SandboxError::InvalidTask(format!(
                "directory path {path:?} overlaps another mount or the scratch directory"
            )));
        }
        dirs.push(parts);
    }
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &task.inputs {
        validate_name(name)?;
        if !seen.insert(name.as_str()) {
            return Err(SandboxError::InvalidTask(format!(
                "input file name {name:?} is declared twice"
            )));
        }
    }
    if let crate::OutputSource::File(name) = &task.output {
        validate_name(name)?;
    }
    Ok(())
}

/// A fresh temporary directory holding copies of a task's inputs; removed on drop.
pub(crate) struct WorkDir {
    dir: tempfile::TempDir,
    input_bytes: u64,
}

impl WorkDir {
    /// Creates the directory and copies the (already validated) inputs into it.
    pub(crate) fn create(inputs: &[(String, PathBuf)]) -> Result<WorkDir, SandboxError> {
        let dir = tempfile::Builder::new()
            .prefix("gridmint-task-")
            .tempdir()
            .map_err(|e| SandboxError::Setup(format!("cannot create temp dir: {e}")))?;
        let mut input_bytes = 0u64;
        for (name, host_path) in inputs {
            let meta = fs::metadata(host_path).map_err(|e| {
                SandboxError::Setup(format!("input {name:?} ({}): {e}", host_path.display()))
            })?;
            if !meta.is_file() {
                return Err(SandboxError::Setup(format!(
                    "input {name:?} ({}) is not a regular file",
                    host_path.display()
                )));
            }
            let copied = fs::copy(host_path, dir.path().join(name)).map_err(|e| {
                SandboxError::Setup(format!(
                    "cannot copy input {name:?} from {}: {e}",
                    host_path.display()
                ))
            })?;
            input_bytes = input_bytes.saturating_add(copied);
        }
        Ok(WorkDir { dir, input_bytes })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Total size of the copied inputs.
    pub(crate) fn input_bytes(&self) -> u64 {
        self.input_bytes
    }

    /// Reads the guest's output file `name` (validated), refusing anything that is not
    /// a regular file (a symlink the guest planted is never followed) or is larger
    /// than `max` bytes.
    pub(crate) fn read_output(&self, name: &str, max: u64) -> OutputFile {
        let path = self.dir.path().join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return OutputFile::Missing,
            Err(_) => return OutputFile::NotRegular,
        };
        if !meta.file_type().is_file() {
            return OutputFile::NotRegular;
        }
        if meta.len() > max {
            return OutputFile::TooLarge;
        }
        let Ok(file) = fs::File::open(&path) else {
            return OutputFile::NotRegular;
        };
        let mut data = Vec::new();
        match file.take(max.saturating_add(1)).read_to_end(&mut data) {
            Ok(_) if (data.len() as u64) > max => OutputFile::TooLarge,
            Ok(_) => OutputFile::Data(data),
            Err(_) => OutputFile::NotRegular,
        }
    }
}

/// What [`WorkDir::read_output`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OutputFile {
    Missing,
    NotRegular,
    TooLarge,
    Data(Vec<u8>),
}

/// Limits on what a guest may leave in its working directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DiskQuota {
    pub(crate) max_bytes: u64,
    pub(crate) max_entries: u64,
}

/// Whether the tree under `root` holds more than the quota allows: the sum of the
/// apparent sizes of all entries but directories (symlinks are not followed) or the number of
/// entries. Stops walking as soon as the answer is known. An unreadable directory
/// counts as empty (the guest cannot make a directory unreadable through WASI p1).
pub(crate) fn exceeds_quota(root: &Path, quota: DiskQuota) -> bool {
    let mut bytes = 0u64;
    let mut entries = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read_dir) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in read_dir.flatten() {
            entries = entries.saturating_add(1);
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            // A directory's own size differs between file systems (4 KiB on ext4, the
            // lengths of its names on btrfs): only what the guest wrote counts.
            if !meta.file_type().is_dir() {
                bytes = bytes.saturating_add(meta.len());
            }
            if entries > quota.max_entries || bytes > quota.max_bytes {
                return true;
            }
            if meta.file_type().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_accepted_and_paths_rejected() {
        for ok in ["in.txt", "a", "..a", "a..b", "data.bin"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "/etc", "../x", "a\\b", "a\0b"] {
            assert!(
                matches!(validate_name(bad), Err(SandboxError::InvalidTask(_))),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"x".repeat(256)).is_err());
    }

    #[test]
    fn quota_counts_bytes_and_entries() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d").join("b"), vec![0u8; 1000]).unwrap();
        let roomy = DiskQuota {
            max_bytes: 10_000,
            max_entries: 10,
        };
        assert!(!exceeds_quota(dir.path(), roomy));
        let few_bytes = DiskQuota {
            max_bytes: 1500,
            max_entries: 10,
        };
        assert!(exceeds_quota(dir.path(), few_bytes));
        let few_entries = DiskQuota {
            max_bytes: 1_000_000,
            max_entries: 2,
        };
        assert!(exceeds_quota(dir.path(), few_entries));
    }

    #[test]
    fn output_symlink_is_not_followed() {
        let work = WorkDir::create(&[]).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", work.path().join("out")).unwrap();
        assert_eq!(work.read_output("out", 1 << 20), OutputFile::NotRegular);
        assert_eq!(work.read_output("missing", 1 << 20), OutputFile::Missing);
        fs::write(work.path().join("big"), vec![1u8; 11]).unwrap();
        assert_eq!(work.read_output("big", 10), OutputFile::TooLarge);
        assert_eq!(work.read_output("big", 11), OutputFile::Data(vec![1u8; 11]));
    }
}
