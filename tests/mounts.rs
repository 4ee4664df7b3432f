//! Mount options of `mounts[]` as the container sees them in its mountinfo.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use common::*;

/// A tmpfs mounted on the host for one test, unmounted (with what is below it) on drop.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn mount(dir: &Path, options: &str) -> HostTmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert_ok(&o, "mount a tmpfs on the host");
        HostTmpfs(dir.to_path_buf())
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.0).status();
    }
}

/// The access-time mode of a mountinfo line's per-mount options: noatime, relatime or
/// strictatime (which mountinfo shows by naming neither).
fn atime_mode(line: &str) -> &'static str {
    let opts = line.split_whitespace().nth(5).unwrap_or("");
    let has = |o| opts.split(',').any(|x| x == o);
    if has("noatime") {
        "noatime"
    } else if has("relatime") {
        "relatime"
    } else {
        "strictatime"
    }
}

// Every recursive (`r*`) option on a bind of a host tmpfs (strictatime, so that a change to
// relatime shows) with a submount: the atime mode and the flags of the mount and of its
// submount, as runc 1.3 gives them. runc 1.2+ clears the whole atime mask for every atime
// option (the atime values are an enum, relatime is 0), so `rnorelatime`, `ratime` and
// `rnostrictatime` mean relatime; `rnorelatime` gave strictatime here before.
// NOTE: runc 1.3.6 passes this test. runc 1.1.5 FAILS it: it refuses `ratime` and
// `rnostrictatime` (it clears one atime bit alone, and mount_setattr(2) answers EINVAL) and
// leaves the atime mode alone for `rnorelatime`.
#[test]
fn recursive_mount_options_as_runc_applies_them() {
    let env = TestEnv::new("rmountopts");
    let src = env.path("source");
    let _host = HostTmpfs::mount(&src, "strictatime,mode=755");
    let _sub = HostTmpfs::mount(&src.join("sub"), "strictatime,mode=755");
    // (destination, options, atime mode, per-mount flags every mount there has)
    let cases: &[(&str, &[&str], &str, &[&str])] = &[
        ("plain", &[], "strictatime", &["rw"]),
        ("rnorelatime", &["rnorelatime"], "relatime", &[]),
        ("ratime", &["ratime"], "relatime", &[]),
        ("rnostrictatime", &["rnostrictatime"], "relatime", &[]),
        ("rrelatime", &["rrelatime"], "relatime", &[]),
        ("rnoatime", &["rnoatime"], "noatime", &[]),
        ("rstrictatime", &["rstrictatime"], "strictatime", &[]),
        ("noatime-kept", &["rnoatime", "rnorelatime"], "noatime", &[]),
        (
            "noatime-kept2",
            &["rnoatime", "rnostrictatime"],
            "noatime",
            &[],
        ),
        (
            "flags",
            &[
                "rro",
                "rnosuid",
                "rnodev",
                "rnoexec",
                "rnodiratime",
                "rnosymfollow",
            ],
            "strictatime",
            &[
                "ro",
                "nosuid",
                "nodev",
                "noexec",
                "nodiratime",
                "nosymfollow",
            ],
        ),
        (
            "flags-undone",
            &["rro", "rrw", "rnoexec", "rexec", "rnodiratime", "rdiratime"],
            "strictatime",
            &["rw"],
        ),
    ];
    let mut b = env.bundle();
    for (dest, opts, _, _) in cases {
        let mut options = vec!["rbind"];
        options.extend_from_slice(opts);
        b.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": format!("/m/{dest}"),
            "type": "bind",
            "source": src,
            "options": options,
        }));
    }
    b.sh("grep ' /m/' /proc/self/mountinfo");
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run with recursive mount options");
    let info = stdout_of(&o);
    for (dest, opts, atime, flags) in cases {
        for target in [format!("/m/{dest}"), format!("/m/{dest}/sub")] {
            let line = info
                .lines()
                .find(|l| l.split_whitespace().nth(4) == Some(target.as_str()))
                .unwrap_or_else(|| panic!("no mount at {target}:\n{info}"));
            assert_eq!(atime_mode(line), *atime, "{opts:?} at {target}: {line}");
            let mount_opts: Vec<&str> =
                line.split_whitespace().nth(5).unwrap().split(',').collect();
            for f in *flags {
                assert!(
                    mount_opts.contains(f),
                    "{opts:?} at {target}: no {f}: {line}"
                );
            }
        }
    }
}

/// The container's user namespace for the id-mapping tests: root is host uid/gid 100000.
fn with_user_namespace(b: &mut Bundle) {
    b.namespace("user", None);
    b.linux()["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.linux()["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

/// A bind of `source` at `destination` with `options`. The mount point is made here: the
/// container's root (host uid 100000) may not create it in the rootfs, which host root owns.
fn add_bind(b: &mut Bundle, source: &Path, destination: &str, options: &[&str]) {
    std::fs::create_dir_all(b.rootfs().join(destination.trim_start_matches('/'))).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": options,
    }));
}

/// Files owned by host root and by uid/gid 1000 in `dir`, a directory for the container
/// to write in, and the same below `dir/sub` (a submount, if the caller mounted one).
fn populate_ids(dir: &Path) {
    for d in [dir.to_path_buf(), dir.join("sub")] {
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f0"), "").unwrap();
        std::fs::write(d.join("f1000"), "").unwrap();
        std::os::unix::fs::chown(d.join("f1000"), Some(1000), Some(1000)).unwrap();
    }
}

/// `stat -c '%u %g'` of each path inside the container, then a file made at `write`.
fn ids_script(paths: &[&str], write: &str) -> String {
    format!("stat -c '%u %g' {} && touch {write}", paths.join(" "))
}

// Id-mapped binds, `idmap` with the container's own mapping: what host root owns is the
// container root's, and a file the container root writes is host root's on disk; without
// `idmap` the same files are the overflow id's. `idmap` maps the top mount of an rbind only,
// `ridmap` its submounts too. On ext4 (the test's directory) and tmpfs; an overlayfs mount
// cannot be id-mapped (the kernel id-maps its layers, not the overlay: containerd's
// snapshotter does that for a pod's rootfs), which is an error naming the mount.
// NOTE: runc 1.3.6 passes this test; runc 1.1.5 FAILS it (no id-mapped mounts).
#[test]
fn idmapped_binds_show_the_containers_ids() {
    let env = TestEnv::new("idmap");
    let ext4 = env.path("ext4");
    std::fs::create_dir(&ext4).unwrap();
    let tmpfs = env.path("tmpfs");
    let _tmpfs = HostTmpfs::mount(&tmpfs, "mode=755");
    // An overlay whose lower layer holds the files.
    let ovl = env.path("overlay");
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(ovl.join(d)).unwrap();
    }
    populate_ids(&ovl.join("lower"));
    let merged = ovl.join("merged");
    let o = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            ovl.join("lower").display(),
            ovl.join("upper").display(),
            ovl.join("work").display()
        ))
        .arg(&merged)
        .output()
        .unwrap();
    assert_ok(&o, "mount an overlay on the host");
    let _overlay = HostTmpfs(merged.clone());
    populate_ids(&ext4);
    // On the ext4 directory, `sub` is a tmpfs submount, for idmap against ridmap.
    let _sub = HostTmpfs::mount(&ext4.join("sub"), "mode=755");
    populate_ids(&ext4);
    populate_ids(&tmpfs);

    let mut b = env.bundle();
    with_user_namespace(&mut b);
    add_bind(&mut b, &ext4, "/ext4", &["rbind", "idmap"]);
    add_bind(&mut b, &ext4, "/ext4r", &["rbind", "ridmap"]);
    add_bind(&mut b, &ext4, "/plain", &["rbind"]);
    add_bind(&mut b, &tmpfs, "/tmpfs", &["rbind", "idmap"]);
    let paths = [
        "/ext4/f0",
        "/ext4/f1000",
        "/ext4/sub/f0",
        "/ext4r/sub/f0",
        "/plain/f0",
        "/tmpfs/f0",
        "/tmpfs/f1000",
    ];
    b.sh(&format!(
        "{} && touch /tmpfs/new",
        ids_script(&paths, "/ext4/new")
    ));
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run with id-mapped binds");
    let out = stdout_of(&o);
    let got: Vec<&str> = out.lines().collect();
    let want = [
        "0 0",
        "1000 1000",
        // idmap: the submount keeps the host's ids, which the container cannot map.
        "65534 65534",
        // ridmap: the submount is mapped too.
        "0 0",
        // No idmap: host root is nobody to the container.
        "65534 65534",
        "0 0",
        "1000 1000",
    ];
    assert_eq!(got, want, "{}", describe(&o));
    // The container's root wrote as host root (0), not as its host id 100000.
    for f in [ext4.join("new"), tmpfs.join("new")] {
        let meta = std::fs::metadata(&f).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", f.display());
    }

    let mut b = env.bundle();
    with_user_namespace(&mut b);
    add_bind(&mut b, &merged, "/overlay", &["rbind", "idmap"]);
    let o = env.try_create(&env.id(), &b);
    assert_failed_with_message(&o, "create with an id-mapped overlayfs bind");
    let err = stderr_of(&o);
    assert!(
        err.contains(merged.to_str().unwrap()) && err.to_lowercase().contains("idmap"),
        "{}",
        describe(&o)
    );
    assert!(env.state_entries().is_empty(), "state left");
}

// A mount's own uidMappings/gidMappings, in a container without a user namespace: the
// mapping turns host root's files into uid/gid 1000's and leaves unmapped ids the overflow
// id. Bad id-mapped mounts are refused naming the mount, leaving nothing.
// NOTE: runc 1.3.6 passes this test; runc 1.1.5 FAILS it (it ignores the mappings).
#[test]
fn per_mount_mappings_without_a_user_namespace() {
    let env = TestEnv::new("idmapown");
    let src = env.path("src");
    populate_ids(&src);
    let mut b = env.bundle();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/m",
        "type": "bind",
        "source": src,
        "options": ["rbind"],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1}],
    }));
    b.sh("stat -c '%u %g' /m/f0 /m/f1000");
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run with a mount's own mappings");
    assert_eq!(
        stdout_of(&o),
        "1000 2000\n65534 65534\n",
        "{}",
        describe(&o)
    );

    // idmap without any mapping to take; idmap on a tmpfs; a filesystem the kernel cannot
    // id-map (procfs). Every word listed must be in the error (our errors also name the
    // entry, mounts[0]; runc's print the mount's fields instead).
    let cases: [(serde_json::Value, &[&str]); 3] = [
        (
            json!({"destination": "/m", "type": "bind", "source": src, "options": ["rbind", "idmap"]}),
            &["id-mapped mount", "gid"],
        ),
        (
            json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                   "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                   "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}),
            &["id-mapped", "bind"],
        ),
        (
            json!({"destination": "/m", "type": "bind", "source": "/proc/sys", "options": ["rbind"],
                   "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                   "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}),
            &["/proc/sys", "MOUNT_ATTR_IDMAP"],
        ),
    ];
    for (m, words) in cases {
        let mut b = env.bundle();
        b.config["mounts"] = json!([m]);
        let o = env.try_create(&env.id(), &b);
        assert_failed_with_message(&o, &format!("create with {m}"));
        for w in words {
            assert!(
                stderr_of(&o).contains(w),
                "{m}: the error does not say {w:?}: {}",
                describe(&o)
            );
        }
        assert!(env.state_entries().is_empty(), "{m}: state left");
    }
}
