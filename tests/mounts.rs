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
