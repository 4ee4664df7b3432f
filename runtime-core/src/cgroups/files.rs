//! Reading and writing cgroupfs files and directories, with errors that name them.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use nix::unistd::Pid;

use super::CgroupError;
use crate::deadline::Deadline;

/// How long `remove` retries a cgroup that is still busy (its processes are still exiting).
pub(crate) const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do when the file of a [`FileWrite`] does not exist in the cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IfAbsent {
    /// Fail: the kernel lacks what was asked for, and the error names the file.
    Error,
    /// Skip silently: the write is implied, not asked for (e.g. unlimited swap with
    /// unlimited memory when swap accounting is off).
    Skip,
    /// Write this other file and value instead (e.g. `blkio.bfq.weight` on kernels
    /// without CFQ's `blkio.weight`).
    Use(String, String),
}

/// One write into a cgroup file: what applying resources comes down to, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileWrite {
    /// The controller that owns the file (`memory`, `cpu`, ...): on v1 it picks the hierarchy,
    /// on v2 it is the controller to enable in the parents.
    pub controller: String,
    /// File name in the cgroup directory.
    pub file: String,
    /// What to write.
    pub value: String,
    /// When the file does not exist.
    pub if_absent: IfAbsent,
}

impl FileWrite {
    /// A write that must succeed.
    pub(crate) fn new(controller: &str, file: impl Into<String>, value: impl ToString) -> Self {
        Self {
            controller: controller.to_string(),
            file: file.into(),
            value: value.to_string(),
            if_absent: IfAbsent::Error,
        }
    }

    /// Same write, with another behaviour when the file does not exist.
    pub(crate) fn if_absent(mut self, if_absent: IfAbsent) -> Self {
        self.if_absent = if_absent;
        self
    }

    /// Performs the write in the cgroup directory `dir`.
    pub(crate) fn apply(&self, dir: &Path) -> Result<(), CgroupError> {
        if self.if_absent != IfAbsent::Error && !dir.join(&self.file).exists() {
            match &self.if_absent {
                IfAbsent::Skip => {
                    log::debug!("{}: no {}, skipped", dir.display(), self.file);
                    return Ok(());
                }
                IfAbsent::Use(file, value) => return write(dir, file, value),
                IfAbsent::Error => {}
            }
        }
        write(dir, &self.file, &self.value)
    }
}

/// Writes `value` to `dir/file` in one write(2), without creating the file.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let err = |source: io::Error| CgroupError::Write {
        path: dir.to_path_buf(),
        file: file.to_string(),
        value: value.to_string(),
        source,
    };
    // No O_CREAT: a missing file means a missing kernel feature, which must be an error
    // (and cgroupfs refuses creating files anyway).
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(dir.join(file))
        .map_err(err)?;
    f.write_all(value.as_bytes()).map_err(err)
}

/// Reads `dir/file`.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    fs::read_to_string(dir.join(file)).map_err(|source| CgroupError::Read {
        path: dir.to_path_buf(),
        file: file.to_string(),
        source,
    })
}

/// The directories from `mount_point` (excluded) down to `mount_point/rel`, top first.
pub(crate) fn levels(mount_point: &Path, rel: &Path) -> Vec<PathBuf> {
    let mut dir = mount_point.to_path_buf();
    rel.components()
        .map(|c| {
            dir.push(c);
            dir.clone()
        })
        .collect()
}

/// Creates one cgroup directory; returns whether it was new.
pub(crate) fn mkdir(dir: &Path) -> Result<bool, CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(CgroupError::CreateDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes the cgroup `dir` and any cgroups below it; absent is fine.
///
/// rmdir of a cgroup fails with EBUSY while processes are still exiting (or a zombie is
/// still charged to it): retried until `deadline`.
pub(crate) fn remove_tree(dir: &Path, deadline: Deadline) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Remove {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Remove {
            path: dir.to_path_buf(),
            source,
        })?;
        // Only child cgroups are directories; the control files go with the rmdir.
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path(), deadline)?;
        }
    }
    let mut pause = Duration::from_millis(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if deadline.expired() {
                    return Err(CgroupError::RemoveBusy {
                        path: dir.to_path_buf(),
                        waited: REMOVE_TIMEOUT,
                    });
                }
                sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                })
            }
        }
    }
}

/// Parses a `cgroup.procs` text.
pub(crate) fn parse_procs(dir: &Path, text: &str) -> Result<Vec<Pid>, CgroupError> {
    text.split_whitespace()
        .map(|s| {
            s.parse::<i32>()
                .map(Pid::from_raw)
                .map_err(|_| CgroupError::Parse {
                    path: dir.to_path_buf(),
                    file: "cgroup.procs".into(),
                    content: s.to_string(),
                })
        })
        .collect()
}

/// Every process in the cgroup `dir` and the cgroups below it, sorted, without duplicates.
///
/// An absent cgroup has no processes: that is what a half-created or already removed
/// container has, and deleting it must go on.
pub(crate) fn procs_tree(dir: &Path) -> Result<Vec<Pid>, CgroupError> {
    let mut pids = Vec::new();
    collect_procs(dir, &mut pids)?;
    pids.sort_by_key(|p| p.as_raw());
    pids.dedup();
    Ok(pids)
}

fn collect_procs(dir: &Path, pids: &mut Vec<Pid>) -> Result<(), CgroupError> {
    let text = match fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                file: "cgroup.procs".into(),
                source,
            })
        }
    };
    pids.extend(parse_procs(dir, &text)?);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // Removed between the two reads: its processes were read already.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                file: ".".into(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            collect_procs(&entry.path(), pids)?;
        }
    }
    Ok(())
}

/// Polls `check` until it returns true or `timeout` passes; returns the last result.
pub(crate) fn poll(
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let deadline = Deadline::after(timeout);
    let mut pause = Duration::from_millis(1);
    loop {
        if check()? {
            return Ok(true);
        }
        if deadline.expired() {
            return Ok(false);
        }
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_top_first() {
        assert_eq!(
            levels(Path::new("/sys/fs/cgroup/cpu"), Path::new("youki/abc")),
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu/youki"),
                PathBuf::from("/sys/fs/cgroup/cpu/youki/abc")
            ]
        );
    }

    #[test]
    fn procs_parse_and_dedupe() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("cgroup.procs"), "12\n7\n12\n").expect("write");
        fs::create_dir(dir.path().join("child")).expect("mkdir");
        fs::write(dir.path().join("child/cgroup.procs"), "3\n").expect("write");
        let pids = procs_tree(dir.path()).expect("procs");
        assert_eq!(
            pids,
            vec![Pid::from_raw(3), Pid::from_raw(7), Pid::from_raw(12)]
        );
        assert!(procs_tree(&dir.path().join("absent"))
            .expect("absent")
            .is_empty());
        fs::write(dir.path().join("cgroup.procs"), "12\nx\n").expect("write");
        let err = procs_tree(dir.path()).expect_err("garbage");
        assert!(err.to_string().contains("cgroup.procs"), "{err}");
    }

    #[test]
    fn write_names_path_file_and_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = write(dir.path(), "memory.max", "42").expect_err("absent file");
        let msg = err.to_string();
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains("memory.max") && msg.contains("42"), "{msg}");
        // An implied write of an absent file is skipped; a substitute is used.
        FileWrite::new("memory", "memory.swap.max", "max")
            .if_absent(IfAbsent::Skip)
            .apply(dir.path())
            .expect("skipped");
        fs::write(dir.path().join("io.bfq.weight"), "").expect("write");
        FileWrite::new("io", "io.weight", "default 100")
            .if_absent(IfAbsent::Use("io.bfq.weight".into(), "500".into()))
            .apply(dir.path())
            .expect("substitute");
        assert_eq!(
            fs::read_to_string(dir.path().join("io.bfq.weight")).expect("read"),
            "500"
        );
    }

    #[test]
    fn remove_tree_absent_and_nested() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deadline = Deadline::after(REMOVE_TIMEOUT);
        remove_tree(&dir.path().join("absent"), deadline).expect("absent is fine");
        let cg = dir.path().join("cg");
        fs::create_dir_all(cg.join("a/b")).expect("mkdir");
        remove_tree(&cg, deadline).expect("remove");
        assert!(!cg.exists());
    }
}
