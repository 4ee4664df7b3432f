//! Busybox root filesystems (Debian's busybox-static and its applet links).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The static busybox the rootfs is made of.
pub fn busybox_bin() -> PathBuf {
    match std::env::var_os("BUSYBOX_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from("/bin/busybox"),
    }
}

fn busybox_applets() -> &'static Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let bb = busybox_bin();
        let out = Command::new(&bb)
            .arg("--list")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} --list ({e}); install Debian's busybox-static \
                     (scripts/setup.sh) or set BUSYBOX_BIN",
                    bb.display()
                )
            });
        assert!(out.status.success(), "{} --list failed", bb.display());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && l != "busybox" && !l.contains('/'))
            .collect()
    })
}

/// Builds a busybox root filesystem in `rootfs`.
pub fn build_rootfs(rootfs: &Path) {
    for d in [
        "bin",
        "etc",
        "tmp",
        "proc",
        "dev",
        "sys",
        "root",
        "home/user",
        "var",
        "run",
    ] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir in rootfs");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(rootfs.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(rootfs.join("home/user"), Some(1000), Some(1000))
        .expect("chown home/user in rootfs");

    let bb = busybox_bin();
    fs::copy(&bb, rootfs.join("bin/busybox"))
        .unwrap_or_else(|e| panic!("copy {} into the rootfs: {e}", bb.display()));
    fs::set_permissions(
        rootfs.join("bin/busybox"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for applet in busybox_applets() {
        let _ = symlink("busybox", rootfs.join("bin").join(applet));
    }

    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\n\
         user:x:1000:1000:user:/home/user:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\n\
         user:x:1000:\n\
         extra:x:1001:user\n\
         nogroup:x:65534:\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/hostname"), "busybox\n").unwrap();
}
