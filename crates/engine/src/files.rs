//! Rules 12: the file system a job's program sees beyond its input files ([`JobFiles`]),
//! submitted with `Action::SubmitJobWithFiles`.
//!
//! - **Directory trees.** A job may mount directories read-only at absolute paths it chooses
//!   ([`Mount`]): an interpreter's standard library at `/usr/local/lib`, a tool's support
//!   files, a dataset. A tree travels as one content-addressed blob (a tar archive of regular
//!   files and directories, checked by the coordinator before it takes the job and unpacked once
//!   per provider: `sandbox::tree`), so the blob's hash names the whole tree; every run of the
//!   job sees the same bytes at the same paths.
//! - **Scratch space.** A job may ask for an empty writable directory at a path it chooses, with
//!   a size quota ([`Scratch`]): what a tool writes there is thrown away after the run. A run
//!   whose scratch holds more than its quota when it ends (or, checked as it runs, more than
//!   twice its quota) failed with its output too large.
//!
//! These apply to a job's map tasks, like its entry and exit statuses ([`crate::options`]); the
//! reduce step of a job sees its map outputs only.

use crate::command::{Event, Rejection};
use crate::options::JobOptions;
use crate::state::State;
use crate::storage::StorageClaim;
use crate::types::{AccountId, Hash, JobId, JobSpec, Time, valid_file_name};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most directory trees a job may mount.
pub const MAX_MOUNTS: usize = 8;
/// The longest path (in bytes) a mount or the scratch directory may have.
pub const MAX_MOUNT_PATH: usize = 255;
/// The most components a mount's or the scratch directory's path may have.
pub const MAX_MOUNT_DEPTH: usize = 16;
/// The largest scratch quota a job may ask for: 4 GiB.
pub const MAX_SCRATCH_BYTES: u64 = 4 << 30;

/// A directory tree mounted read-only at `path`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Mount {
    /// Where the guest sees the tree: an absolute path such as `/usr/local/lib`.
    pub path: String,
    /// The blob holding the tree (a tar archive, `sandbox::tree`).
    pub tree: Hash,
}

/// An empty writable directory at `path`, of at most `bytes` bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Scratch {
    pub path: String,
    pub bytes: u64,
}

/// What a job's program sees beyond its input files (rules 12). Always encoded in full: log
/// entries are postcard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobFiles {
    /// Directory trees mounted read-only, sorted by path once normalised.
    pub mounts: Vec<Mount>,
    /// The writable scratch directory, if the job asked for one.
    pub scratch: Option<Scratch>,
}

/// Every job's [`JobFiles`] where it has any (rules 12; empty before).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Files {
    pub jobs: BTreeMap<JobId, JobFiles>,
}

/// The components of `path` if it is a valid mount path: absolute, not `/` itself, each
/// component a valid file name ([`valid_file_name`]), no empty component (no `//`, no trailing
/// `/`), at most [`MAX_MOUNT_DEPTH`] components and [`MAX_MOUNT_PATH`] bytes.
fn components(path: &str) -> Result<Vec<&str>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} is not absolute"));
    };
    if path.len() > MAX_MOUNT_PATH {
        return Err(format!(
            "path {:?}… is longer than {MAX_MOUNT_PATH} bytes",
            &path[..path.floor_char_boundary(32)]
        ));
    }
    if rest.is_empty() {
        return Err("path \"/\" is the working directory; mount at a path below it".into());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() > MAX_MOUNT_DEPTH {
        return Err(format!(
            "path {path:?} has more than {MAX_MOUNT_DEPTH} components"
        ));
    }
    if let Some(bad) = parts.iter().find(|p| !valid_file_name(p)) {
        return Err(format!(
            "path {path:?} has an invalid component {bad:?} (empty, `.`, `..` or a control character)"
        ));
    }
    Ok(parts)
}

impl JobFiles {
    /// The files checked and in their one form: mounts sorted by path. `Err` says what is
    /// wrong: a bad path, more than [`MAX_MOUNTS`] mounts, two paths where one is the other or
    /// inside it (a mount inside another, or the scratch inside a mount), a scratch quota of 0
    /// or above [`MAX_SCRATCH_BYTES`].
    pub fn normalised(&self) -> Result<JobFiles, String> {
        if self.mounts.len() > MAX_MOUNTS {
            return Err(format!(
                "{} mounts; at most {MAX_MOUNTS}",
                self.mounts.len()
            ));
        }
        let mut paths: Vec<(Vec<&str>, &str)> = Vec::new();
        for mount in &self.mounts {
            paths.push((
                components(&mount.path).map_err(|e| format!("mount {e}"))?,
                "mount",
            ));
        }
        if let Some(scratch) = &self.scratch {
            paths.push((
                components(&scratch.path).map_err(|e| format!("scratch {e}"))?,
                "scratch",
            ));
            if scratch.bytes == 0 || scratch.bytes > MAX_SCRATCH_BYTES {
                return Err(format!(
                    "scratch size {} bytes: from 1 byte to {MAX_SCRATCH_BYTES} (4 GiB)",
                    scratch.bytes
                ));
            }
        }
        for (i, (a, _)) in paths.iter().enumerate() {
            for (j, (b, _)) in paths.iter().enumerate() {
                if i < j && (a.starts_with(b) || b.starts_with(a)) {
                    return Err(format!(
                        "paths /{} and /{} overlap: one is the other or inside it",
                        a.join("/"),
                        b.join("/")
                    ));
                }
            }
        }
        let mut mounts = self.mounts.clone();
        mounts.sort();
        Ok(JobFiles {
            mounts,
            scratch: self.scratch.clone(),
        })
    }

    /// The blobs the mounts name, sorted, each once.
    pub fn trees(&self) -> Vec<Hash> {
        let mut trees: Vec<Hash> = self.mounts.iter().map(|m| m.tree).collect();
        trees.sort();
        trees.dedup();
        trees
    }
}

impl State {
    /// Job `job`'s files (none unless it was submitted with some).
    pub fn job_files(&self, job: JobId) -> JobFiles {
        self.files.jobs.get(&job).cloned().unwrap_or_default()
    }

    /// Every blob job `job` names: its spec's ([`JobSpec::blobs`]) and its mounted trees',
    /// sorted, each once. Empty for an unknown job.
    pub fn job_blobs(&self, job: JobId) -> Vec<Hash> {
        let Some(j) = self.jobs.get(&job) else {
            return Vec::new();
        };
        let mut blobs = j.spec.blobs();
        if let Some(files) = self.files.jobs.get(&job) {
            blobs.extend(files.trees());
            blobs.sort();
            blobs.dedup();
        }
        blobs
    }

    /// Rules 12: submits `spec` with `options` and `files` (and a storage claim where the
    /// network prices storage).
    pub(crate) fn submit_with_files(
        &mut self,
        owner: AccountId,
        spec: &JobSpec,
        storage: Option<&StorageClaim>,
        options: &JobOptions,
        files: &JobFiles,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        if self.rules < 12 {
            return Err(Rejection::NeedsRules {
                what: "a job with files (mounts, scratch)".into(),
                needs: 12,
                runs: self.rules,
            });
        }
        let files = files.normalised().map_err(Rejection::InvalidJobSpec)?;
        let job = self.next_job;
        let events = self.submit_with_options(owner, spec, storage, options, now)?;
        if files != JobFiles::default() {
            self.files.jobs.insert(job, files);
        }
        Ok(events)
    }
}

/// The blobs a submission names: `spec`'s and `files`' trees, sorted, each once.
pub fn submission_blobs(spec: &JobSpec, files: Option<&JobFiles>) -> Vec<Hash> {
    let mut blobs = spec.blobs();
    if let Some(files) = files {
        blobs.extend(files.trees());
        blobs.sort();
        blobs.dedup();
    }
    blobs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(path: &str, tree: u8) -> Mount {
        Mount {
            path: path.into(),
            tree: Hash([tree; 32]),
        }
    }

    #[test]
    fn mount_and_scratch_paths_are_checked() {
        let files = |mounts: Vec<Mount>, scratch: Option<(&str, u64)>| JobFiles {
            mounts,
            scratch: scratch.map(|(path, bytes)| Scratch {
                path: path.into(),
                bytes,
            }),
        };
        type Want = Result<(), &'static str>;
        let table: Vec<(JobFiles, Want)> = vec![
            (files(vec![], None), Ok(())),
            (
                files(vec![mount("/usr/local/lib", 1)], Some(("/tmp", 1 << 20))),
                Ok(()),
            ),
            (files(vec![mount("/a", 1), mount("/b", 1)], None), Ok(())),
            (files(vec![mount("/ab", 1), mount("/a", 2)], None), Ok(())),
            (files(vec![mount("usr", 1)], None), Err("not absolute")),
            (files(vec![mount("/", 1)], None), Err("working directory")),
            (
                files(vec![mount("/a//b", 1)], None),
                Err("invalid component"),
            ),
            (files(vec![mount("/a/", 1)], None), Err("invalid component")),
            (
                files(vec![mount("/a/../b", 1)], None),
                Err("invalid component"),
            ),
            (
                files(vec![mount("/a/./b", 1)], None),
                Err("invalid component"),
            ),
            (
                files(vec![mount("/a\nb", 1)], None),
                Err("invalid component"),
            ),
            (
                files(vec![mount(&format!("/x{}", "/x".repeat(16)), 1)], None),
                Err("components"),
            ),
            (
                files(vec![mount(&format!("/{}", "x".repeat(255)), 1)], None),
                Err("longer than"),
            ),
            (
                files(vec![mount("/a", 1), mount("/a/b", 2)], None),
                Err("overlap"),
            ),
            (
                files(vec![mount("/a", 1), mount("/a", 1)], None),
                Err("overlap"),
            ),
            (
                files(vec![mount("/a", 1)], Some(("/a/tmp", 10))),
                Err("overlap"),
            ),
            (files(vec![], Some(("/tmp", 0))), Err("scratch size")),
            (
                files(vec![], Some(("/tmp", MAX_SCRATCH_BYTES + 1))),
                Err("scratch size"),
            ),
            (files(vec![], Some(("tmp", 10))), Err("scratch path")),
            (
                files((0..9).map(|i| mount(&format!("/m{i}"), 1)).collect(), None),
                Err("at most 8"),
            ),
        ];
        for (files, want) in table {
            match (files.normalised(), want) {
                (Ok(_), Ok(())) => {}
                (Err(got), Err(want)) => assert!(got.contains(want), "{files:?}: {got}"),
                (got, want) => panic!("{files:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn files_have_one_form() {
        let a = JobFiles {
            mounts: vec![mount("/b", 2), mount("/a", 1)],
            scratch: None,
        };
        let b = JobFiles {
            mounts: vec![mount("/a", 1), mount("/b", 2)],
            scratch: None,
        };
        assert_eq!(a.normalised(), b.normalised());
        assert_eq!(a.trees(), vec![Hash([1; 32]), Hash([2; 32])]);
    }
}
