//! Sequence tests of the rootfs setup against the recording syscall layer: real
//! directories (tempfile) for the lookups, recorded calls for everything that needs root.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{makedev, Mode, SFlag};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::*;
use crate::syscall::recording::{Call, RecordingSyscall};
use crate::syscall::{MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

fn spec(v: Value) -> Spec {
    let mut v = v;
    v["ociVersion"] = json!("1.0.2");
    serde_json::from_value(v).expect("spec")
}

struct Bundle {
    _tmp: tempfile::TempDir,
    rootfs: PathBuf,
}

fn bundle() -> Bundle {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir(&rootfs).expect("mkdir rootfs");
    let rootfs = fs::canonicalize(&rootfs).expect("canonical");
    Bundle { _tmp: tmp, rootfs }
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Call {
    Call::Mount {
        source: source.map(Path::to_path_buf),
        target: target.to_path_buf(),
        fstype: fstype.map(str::to_string),
        flags,
        data: data.map(str::to_string),
    }
}

/// The mounts after the two set-up calls (propagation of / and the rootfs bind).
fn spec_mounts(sys: &RecordingSyscall) -> Vec<Call> {
    sys.mounts().into_iter().skip(2).collect()
}

/// A spec with only the given mounts and a bind of /dev, so that no devices are made.
fn only_mounts(mounts: Value) -> Spec {
    let mut all = vec![
        json!({"destination": "/dev", "type": "bind", "source": "/dev",
                              "options": ["rbind"]}),
    ];
    all.extend(mounts.as_array().expect("array").iter().cloned());
    spec(json!({ "mounts": all }))
}

/// Runs prepare and returns the spec mounts after the /dev bind.
fn prepare_mounts(b: &Bundle, mounts: Value) -> (RecordingSyscall, Vec<Call>) {
    let sys = RecordingSyscall::default();
    prepare(
        &sys,
        &only_mounts(mounts),
        &b.rootfs,
        &MountSources::default(),
        false,
    )
    .expect("prepare");
    let m = spec_mounts(&sys).into_iter().skip(1).collect();
    (sys, m)
}

#[test]
fn prepare_default_spec_sequence() {
    let b = bundle();
    let s = spec(json!({
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ]
    }));
    let sys = RecordingSyscall::default();
    // The kernel has /proc/kcore: /dev/core points there.
    sys.set_exists(Path::new("/proc/kcore"));
    prepare(&sys, &s, &b.rootfs, &MountSources::default(), false).expect("prepare");
    let r = &b.rootfs;
    let nse = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    let calls = sys.calls();
    let mounts: Vec<Call> = sys.mounts();
    assert_eq!(
        mounts,
        vec![
            mount(
                None,
                Path::new("/"),
                None,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None
            ),
            mount(Some(r), r, None, MsFlags::MS_BIND | MsFlags::MS_REC, None),
            mount(
                Some(Path::new("proc")),
                &r.join("proc"),
                Some("proc"),
                MsFlags::empty(),
                None
            ),
            mount(
                Some(Path::new("tmpfs")),
                &r.join("dev"),
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
                Some("mode=755,size=65536k")
            ),
            mount(
                Some(Path::new("devpts")),
                &r.join("dev/pts"),
                Some("devpts"),
                nse,
                Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
            ),
            mount(
                Some(Path::new("shm")),
                &r.join("dev/shm"),
                Some("tmpfs"),
                nse | MsFlags::MS_NODEV,
                Some("mode=1777,size=65536k")
            ),
            mount(
                Some(Path::new("mqueue")),
                &r.join("dev/mqueue"),
                Some("mqueue"),
                nse | MsFlags::MS_NODEV,
                None
            ),
            mount(
                Some(Path::new("sysfs")),
                &r.join("sys"),
                Some("sysfs"),
                nse | MsFlags::MS_NODEV | MsFlags::MS_RDONLY,
                None
            ),
        ]
    );
    // Mount points were made inside the rootfs.
    for d in ["proc", "dev/pts", "dev/shm", "dev/mqueue", "sys"] {
        assert!(r.join(d).is_dir(), "{d}");
    }

    // Then /dev: umask 0, the six default nodes owned by root, symlinks, umask restored.
    let rest: Vec<Call> = calls
        .into_iter()
        .skip_while(|c| !matches!(c, Call::Umask(_)))
        .collect();
    let dev = r.join("dev");
    let mut want = vec![Call::Umask(Mode::empty())];
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        want.push(Call::Mknodat(
            dev.join(name),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        ));
        want.push(Call::Fchownat(
            dev.join(name),
            Some(Uid::from_raw(0)),
            Some(Gid::from_raw(0)),
        ));
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        want.push(Call::Symlinkat(PathBuf::from(target), dev.join(name)));
    }
    want.push(Call::Umask(Mode::from_bits_truncate(0o022)));
    assert_eq!(rest, want);
}

#[test]
fn bind_with_ro_is_remounted() {
    let b = bundle();
    let src = tempfile::tempdir().expect("src");
    let (_, m) = prepare_mounts(
        &b,
        json!([{"destination": "/data", "type": "bind", "source": src.path(),
                "options": ["rbind", "ro", "nosuid"]}]),
    );
    let t = b.rootfs.join("data");
    assert_eq!(
        m,
        vec![
            mount(
                Some(src.path()),
                &t,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None
            ),
            mount(
                None,
                &t,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
                None
            ),
        ]
    );
    assert!(t.is_dir());
}

#[test]
fn plain_bind_needs_no_remount() {
    let b = bundle();
    let src = tempfile::tempdir().expect("src");
    let (_, m) = prepare_mounts(
        &b,
        json!([{"destination": "/data", "type": "none", "source": src.path(),
                "options": ["bind", "rw"]}]),
    );
    assert_eq!(
        m,
        vec![mount(
            Some(src.path()),
            &b.rootfs.join("data"),
            None,
            MsFlags::MS_BIND,
            None
        )]
    );
}

#[test]
fn bind_of_a_file_creates_a_file() {
    let b = bundle();
    let src = tempfile::NamedTempFile::new().expect("file");
    let (_, m) = prepare_mounts(
        &b,
        json!([{"destination": "/etc/resolv.conf", "type": "bind", "source": src.path(),
                "options": ["rbind", "ro"]}]),
    );
    let t = b.rootfs.join("etc/resolv.conf");
    assert!(t.is_file(), "the target is an empty file");
    assert!(b.rootfs.join("etc").is_dir());
    assert_eq!(m.len(), 2);
    assert_eq!(
        m[0],
        mount(
            Some(src.path()),
            &t,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None
        )
    );
}

#[test]
fn bind_onto_a_dangling_symlink_creates_its_target_inside() {
    let b = bundle();
    fs::create_dir(b.rootfs.join("etc")).expect("mkdir");
    symlink("../run/resolve/stub.conf", b.rootfs.join("etc/resolv.conf")).expect("symlink");
    let src = tempfile::NamedTempFile::new().expect("file");
    let (_, m) = prepare_mounts(
        &b,
        json!([{"destination": "/etc/resolv.conf", "type": "bind", "source": src.path(),
                "options": ["bind"]}]),
    );
    let t = b.rootfs.join("run/resolve/stub.conf");
    assert!(t.is_file());
    assert_eq!(
        m,
        vec![mount(Some(src.path()), &t, None, MsFlags::MS_BIND, None)]
    );
}

#[test]
fn propagation_is_applied_separately_after_the_mount() {
    let b = bundle();
    let src = tempfile::tempdir().expect("src");
    let (_, m) = prepare_mounts(
        &b,
        json!([{"destination": "/shared", "type": "bind", "source": src.path(),
                "options": ["rbind", "rshared", "private"]},
               {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                "options": ["nodev", "rslave"]}]),
    );
    let s = b.rootfs.join("shared");
    let t = b.rootfs.join("t");
    assert_eq!(
        m,
        vec![
            mount(
                Some(src.path()),
                &s,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None
            ),
            mount(None, &s, None, MsFlags::MS_SHARED | MsFlags::MS_REC, None),
            mount(None, &s, None, MsFlags::MS_PRIVATE, None),
            mount(
                Some(Path::new("tmpfs")),
                &t,
                Some("tmpfs"),
                MsFlags::MS_NODEV,
                None
            ),
            mount(None, &t, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None),
        ]
    );
}

#[test]
fn recursive_attributes_use_mount_setattr() {
    let b = bundle();
    let src = tempfile::tempdir().expect("src");
    let (sys, _) = prepare_mounts(
        &b,
        json!([{"destination": "/data", "type": "bind", "source": src.path(),
                "options": ["rbind", "rro", "rnosuid"]}]),
    );
    let attrs: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::MountSetattr { .. }))
        .collect();
    assert_eq!(
        attrs,
        vec![Call::MountSetattr {
            target: b.rootfs.join("data"),
            recursive: true,
            set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
            clear: 0
        }]
    );
}

#[test]
fn locked_flags_are_kept_on_eperm() {
    let b = bundle();
    let src = tempfile::tempdir().expect("src");
    let sys = RecordingSyscall::default();
    let first = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    sys.fail_when(
        move |c| matches!(c, Call::Mount { flags, .. } if *flags == first),
        Errno::EPERM,
    );
    sys.set_mount_flags(MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RELATIME);
    let s = only_mounts(
        json!([{"destination": "/data", "type": "bind", "source": src.path(),
                                "options": ["rbind", "ro"]}]),
    );
    prepare(&sys, &s, &b.rootfs, &MountSources::default(), true).expect("prepare");
    let t = b.rootfs.join("data");
    let tail: Vec<Call> = sys.calls().into_iter().rev().take(3).rev().collect();
    assert_eq!(
        tail,
        vec![
            mount(None, &t, None, first, None),
            Call::MountFlags(t.clone()),
            mount(
                None,
                &t,
                None,
                first | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                None
            ),
        ]
    );
}

#[test]
fn explicitly_cleared_flag_is_not_added_back() {
    let b = bundle();
    let src = tempfile::tempdir().expect("src");
    let sys = RecordingSyscall::default();
    sys.fail_when(
        |c| matches!(c, Call::Mount { flags, .. } if flags.contains(MsFlags::MS_REMOUNT)),
        Errno::EPERM,
    );
    sys.set_mount_flags(MsFlags::MS_RDONLY);
    let s = only_mounts(
        json!([{"destination": "/data", "type": "bind", "source": src.path(),
                                "options": ["rbind", "rw", "nodev"]}]),
    );
    let e = prepare(&sys, &s, &b.rootfs, &MountSources::default(), true).expect_err("must fail");
    let msg = e.to_string();
    assert!(msg.contains("/data"), "{msg}");
    assert!(msg.contains("EPERM"), "{msg}");
}

#[test]
fn mount_errors_name_the_mount_and_call() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    sys.fail_when(
        |c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "mqueue"),
        Errno::EINVAL,
    );
    let s = only_mounts(json!([{"destination": "/dev/mqueue", "type": "mqueue",
                                "source": "mqueue"}]));
    let e = prepare(&sys, &s, &b.rootfs, &MountSources::default(), false).expect_err("fails");
    match &e {
        RootfsError::Syscall { context, source } => {
            assert_eq!(context, "mount mqueue mqueue on /dev/mqueue");
            assert_eq!(source.call, "mount");
            assert_eq!(source.errno, Errno::EINVAL);
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn invalid_mounts_are_refused() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    for m in [
        json!({"destination": "/x", "source": "/y"}),
        json!({"destination": "/x", "type": "bind"}),
        json!({"destination": "/x", "type": "tmpfs", "options": ["idmap"]}),
    ] {
        let s = spec(json!({ "mounts": [m] }));
        let e = prepare(&sys, &s, &b.rootfs, &MountSources::default(), false).expect_err("invalid");
        assert!(matches!(e, RootfsError::Invalid(_)), "{e}");
    }
    let s = spec(json!({"linux": {"rootfsPropagation": "sideways"}}));
    assert!(matches!(
        prepare(&sys, &s, &b.rootfs, &MountSources::default(), false),
        Err(RootfsError::Invalid(_))
    ));
    let missing = b.rootfs.join("does-not-exist");
    let s = spec(json!({"mounts": [{"destination": "/x", "type": "bind",
                                    "source": missing, "options": ["bind"]}]}));
    assert!(matches!(
        prepare(&sys, &s, &b.rootfs, &MountSources::default(), false),
        Err(RootfsError::Source { .. })
    ));
}

#[test]
fn symlink_out_of_the_rootfs_is_resolved_inside() {
    let b = bundle();
    let host = tempfile::tempdir().expect("host");
    symlink(host.path(), b.rootfs.join("evil")).expect("symlink");
    let (_, m) = prepare_mounts(
        &b,
        json!([{"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}]),
    );
    let inside = b
        .rootfs
        .join(host.path().strip_prefix("/").expect("absolute"));
    assert_eq!(
        m,
        vec![mount(
            Some(Path::new("tmpfs")),
            &inside,
            Some("tmpfs"),
            MsFlags::empty(),
            None
        )]
    );
    assert!(inside.is_dir());
    assert_eq!(fs::read_dir(host.path()).expect("read").count(), 0);
}

#[test]
fn shared_rootfs_propagation_makes_the_parent_private() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    let parent = b.rootfs.parent().expect("parent").to_path_buf();
    sys.set_mountinfo(&format!(
        "1 0 8:1 / / rw shared:1 - ext4 /dev/sda rw\n\
         2 1 0:5 / {} rw shared:7 - tmpfs tmpfs rw\n",
        parent.display()
    ));
    let s = spec(json!({"linux": {"rootfsPropagation": "shared"},
                        "mounts": [{"destination": "/dev", "type": "bind",
                                    "source": "/dev", "options": ["rbind"]}]}));
    prepare(&sys, &s, &b.rootfs, &MountSources::default(), false).expect("prepare");
    let m = sys.mounts();
    assert_eq!(
        m[0],
        mount(None, Path::new("/"), None, MsFlags::MS_SHARED, None)
    );
    assert_eq!(m[1], mount(None, &parent, None, MsFlags::MS_PRIVATE, None));
    assert_eq!(
        m[2],
        mount(
            Some(&b.rootfs),
            &b.rootfs,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None
        )
    );
}

#[test]
fn private_parent_is_left_alone() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    sys.set_mountinfo("1 0 8:1 / / rw - ext4 /dev/sda rw\n");
    let s = spec(json!({"linux": {"rootfsPropagation": "slave"},
                        "mounts": [{"destination": "/dev", "type": "bind",
                                    "source": "/dev", "options": ["rbind"]}]}));
    prepare(&sys, &s, &b.rootfs, &MountSources::default(), false).expect("prepare");
    let m = sys.mounts();
    assert_eq!(
        m[0],
        mount(None, Path::new("/"), None, MsFlags::MS_SLAVE, None)
    );
    assert!(matches!(&m[1], Call::Mount { source: Some(s), .. } if *s == b.rootfs));
}

#[test]
fn dev_bound_from_the_host_gets_no_devices() {
    let b = bundle();
    let (sys, _) = prepare_mounts(&b, json!([]));
    assert!(!sys
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Mknodat(..) | Call::Symlinkat(..) | Call::Umask(_))));
}

fn dev_spec(devices: Value) -> Spec {
    spec(json!({
        "mounts": [{"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}],
        "linux": {"devices": devices}
    }))
}

#[test]
fn user_namespace_binds_host_device_nodes() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    let s = dev_spec(
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                            {"path": "/dev/myfifo", "type": "p", "fileMode": 0o600}]),
    );
    prepare(&sys, &s, &b.rootfs, &MountSources::default(), true).expect("prepare");
    let dev = b.rootfs.join("dev");
    let binds: Vec<Call> = sys.mounts().into_iter().skip(3).collect();
    let want: Vec<Call> = ["null", "zero", "full", "random", "urandom", "tty", "fuse"]
        .iter()
        .map(|n| {
            mount(
                Some(&Path::new("/dev").join(n)),
                &dev.join(n),
                None,
                MsFlags::MS_BIND,
                None,
            )
        })
        .collect();
    assert_eq!(binds, want);
    for n in ["null", "tty", "fuse"] {
        assert!(dev.join(n).is_file(), "{n} is an empty file to bind onto");
    }
    // A FIFO needs no privilege: made with mknod even in a user namespace.
    let nodes: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Mknodat(..)))
        .collect();
    assert_eq!(
        nodes,
        vec![Call::Mknodat(
            dev.join("myfifo"),
            SFlag::S_IFIFO,
            Mode::from_bits_truncate(0o600),
            makedev(0, 0)
        )]
    );
}

#[test]
fn mknod_eperm_falls_back_to_bind() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    sys.fail_when(|c| matches!(c, Call::Mknodat(..)), Errno::EPERM);
    prepare(
        &sys,
        &dev_spec(json!([])),
        &b.rootfs,
        &MountSources::default(),
        false,
    )
    .expect("prepare");
    let null = b.rootfs.join("dev/null");
    assert!(sys.mounts().contains(&mount(
        Some(Path::new("/dev/null")),
        &null,
        None,
        MsFlags::MS_BIND,
        None
    )));
    assert!(!sys.calls().iter().any(|c| matches!(c, Call::Fchownat(..))));
}

#[test]
fn spec_devices_after_defaults_and_replacing_them() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    let s = dev_spec(json!([
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600,
         "uid": 1000, "gid": 1001},
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200},
        {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660}
    ]));
    prepare(&sys, &s, &b.rootfs, &MountSources::default(), false).expect("prepare");
    let dev = b.rootfs.join("dev");
    let nodes: Vec<(PathBuf, SFlag, u32, u64)> = sys
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Mknodat(p, k, m, d) => Some((p, k, m.bits(), d)),
            _ => None,
        })
        .collect();
    let c = SFlag::S_IFCHR;
    assert_eq!(
        nodes,
        vec![
            (dev.join("zero"), c, 0o666, makedev(1, 5)),
            (dev.join("full"), c, 0o666, makedev(1, 7)),
            (dev.join("random"), c, 0o666, makedev(1, 8)),
            (dev.join("urandom"), c, 0o666, makedev(1, 9)),
            (dev.join("tty"), c, 0o666, makedev(5, 0)),
            (dev.join("null"), c, 0o600, makedev(1, 3)),
            (dev.join("net/tun"), c, 0o666, makedev(10, 200)),
            (dev.join("sda"), SFlag::S_IFBLK, 0o660, makedev(8, 0)),
        ]
    );
    assert!(dev.join("net").is_dir());
    assert!(sys.calls().contains(&Call::Fchownat(
        dev.join("null"),
        Some(Uid::from_raw(1000)),
        Some(Gid::from_raw(1001))
    )));
}

#[test]
fn bad_spec_devices_are_refused() {
    let b = bundle();
    for d in [
        json!({"path": "/dev/all", "type": "a"}),
        json!({"path": "/dev/neg", "type": "c", "major": -1, "minor": 0}),
        json!({"path": "/", "type": "c", "major": 1, "minor": 3}),
    ] {
        let sys = RecordingSyscall::default();
        let e = prepare(
            &sys,
            &dev_spec(json!([d])),
            &b.rootfs,
            &MountSources::default(),
            false,
        )
        .expect_err("bad");
        assert!(matches!(e, RootfsError::Invalid(_)), "{e}");
    }
}

#[test]
fn existing_file_that_is_not_the_device_is_an_error() {
    let b = bundle();
    fs::create_dir(b.rootfs.join("dev")).expect("mkdir");
    fs::write(b.rootfs.join("dev/kvm"), b"not a device").expect("write");
    let sys = RecordingSyscall::default();
    sys.fail_when(
        |c| matches!(c, Call::Mknodat(p, ..) if p.ends_with("kvm")),
        Errno::EEXIST,
    );
    let s = dev_spec(json!([{"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232}]));
    let e = prepare(&sys, &s, &b.rootfs, &MountSources::default(), false).expect_err("exists");
    assert!(e.to_string().contains("already exists"), "{e}");
}

#[test]
fn existing_ptmx_is_replaced_by_the_symlink() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    sys.fail_when(
        |c| matches!(c, Call::Symlinkat(_, l) if l.ends_with("ptmx")),
        Errno::EEXIST,
    );
    // The injected failure is permanent, so the retried symlink fails too: the error must
    // name the symlink.
    let e = prepare(
        &sys,
        &dev_spec(json!([])),
        &b.rootfs,
        &MountSources::default(),
        false,
    )
    .expect_err("fails");
    assert!(e.to_string().contains("/dev/ptmx"), "{e}");
    let ptmx = b.rootfs.join("dev/ptmx");
    assert!(sys.calls().contains(&Call::Unlinkat(ptmx.clone())));
    // The umask is restored even on failure.
    assert_eq!(
        sys.calls().last(),
        Some(&Call::Umask(Mode::from_bits_truncate(0o022)))
    );
}

#[test]
fn no_dev_core_without_proc_kcore() {
    // A kernel without CONFIG_PROC_KCORE: no dangling /dev/core, as runc.
    let b = bundle();
    let sys = RecordingSyscall::default();
    prepare(
        &sys,
        &dev_spec(json!([])),
        &b.rootfs,
        &MountSources::default(),
        false,
    )
    .expect("prepare");
    let links: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Symlinkat(..)))
        .collect();
    assert_eq!(links.len(), 5, "{links:?}");
    assert!(
        !links
            .iter()
            .any(|c| matches!(c, Call::Symlinkat(_, l) if l.ends_with("core"))),
        "{links:?}"
    );
}

fn cgroup_spec(options: Value) -> Spec {
    only_mounts(json!([{"destination": "/sys/fs/cgroup", "type": "cgroup",
                        "source": "cgroup", "options": options}]))
}

#[test]
fn cgroup_v1_is_a_tmpfs_with_each_hierarchy_bound() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    let cgs = vec![
        CgroupMount {
            name: "memory".into(),
            source: PathBuf::from("/sys/fs/cgroup/memory/youki/c1"),
        },
        CgroupMount {
            name: "cpu,cpuacct".into(),
            source: PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/youki/c1"),
        },
    ];
    let s = cgroup_spec(json!(["nosuid", "noexec", "nodev", "relatime", "ro"]));
    prepare(&sys, &s, &b.rootfs, &cg_sources(&cgs), false).expect("prepare");
    let cg = b.rootfs.join("sys/fs/cgroup");
    let f = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RELATIME;
    let br = MsFlags::MS_BIND | MsFlags::MS_REC;
    let rm = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | f;
    let m: Vec<Call> = spec_mounts(&sys).into_iter().skip(1).collect();
    assert_eq!(
        m,
        vec![
            mount(
                Some(Path::new("tmpfs")),
                &cg,
                Some("tmpfs"),
                f,
                Some("mode=755")
            ),
            mount(Some(&cgs[0].source), &cg.join("memory"), None, br, None),
            mount(None, &cg.join("memory"), None, rm, None),
            mount(
                Some(&cgs[1].source),
                &cg.join("cpu,cpuacct"),
                None,
                br,
                None
            ),
            mount(None, &cg.join("cpu,cpuacct"), None, rm, None),
            mount(
                None,
                &cg,
                None,
                MsFlags::MS_REMOUNT | f | MsFlags::MS_RDONLY,
                None
            ),
        ]
    );
    let links: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Symlinkat(..)))
        .collect();
    assert_eq!(
        links,
        vec![
            Call::Symlinkat(PathBuf::from("cpu,cpuacct"), cg.join("cpu")),
            Call::Symlinkat(PathBuf::from("cpu,cpuacct"), cg.join("cpuacct")),
        ]
    );
}

#[test]
fn cgroup_v2_binds_the_directory() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    let src = tempfile::tempdir().expect("cgroup dir");
    let cgs = vec![CgroupMount {
        name: String::new(),
        source: src.path().to_path_buf(),
    }];
    let s = cgroup_spec(json!(["nosuid", "noexec", "nodev", "relatime", "ro"]));
    prepare(&sys, &s, &b.rootfs, &cg_sources(&cgs), false).expect("prepare");
    let cg = b.rootfs.join("sys/fs/cgroup");
    let m: Vec<Call> = spec_mounts(&sys).into_iter().skip(1).collect();
    let f = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV | MsFlags::MS_RELATIME;
    assert_eq!(
        m,
        vec![
            mount(
                Some(&cgs[0].source),
                &cg,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None
            ),
            mount(
                None,
                &cg,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | f,
                None
            ),
        ]
    );
}

#[test]
fn cgroup_bad_name_is_refused() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    let cgs = vec![CgroupMount {
        name: "../../etc".into(),
        source: PathBuf::from("/sys/fs/cgroup/memory"),
    }];
    let e = prepare(
        &sys,
        &cgroup_spec(json!([])),
        &b.rootfs,
        &cg_sources(&cgs),
        false,
    )
    .expect_err("bad");
    assert!(matches!(e, RootfsError::Invalid(_)), "{e}");
}

#[test]
fn host_namespace_binds_the_rootfs_private_and_leaves_the_host_propagation() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    let s = spec(json!({"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}
    ]}));
    prepare_in_host_namespace(&sys, &s, &b.rootfs, &MountSources::default(), false)
        .expect("prepare");
    let r = &b.rootfs;
    let m = sys.mounts();
    // Neither / nor the mount holding the rootfs is touched: only the rootfs bind.
    assert_eq!(
        m[..3],
        [
            mount(Some(r), r, None, MsFlags::MS_BIND | MsFlags::MS_REC, None),
            mount(None, r, None, MsFlags::MS_PRIVATE | MsFlags::MS_REC, None),
            mount(
                Some(Path::new("proc")),
                &r.join("proc"),
                Some("proc"),
                MsFlags::empty(),
                None
            ),
        ]
    );
    assert!(
        !m.iter()
            .any(|c| matches!(c, Call::Mount { target, .. } if target == Path::new("/"))),
        "{m:?}"
    );

    // linux.rootfsPropagation applies to that bind.
    let sys = RecordingSyscall::default();
    let s = spec(json!({"linux": {"rootfsPropagation": "rslave"},
                        "mounts": [{"destination": "/dev", "type": "bind",
                                    "source": "/dev", "options": ["rbind"]}]}));
    prepare_in_host_namespace(&sys, &s, &b.rootfs, &MountSources::default(), false)
        .expect("prepare");
    assert_eq!(
        sys.mounts()[1],
        mount(None, r, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
    );
}

/// mountinfo lines: the root filesystem, then `extra` (with `{r}` for the rootfs path).
fn host_mountinfo(sys: &RecordingSyscall, rootfs: &Path, extra: &[&str]) {
    let mut text = String::from("20 1 8:1 / / rw,relatime - ext4 /dev/sda rw\n");
    for l in extra {
        text.push_str(&l.replace("{r}", &rootfs.display().to_string()));
        text.push('\n');
    }
    sys.set_mountinfo(&text);
}

#[test]
fn host_binding_detaches_only_the_rootfs_bind_it_added() {
    let b = bundle();
    let r = &b.rootfs;
    let sys = RecordingSyscall::default();
    host_mountinfo(&sys, r, &[]);
    let binding = HostBinding::before(&sys, r).expect("before");
    assert_eq!(binding.mounts_below, 0);

    // Init's bind of the directory onto itself (ext4's root + the rootfs path), with proc
    // under it: detached, once, by its path.
    host_mountinfo(
        &sys,
        r,
        &[
            "30 20 8:1 {r} {r} rw - ext4 /dev/sda rw",
            "31 30 0:40 / {r}/proc rw - proc proc rw",
        ],
    );
    assert!(binding.release(&sys).expect("release"));
    assert_eq!(
        sys.calls().last(),
        Some(&Call::Umount2(r.clone(), MntFlags::MNT_DETACH))
    );

    // Gone (delete after a failed create that had detached it): nothing to do.
    let sys = RecordingSyscall::default();
    host_mountinfo(&sys, r, &[]);
    assert!(!binding.release(&sys).expect("release"));
    // Something else mounted there, not a bind of the rootfs: not ours.
    host_mountinfo(&sys, r, &["30 20 0:41 / {r} rw - tmpfs tmpfs rw"]);
    assert!(!binding.release(&sys).expect("release"));
    assert!(sys.calls().iter().all(|c| !matches!(c, Call::Umount2(..))));
}

#[test]
fn host_binding_keeps_a_mount_that_was_there_before() {
    let b = bundle();
    let r = &b.rootfs;
    // A shim's overlay on the rootfs before create.
    let overlay = "30 20 0:50 / {r} rw - overlay overlay rw";
    let sys = RecordingSyscall::default();
    host_mountinfo(&sys, r, &[overlay]);
    let binding = HostBinding::before(&sys, r).expect("before");
    assert_eq!(binding.mounts_below, 1);
    // Init never bound it (create failed early): the overlay stays.
    assert!(!binding.release(&sys).expect("release"));
    // Init's bind of the overlay onto itself: detached.
    host_mountinfo(
        &sys,
        r,
        &[overlay, "31 30 0:50 / {r} rw - overlay overlay rw"],
    );
    assert!(binding.release(&sys).expect("release"));
    let umounts: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Umount2(..)))
        .collect();
    assert_eq!(umounts, [Call::Umount2(r.clone(), MntFlags::MNT_DETACH)]);
}

#[test]
fn pivot_sequence() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    pivot(&sys, &b.rootfs).expect("pivot");
    assert_eq!(
        sys.calls(),
        vec![
            Call::Fchdir(b.rootfs.clone()),
            Call::PivotRoot(PathBuf::from("."), PathBuf::from(".")),
            Call::Fchdir(PathBuf::from("/")),
            mount(
                None,
                Path::new("."),
                None,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None
            ),
            Call::Umount2(PathBuf::from("."), MntFlags::MNT_DETACH),
            Call::Chdir(PathBuf::from("/")),
        ]
    );
}

#[test]
fn move_root_sequence() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    move_root(&sys, &b.rootfs).expect("move_root");
    assert_eq!(
        sys.calls(),
        vec![
            Call::Chdir(b.rootfs.clone()),
            mount(
                Some(Path::new(".")),
                Path::new("/"),
                None,
                MsFlags::MS_MOVE,
                None
            ),
            Call::Chroot(PathBuf::from(".")),
            Call::Chdir(PathBuf::from("/")),
        ]
    );
}

#[test]
fn pivot_failure_names_the_rootfs() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    sys.fail_when(|c| matches!(c, Call::PivotRoot(..)), Errno::EINVAL);
    let e = pivot(&sys, &b.rootfs).expect_err("fails");
    let msg = e.to_string();
    assert!(msg.contains(&b.rootfs.display().to_string()), "{msg}");
    assert!(msg.contains("pivot_root"), "{msg}");
}

#[test]
fn finish_readonly_then_masked_then_root() {
    let b = bundle();
    let r = &b.rootfs;
    fs::create_dir_all(r.join("proc/sys")).expect("mkdir");
    fs::create_dir_all(r.join("proc/acpi")).expect("mkdir");
    fs::write(r.join("proc/kcore"), b"").expect("write");
    let s = spec(json!({
        "root": {"path": "rootfs", "readonly": true},
        "linux": {
            "maskedPaths": ["/proc/kcore", "/proc/acpi", "/proc/missing", "/proc/kcore/x"],
            "readonlyPaths": ["/proc/sys", "/proc/absent"]
        }
    }));
    let sys = RecordingSyscall::default();
    finish_at(&sys, &s, r).expect("finish");
    let sysdir = r.join("proc/sys");
    assert_eq!(
        sys.calls(),
        vec![
            mount(
                Some(&sysdir),
                &sysdir,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None
            ),
            mount(
                None,
                &sysdir,
                None,
                MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                None
            ),
            mount(
                Some(&r.join("dev/null")),
                &r.join("proc/kcore"),
                None,
                MsFlags::MS_BIND,
                None
            ),
            mount(
                Some(Path::new("tmpfs")),
                &r.join("proc/acpi"),
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None
            ),
            mount(
                None,
                r,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None
            ),
        ]
    );
}

#[test]
fn finish_without_linux_section_does_nothing() {
    let b = bundle();
    let sys = RecordingSyscall::default();
    finish_at(&sys, &spec(json!({"root": {"path": "rootfs"}})), &b.rootfs).expect("finish");
    assert!(sys.calls().is_empty());
}

fn cg_sources(cgs: &[CgroupMount]) -> MountSources<'_> {
    MountSources {
        cgroups: cgs,
        bind_trees: None,
    }
}

// An id-mapped bind is the tree the runtime made, moved onto the destination (created as
// the source's kind), then remounted with its flags like any bind; without a tree it is
// refused rather than bound unmapped.
#[test]
fn idmapped_bind_moves_the_prepared_tree_into_place() {
    let b = bundle();
    let src = b._tmp.path().canonicalize().unwrap().join("src");
    std::fs::create_dir(&src).unwrap();
    let s = spec(json!({
        "linux": {"namespaces": [{"type": "user"}, {"type": "mount"}],
                  "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                  "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]},
        "mounts": [{"destination": "/data", "type": "bind", "source": src,
                    "options": ["rbind", "idmap", "ro"]}]
    }));
    let sys = RecordingSyscall::default();
    let trees = crate::rootfs::prepare_bind_trees(&sys, &s).expect("trees");
    let sources = MountSources {
        cgroups: &[],
        bind_trees: Some(&trees),
    };
    prepare(&sys, &s, &b.rootfs, &sources, true).expect("prepare");
    let data = b.rootfs.canonicalize().unwrap().join("data");
    assert!(data.is_dir());
    let calls = sys.calls();
    let moved = calls
        .iter()
        .position(|c| *c == Call::MoveMount(data.clone()))
        .unwrap_or_else(|| panic!("no move_mount onto {}: {calls:#?}", data.display()));
    assert!(
        matches!(&calls[moved + 1], Call::Mount { target, flags, .. }
            if *target == data && flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY)),
        "{calls:#?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c, Call::Mount { source: Some(p), .. } if *p == src)),
        "the source was bound unmapped: {calls:#?}"
    );

    let e = prepare(&sys, &s, &b.rootfs, &MountSources::default(), true).expect_err("no tree");
    assert!(e.to_string().contains("no id-mapped tree"), "{e}");
}
