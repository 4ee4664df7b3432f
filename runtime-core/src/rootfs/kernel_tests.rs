//! The rootfs setup against the real kernel, as root.
//!
//! The work runs in a child process: this test binary again, started by util-linux's
//! `unshare --mount --propagation private` and told by an environment variable to run one
//! ignored test. The test harness is multi-threaded, so forking from a test thread is not
//! sound; a fresh process in its own mount namespace is, and every mount it makes vanishes
//! with it: nothing is left behind even when a check fails.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::{finish, pivot, prepare, MountSources};
use crate::cgroups::CgroupMount;
use crate::syscall::LinuxSyscall;

const ROOTFS_VAR: &str = "YOUKI_TEST_KERNEL_ROOTFS";
const HOST_VAR: &str = "YOUKI_TEST_KERNEL_HOST";
const DATA_VAR: &str = "YOUKI_TEST_KERNEL_DATA";
const DONE: &str = "KERNEL-CHILD-CHECKS-PASSED";

/// Mount points of this process's mount namespace.
fn mount_points() -> Vec<(PathBuf, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((PathBuf::from(f.get(4)?), f.get(sep + 1)?.to_string()))
        })
        .collect()
}

#[test]
fn kernel_prepare_pivot_finish_and_no_escape() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = fs::canonicalize(tmp.path()).expect("canonical");
    let rootfs = base.join("rootfs");
    let host = base.join("host-target");
    let data = base.join("data");
    for d in [&rootfs, &host, &data] {
        fs::create_dir(d).expect("mkdir");
    }
    fs::write(data.join("hello"), b"hi").expect("write");
    // The image tries to make the runtime mount over a host directory.
    symlink(&host, rootfs.join("evil")).expect("symlink");

    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(&exe)
        .args([
            "rootfs::kernel_tests::kernel_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOTFS_VAR, &rootfs)
        .env(HOST_VAR, &host)
        .env(DATA_VAR, &data)
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(DONE),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );

    // The host side: the symlink's target got nothing, and no mount is left behind.
    assert_eq!(fs::read_dir(&host).expect("read host").count(), 0);
    assert!(
        !mount_points().iter().any(|(p, _)| p.starts_with(&base)),
        "a mount was left behind under {}",
        base.display()
    );
    // What the container wrote to its /evil tmpfs went nowhere on the host.
    let inside = rootfs.join(host.strip_prefix("/").expect("absolute"));
    assert!(
        inside.is_dir(),
        "the mount point was made inside the rootfs"
    );
    assert_eq!(fs::read_dir(&inside).expect("read inside").count(), 0);
}

/// Run only by [`kernel_prepare_pivot_finish_and_no_escape`], in its own mount namespace.
#[test]
#[ignore = "run in a private mount namespace by kernel_prepare_pivot_finish_and_no_escape"]
fn kernel_child() {
    let (Some(rootfs), Some(host), Some(data)) = (
        std::env::var_os(ROOTFS_VAR),
        std::env::var_os(HOST_VAR),
        std::env::var_os(DATA_VAR),
    ) else {
        return;
    };
    let (rootfs, host, data) = (
        PathBuf::from(rootfs),
        PathBuf::from(host),
        PathBuf::from(data),
    );
    let spec: oci_spec::runtime::Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/data", "type": "bind", "source": data,
             "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/evil", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m"]}
        ],
        "linux": {
            "maskedPaths": ["/proc/kcore", "/proc/timer_list", "/proc/acpi", "/proc/nonexistent"],
            "readonlyPaths": ["/proc/sys"]
        }
    }))
    .expect("spec");
    // The host's own hierarchies stand in for a container's cgroup directories: the
    // binds are read-only and vanish with this mount namespace.
    let v1 = Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists();
    let cgroups: Vec<CgroupMount> = if v1 {
        vec![CgroupMount {
            name: "memory".into(),
            source: PathBuf::from("/sys/fs/cgroup/memory"),
        }]
    } else {
        vec![CgroupMount {
            name: String::new(),
            source: PathBuf::from("/sys/fs/cgroup"),
        }]
    };
    let sys = LinuxSyscall;
    prepare(
        &sys,
        &spec,
        &rootfs,
        &MountSources {
            cgroups: &cgroups,
            bind_trees: None,
        },
        false,
    )
    .expect("prepare");

    // Before pivot_root, seen from the host paths: the tmpfs for /evil is inside the rootfs.
    let inside = rootfs.join(host.strip_prefix("/").expect("absolute"));
    let points = mount_points();
    assert!(
        !points.iter().any(|(p, _)| *p == host),
        "mounted on the host path {}",
        host.display()
    );
    assert!(
        points.iter().any(|(p, t)| *p == inside && t == "tmpfs"),
        "no tmpfs at {}",
        inside.display()
    );
    fs::write(inside.join("from-container"), b"x").expect("write in the tmpfs");
    assert_eq!(fs::read_dir(&host).expect("read host").count(), 0);

    pivot(&sys, &rootfs).expect("pivot");
    finish(&sys, &spec).expect("finish");

    // Inside the container now.
    assert!(!data.exists(), "the host's filesystem is still reachable");
    assert_eq!(fs::read("/data/hello").expect("read bind"), b"hi");
    let err = fs::write("/data/new", b"x").expect_err("bind is read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let err = fs::write("/new", b"x").expect_err("root is read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));

    let null = fs::metadata("/dev/null").expect("/dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.mode() & 0o777, 0o666);
    fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null")
        .write_all(b"gone")
        .expect("write /dev/null");
    assert_eq!(
        fs::read_link("/dev/ptmx").expect("ptmx link"),
        Path::new("pts/ptmx")
    );
    assert!(Path::new("/dev/pts/ptmx").exists());
    assert_eq!(
        fs::read_link("/dev/fd").expect("fd link"),
        Path::new("/proc/self/fd")
    );
    assert!(Path::new("/dev/shm").is_dir());

    // /proc/kcore is missing on some kernels; /proc/timer_list is always there.
    let mut masked = Vec::new();
    fs::File::open("/proc/timer_list")
        .expect("open masked timer_list")
        .read_to_end(&mut masked)
        .expect("read masked timer_list");
    assert!(masked.is_empty(), "/proc/timer_list is not masked");
    if Path::new("/proc/acpi").exists() {
        assert_eq!(fs::read_dir("/proc/acpi").expect("acpi").count(), 0);
        let st = nix::sys::statvfs::statvfs("/proc/acpi").expect("statvfs");
        assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    }
    let st = nix::sys::statvfs::statvfs("/proc/sys").expect("statvfs");
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    let procs = if v1 {
        "/sys/fs/cgroup/memory/cgroup.procs"
    } else {
        "/sys/fs/cgroup/cgroup.procs"
    };
    assert!(Path::new(procs).exists(), "{procs} missing");
    let err = fs::create_dir("/sys/fs/cgroup/x").expect_err("cgroup mount is read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let st = nix::sys::statvfs::statvfs(procs).expect("statvfs");
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    let st = nix::sys::statvfs::statvfs("/sys").expect("statvfs");
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    println!("{DONE}");
}

const USERNS_ROOTFS_VAR: &str = "YOUKI_TEST_USERNS_ROOTFS";
const USERNS_DATA_VAR: &str = "YOUKI_TEST_USERNS_DATA";

#[test]
fn kernel_user_namespace_binds_devices_and_keeps_locked_flags() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = fs::canonicalize(tmp.path()).expect("canonical");
    let rootfs = base.join("rootfs");
    let data = base.join("data");
    for d in [&rootfs, &data] {
        fs::create_dir(d).expect("mkdir");
    }
    let exe = std::env::current_exe().expect("test binary");
    // Outside the user namespace, in a private mount namespace, `data` becomes a nosuid,nodev
    // tmpfs: inside the user namespace the kernel locks those flags, so a plain read-only
    // bind remount fails with EPERM unless the runtime keeps them.
    let script = r#"mount -t tmpfs -o nosuid,nodev,size=1m youki-test "$DATA" &&
        echo hi > "$DATA/hello" &&
        exec unshare --user --map-root-user --mount --propagation private "$@""#;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&exe)
        .args([
            "rootfs::kernel_tests::kernel_userns_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DATA", &data)
        .env(USERNS_ROOTFS_VAR, &rootfs)
        .env(USERNS_DATA_VAR, &data)
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(DONE),
        "child failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(
        !mount_points().iter().any(|(p, _)| p.starts_with(&base)),
        "a mount was left behind under {}",
        base.display()
    );
}

/// Run only by [`kernel_user_namespace_binds_devices_and_keeps_locked_flags`], as root of
/// a new user namespace.
#[test]
#[ignore = "run in a user namespace by kernel_user_namespace_binds_devices_and_keeps_locked_flags"]
fn kernel_userns_child() {
    let (Some(rootfs), Some(data)) = (
        std::env::var_os(USERNS_ROOTFS_VAR),
        std::env::var_os(USERNS_DATA_VAR),
    ) else {
        return;
    };
    let (rootfs, data) = (PathBuf::from(rootfs), PathBuf::from(data));
    let spec: oci_spec::runtime::Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "mode=755"]},
            {"destination": "/data", "type": "bind", "source": data,
             "options": ["rbind", "ro"]}
        ]
    }))
    .expect("spec");
    let sys = LinuxSyscall;
    prepare(&sys, &spec, &rootfs, &MountSources::default(), true).expect("prepare");
    pivot(&sys, &rootfs).expect("pivot");
    finish(&sys, &spec).expect("finish");

    // The host's node, bound: a real device although mknod is not allowed here.
    let null = fs::metadata("/dev/null").expect("/dev/null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null")
        .write_all(b"gone")
        .expect("write /dev/null");
    assert_eq!(
        fs::read_link("/dev/ptmx").expect("ptmx link"),
        Path::new("pts/ptmx")
    );

    assert_eq!(fs::read("/data/hello").expect("read bind"), b"hi\n");
    let err = fs::write("/data/new", b"x").expect_err("bind is read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let flags = nix::sys::statvfs::statvfs("/data")
        .expect("statvfs")
        .flags();
    use nix::sys::statvfs::FsFlags;
    assert!(flags.contains(FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NODEV));
    let err = fs::write("/new", b"x").expect_err("root is read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    println!("{DONE}");
}
