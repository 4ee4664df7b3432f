//! The mount points a restore needs. CRIU restores a container's mounts itself, but only
//! onto mount points that exist, and a rootfs made anew for the restore (podman's `restore
//! --import`) lacks those the first create made (/etc/hosts...). They are made as create
//! makes them, as runc's prepareCriuRestoreMounts does.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::{Mount, Spec};

use super::mounts::{describe, source_kind};
use super::resolve::{self, Kind};
use super::{is_bind, options, syscall_err, RootfsError};
use crate::syscall::{fd_path, Syscall, SyscallError};

/// Creates in `rootfs` the destination of every `mounts` entry CRIU does not restore
/// itself, resolved inside the rootfs as create resolves it: for a bind the kind of its
/// source (file or directory), else a directory. See [`needed`] for the entries left out.
///
/// A mount point may lie inside an earlier bind (a file bound into a bound directory):
/// create makes it in that bind's source, and CRIU looks for it there. So the work is done
/// on a copy of the rootfs mount at `scratch` (a path that must not exist yet, outside the
/// rootfs), private so that nothing done on it propagates, where each bind's source is
/// bound for the while, as in create (runc binds them on the rootfs itself: its issue
/// 2748). The copy goes, with everything on it, before this returns.
pub fn create_mountpoints(
    sys: &dyn Syscall,
    spec: &Spec,
    rootfs: &Path,
    scratch: &Path,
) -> Result<(), RootfsError> {
    let entries = needed(spec.mounts().as_deref().unwrap_or_default());
    if entries.is_empty() {
        return Ok(());
    }
    std::fs::create_dir(scratch).map_err(|source| RootfsError::Io {
        path: scratch.to_path_buf(),
        source,
    })?;
    let what = format!(
        "copy the rootfs {} to {}",
        rootfs.display(),
        scratch.display()
    );
    let bound = sys
        .mount(
            Some(rootfs),
            scratch,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(syscall_err(&what));
    let mounted = bound.is_ok();
    let result = bound.and_then(|()| {
        make_private(sys, scratch).map_err(syscall_err(&what))?;
        create_on(sys, scratch, &entries)
    });
    let detached = if mounted {
        sys.umount2(scratch, MntFlags::MNT_DETACH)
            .map_err(syscall_err(format!("detach {}", scratch.display())))
    } else {
        Ok(())
    };
    let removed = std::fs::remove_dir(scratch).map_err(|source| RootfsError::Io {
        path: scratch.to_path_buf(),
        source,
    });
    result.and(detached).and(removed)
}

/// The entries whose mount points must exist, with their destinations (cleaned), in the
/// spec's order (so that a bind comes before what is mounted inside it). Left out, as runc
/// leaves them out: cgroup entries (CRIU restores the directories of the cgroup v1 tmpfs,
/// and cgroup v2's mount point is in sysfs) and entries below a tmpfs entry's destination
/// (CRIU restores a tmpfs with its content).
fn needed(mounts: &[Mount]) -> Vec<(&Mount, PathBuf)> {
    let tmpfs: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| resolve::absolute(m.destination()))
        .collect();
    mounts
        .iter()
        .filter(|m| !matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")))
        .map(|m| (m, resolve::absolute(m.destination())))
        .filter(|(_, dest)| !tmpfs.iter().any(|t| dest.starts_with(t) && dest != t))
        .collect()
}

/// Makes each entry's mount point in the rootfs copy at `copy`, and binds each bind's
/// source there (private: its own peers must not see what is mounted inside it).
fn create_on(
    sys: &dyn Syscall,
    copy: &Path,
    entries: &[(&Mount, PathBuf)],
) -> Result<(), RootfsError> {
    let root: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(copy)
        .map_err(|source| RootfsError::Io {
            path: copy.to_path_buf(),
            source,
        })?
        .into();
    for (m, dest) in entries {
        let what = format!("mount point of {}", describe(m, dest));
        let bind_source = if is_bind(m) {
            let source = m
                .source()
                .as_deref()
                .ok_or_else(|| RootfsError::Invalid(format!("{what}: bind without source")))?;
            Some(source)
        } else {
            None
        };
        let kind = match bind_source {
            Some(source) => source_kind(source, &what)?,
            None => Kind::Dir,
        };
        let (resolved, fd) =
            resolve::create_in_root(root.as_fd(), dest, kind).map_err(syscall_err(&what))?;
        let Some(source) = bind_source else {
            continue;
        };
        let rec =
            options::parse(m.options().as_deref().unwrap_or_default()).flags & MsFlags::MS_REC;
        sys.mount(
            Some(source),
            &fd_path(fd.as_fd()),
            None,
            MsFlags::MS_BIND | rec,
            None,
        )
        .map_err(syscall_err(&what))?;
        drop(fd);
        // The bind's root, now on top of the descriptor's directory.
        let top = resolve::open_path(root.as_fd(), &resolved).map_err(syscall_err(&what))?;
        make_private(sys, &fd_path(top.as_fd())).map_err(syscall_err(&what))?;
    }
    Ok(())
}

/// Makes the mount at `target` and every mount below it private.
fn make_private(sys: &dyn Syscall, target: &Path) -> Result<(), SyscallError> {
    sys.mount(
        None,
        target,
        None,
        MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::LinuxSyscall;

    /// The directory [`kernel_child`] works in.
    const BASE_VAR: &str = "YOUKI_TEST_MOUNTPOINTS_BASE";
    const DONE: &str = "MOUNTPOINTS-CHILD-CHECKS-PASSED";

    /// Against the real kernel, as root: the work runs in this test binary again, in a
    /// mount namespace of its own (util-linux's `unshare`), as rootfs/kernel_tests.rs does,
    /// so that nothing is left behind even when a check fails.
    #[test]
    fn kernel_mount_points_nested_in_a_bind_are_made_in_its_source() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = std::fs::canonicalize(tmp.path()).expect("canonical");
        let out = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private"])
            .arg(std::env::current_exe().expect("test binary"))
            .args([
                "rootfs::mountpoints::tests::kernel_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(BASE_VAR, &base)
            .output()
            .expect("run unshare (util-linux)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(DONE),
            "child failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run only by [`kernel_mount_points_nested_in_a_bind_are_made_in_its_source`].
    #[test]
    #[ignore = "run in a mount namespace of its own by kernel_mount_points_nested_in_a_bind_are_made_in_its_source"]
    fn kernel_child() {
        let Some(base) = std::env::var_os(BASE_VAR).map(PathBuf::from) else {
            return;
        };
        // Everything on a shared mount, as on a host whose / is shared (only what is left
        // afterwards can be checked, not what propagated for the while).
        let sys = LinuxSyscall;
        sys.mount(
            Some(Path::new("tmpfs")),
            &base,
            Some("tmpfs"),
            MsFlags::empty(),
            None,
        )
        .expect("tmpfs");
        sys.mount(None, &base, None, MsFlags::MS_SHARED, None)
            .expect("make shared");
        let (rootfs, src, token, state) = (
            base.join("rootfs"),
            base.join("src"),
            base.join("token"),
            base.join("state"),
        );
        for d in [&rootfs.join("etc"), &src, &state] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&token, "tok").expect("token");
        let spec = |extra: Option<serde_json::Value>| -> Spec {
            let mut mounts = serde_json::json!([
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
                {"destination": "/data", "type": "bind", "source": src, "options": ["rbind"]},
                {"destination": "/data/sub/token", "type": "bind", "source": token,
                 "options": ["bind", "ro"]},
                {"destination": "/etc/token", "source": token, "options": ["rbind"]},
                {"destination": "/mnt/scratch", "type": "tmpfs", "source": "tmpfs"}
            ]);
            mounts.as_array_mut().expect("array").extend(extra);
            serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "mounts": mounts}))
                .expect("spec")
        };
        let copy = state.join("mountpoints");
        let mounts_before = sys.mountinfo().expect("mountinfo");

        create_mountpoints(&sys, &spec(None), &rootfs, &copy).expect("create_mountpoints");
        for dir in ["proc", "dev", "data", "mnt/scratch"] {
            assert!(rootfs.join(dir).is_dir(), "{dir}");
        }
        assert!(rootfs.join("etc/token").is_file());
        assert!(src.join("sub/token").is_file(), "made in the bind's source");
        for absent in ["dev/pts", "sys", "data/sub"] {
            assert!(!rootfs.join(absent).exists(), "{absent} was made");
        }
        assert!(!copy.exists(), "the copy is left");
        assert_eq!(
            sys.mountinfo().expect("mountinfo"),
            mounts_before,
            "a mount is left"
        );

        // A bind whose source is missing: an error naming it, and nothing left.
        let missing = serde_json::json!({"destination": "/gone", "type": "bind",
                                         "source": base.join("nonexistent")});
        let e = create_mountpoints(&sys, &spec(Some(missing)), &rootfs, &copy)
            .expect_err("a missing source")
            .to_string();
        assert!(e.contains("/gone") && e.contains("nonexistent"), "{e}");
        assert!(!copy.exists(), "the copy is left after an error");
        assert_eq!(
            sys.mountinfo().expect("mountinfo"),
            mounts_before,
            "a mount is left"
        );
        println!("{DONE}");
    }

    #[test]
    fn cgroups_and_what_lies_in_a_tmpfs_are_left_to_criu() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
                {"destination": "/devices", "type": "bind", "source": "/d", "options": ["rbind"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"},
                {"destination": "/cg2", "type": "cgroup2", "source": "cgroup"},
                {"destination": "/etc/hosts", "type": "bind", "source": "/h", "options": ["bind"]},
                {"destination": "/run/../x/./y", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/x/y/z", "source": "/z", "options": ["rbind"]}
            ]
        }))
        .expect("spec");
        let got: Vec<PathBuf> = needed(spec.mounts().as_deref().unwrap_or_default())
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        assert_eq!(
            got,
            ["/proc", "/dev", "/devices", "/etc/hosts", "/x/y"].map(PathBuf::from)
        );
    }
}
