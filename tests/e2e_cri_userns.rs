//! User-namespaced pods (Kubernetes `hostUsers: false`) through containerd 2.x's CRI
//! (issue 13, item 3), with our shim under runc's runtime type (`youki-runc-type`) and,
//! as the check of the test, with runc 1.3.6 behind containerd's runc shim (runc 1.1.5
//! has no id-mapped mounts, so CRI refuses user namespaces for it).
//!
//! The pod gets what kubelet sends for `hostUsers: false`: namespace option `userns` of
//! mode POD with uid and gid mappings (container 0 → host 65536·N, 65536 ids), the same
//! options with each container, and the mappings on each volume (an id-mapped mount).
//! What containerd 2.1 then does, and what the runtime has to honour:
//!
//! - the sandbox gets a new user namespace with the mappings; each container joins it
//!   by path (`/proc/<sandbox pid>/ns/user`), with the mappings repeated in its spec;
//! - the rootfs: the overlay snapshotter id-maps the image's layers when the kernel can
//!   (`remap-ids`), through `uidmap=`/`gidmap=` options on the overlay mount the shim
//!   mounts; `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` and the volumes are bind
//!   mounts with uidMappings/gidMappings (OCI 1.1 id-mapped mounts);
//! - the stdio pipes must belong to the container's root on the host (runc's options
//!   `IoUid`/`IoGid`), or the container cannot reopen /dev/stdout.
//!
//! Checked: the mappings in the container's uid_map and gid_map (also in an exec), root
//! in the container is the mapped unprivileged id on the host (/proc/PID/status), the
//! sandbox and the containers share one user namespace that is not the host's, the
//! image's files belong to root in the container, files written to an id-mapped hostPath
//! and an emptyDir-like volume have on the host the ids the container gave them (and,
//! for contrast, a volume without mappings gets the shifted ids), the container can
//! write its stdout by path, and nothing is left after the pod is removed.
//!
//! containerd 1.x has no user namespaces for pods with id-mapped mounts: the tests print
//! why and pass there. The plain `io.containerd.youki.v2` entry runs the same pod. runc
//! 1.1.5 (the `runc` handler) departs: it has no id-mapped mounts, so CRI Status lists no
//! user namespace support for it; its sandbox runs in the pod's user namespace, but
//! containerd's runc shim refuses a container with id-mapped volumes.

mod common;
// Shared with tests/e2e_cri.rs, which uses more of it.
#[allow(dead_code)]
#[path = "e2e_support/cri.rs"]
mod cri;
mod e2e_support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use common::poll;
use cri::*;
use youki_cri::api;

/// The pod's main container: writes to its stdout by path (which needs the pipe to
/// belong to the container's root on the host), then sleeps until SIGTERM.
const SLEEPER: &[&str] = &[
    "sh",
    "-c",
    "echo reopened >/proc/self/fd/1; trap 'exit 0' TERM; sleep 3600 & wait",
];
/// How many ids the pod gets (kubelet gives each pod 65536).
const SIZE: u32 = 65536;

/// Whether the containerd under test runs user-namespaced pods with id-mapped mounts;
/// says why a test does nothing when not.
fn has_userns_pods(test: &str) -> bool {
    let containerd = e2e_support::client("containerd", "containerd");
    let (major, minor) = cri::containerd_version(&containerd);
    if major < 2 {
        eprintln!(
            "{test}: skipped on containerd {major}.{minor}: CRI id-maps a user-namespaced \
             pod's rootfs and volumes from containerd 2.0 on (containerd's \
             docs/user-namespaces: 1.7 chowns a copy of the image, 1.6 ignores the option)"
        );
        return false;
    }
    true
}

/// The handlers of these tests, in the order that gives each its own host ids.
const HANDLERS: [&str; 4] = [RUNC_1_3_HANDLER, YOUKI_RUNC_TYPE, YOUKI, RUNC];

/// The host id the pod's container root maps to: a multiple of 65536, as kubelet picks,
/// distinct for concurrent tests (the pid) and handlers.
fn host_base(handler: &str) -> u32 {
    let index = HANDLERS.iter().position(|h| *h == handler).unwrap_or(0) as u32;
    SIZE * (100 + std::process::id() % 1000 * HANDLERS.len() as u32 + index)
}

/// The fields of a `Uid:` or `Gid:` line of /proc/PID/status (real, effective, saved,
/// filesystem).
fn status_ids(pid: i32, key: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .split_whitespace()
        .map(|v| v.parse().expect("an id"))
        .collect()
}

/// An id map file's lines as numbers (its columns are padded).
fn id_map(text: &str) -> Vec<Vec<u64>> {
    text.lines()
        .map(|l| {
            l.split_whitespace()
                .map(|v| v.parse().expect("a number"))
                .collect()
        })
        .collect()
}

/// A writable volume of `host` at `container`, id-mapped with the pod's mappings when
/// `mappings` is given (as kubelet asks for every volume of a user-namespaced pod).
fn volume(
    host: &Path,
    container: &str,
    mappings: Option<&(Vec<api::IdMapping>, Vec<api::IdMapping>)>,
) -> api::Mount {
    let (uid_mappings, gid_mappings) = mappings.cloned().unwrap_or_default();
    api::Mount {
        container_path: container.into(),
        host_path: host.to_string_lossy().into_owned(),
        uid_mappings,
        gid_mappings,
        propagation: api::MountPropagation::PropagationPrivate as i32,
        ..Default::default()
    }
}

/// (uid, gid) of a file on the host.
fn owner(p: &Path) -> (u32, u32) {
    let m = fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// The whole scenario through `handler`.
fn user_namespaced_pod(handler: &str, test: &str) {
    if !has_userns_pods(test) {
        return;
    }
    let cri = Cri::start("userns", handler != RUNC_1_3_HANDLER);
    let features = cri.handler_features(handler).unwrap_or_default();
    // containerd's debug lines about introspecting the handler say why not. The plain
    // entry is not introspected before containerd 2.4 (tests/e2e_cri_info.rs), and CRI
    // runs the pod all the same.
    assert!(
        features.user_namespaces || handler == YOUKI,
        "{handler}: CRI Status does not list user namespaces: {features:?}\n{}",
        cri.ctd
            .log_text()
            .lines()
            .filter(|l| l.contains("feature") || l.contains("ntrospect"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let host = host_base(handler);
    let hostpath = cri.w().path("hostpath");
    // kubelet makes an emptyDir world-writable, owned by root on the host.
    let empty_dir = cri.w().path("emptydir");
    let plain = cri.w().path("plain");
    for d in [&hostpath, &empty_dir, &plain] {
        fs::create_dir_all(d).unwrap();
    }
    for d in [&empty_dir, &plain] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
    }

    let mut config = cri.pod_config("userns", false);
    youki_cri::set_user_namespace(&mut config, host, SIZE);
    let mappings = youki_cri::user_namespace_mappings(&config).expect("mappings");
    let pod = cri.run_pod(config, handler);
    let mut c = cri.container_config(&pod, "c", SLEEPER);
    c.mounts = vec![
        volume(&hostpath, "/hostpath", Some(&mappings)),
        volume(&empty_dir, "/emptydir", Some(&mappings)),
        volume(&plain, "/plain", None),
    ];
    let id = cri.start_container(&pod, &c);
    let pid = cri.container_pid(&id);

    // The mapping, seen from the container (an exec) and from the host.
    let expected = vec![vec![0, u64::from(host), u64::from(SIZE)]];
    for file in ["uid_map", "gid_map"] {
        let text = exec_ok(&cri, &id, &["cat", &format!("/proc/self/{file}")]);
        assert_eq!(
            id_map(&text),
            expected,
            "{handler}: exec's {file}: {text:?}"
        );
        let text = fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
        assert_eq!(id_map(&text), expected, "{handler}: init's {file}");
    }
    assert_eq!(status_ids(pid, "Uid:"), vec![host; 4], "{handler}");
    assert_eq!(status_ids(pid, "Gid:"), vec![host; 4], "{handler}");
    assert_eq!(exec_ok(&cri, &id, &["id", "-u"]).trim(), "0", "{handler}");

    // One user namespace for the pod, not the host's; an exec is in it too.
    let userns = ns_of(pid, "user");
    assert_ne!(
        userns,
        ns_of("self", "user"),
        "{handler}: the host's userns"
    );
    assert_eq!(
        ns_of(pod.pid, "user"),
        userns,
        "{handler}: sandbox vs container"
    );
    let in_exec = exec_ok(&cri, &id, &["readlink", "/proc/self/ns/user"]);
    assert_eq!(in_exec.trim(), userns, "{handler}: exec's userns");
    // pause runs as its image's user (65535 here), mapped into the pod's range.
    let pause = status_ids(pod.pid, "Uid:");
    assert!(
        pause.iter().all(|u| (host..host + SIZE).contains(u)),
        "{handler}: pause runs as {pause:?} on the host"
    );

    // The image belongs to root in the container (an id-mapped or chowned rootfs), and
    // root can write to it.
    let stat = exec_ok(&cri, &id, &["stat", "-c", "%u:%g", "/bin", "/etc/hosts"]);
    assert_eq!(stat, "0:0\n0:0\n", "{handler}: owners in the container");
    exec_ok(&cri, &id, &["touch", "/written-to-rootfs"]);

    // Volumes: through an id-mapped mount the container's ids are the ids on disk.
    exec_ok(
        &cri,
        &id,
        &[
            "sh",
            "-c",
            "for d in /hostpath /emptydir /plain; do \
               echo x >$d/by-root && echo y >$d/by-1000 && chown 1000:2000 $d/by-1000 || exit 1; \
             done",
        ],
    );
    for d in [&hostpath, &empty_dir] {
        assert_eq!(
            owner(&d.join("by-root")),
            (0, 0),
            "{handler}: {}",
            d.display()
        );
        assert_eq!(
            owner(&d.join("by-1000")),
            (1000, 2000),
            "{handler}: {}",
            d.display()
        );
    }
    // Without mappings the volume shows the host's view: the ids shifted.
    assert_eq!(
        owner(&plain.join("by-root")),
        (host, host),
        "{handler}: /plain"
    );
    assert_eq!(
        owner(&plain.join("by-1000")),
        (host + 1000, host + 2000),
        "{handler}: /plain"
    );
    let listed = exec_ok(&cri, &id, &["stat", "-c", "%u:%g", "/hostpath/by-1000"]);
    assert_eq!(listed, "1000:2000\n", "{handler}: seen in the container");

    // The container wrote its stdout by path: containerd's log has the line.
    let log = pod.log_dir().join("c.log");
    assert!(
        poll(Duration::from_secs(10), || fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("reopened"))),
        "{handler}: no 'reopened' in {}: {:?}",
        log.display(),
        fs::read_to_string(&log)
    );

    cri.remove_pod(&pod);
}

#[test]
fn cri_runc_user_namespaced_pod() {
    user_namespaced_pod(RUNC_1_3_HANDLER, "cri_runc_user_namespaced_pod");
}

#[test]
fn cri_youki_user_namespaced_pod() {
    user_namespaced_pod(YOUKI_RUNC_TYPE, "cri_youki_user_namespaced_pod");
}

/// The same through the plain `io.containerd.youki.v2` entry.
#[test]
fn cri_youki_plain_entry_user_namespaced_pod() {
    user_namespaced_pod(YOUKI, "cri_youki_plain_entry_user_namespaced_pod");
}

/// runc 1.1.5 (the `runc` handler) departs: it runs the sandbox in the pod's user
/// namespace, but it has no id-mapped mounts (no `mountExtensions.idmap` in its
/// features), so containerd's runc shim refuses a container with id-mapped volumes.
/// Nothing is left.
#[test]
fn cri_runc_1_1_refuses_id_mapped_volumes() {
    if !has_userns_pods("cri_runc_1_1_refuses_id_mapped_volumes") {
        return;
    }
    let cri = Cri::start("userns-runc11", false);
    let mut config = cri.pod_config("userns", false);
    let host = host_base(RUNC);
    youki_cri::set_user_namespace(&mut config, host, SIZE);
    let mappings = youki_cri::user_namespace_mappings(&config).expect("mappings");
    let pod = cri.run_pod(config, RUNC);
    let uid_map = fs::read_to_string(format!("/proc/{}/uid_map", pod.pid)).unwrap();
    assert_eq!(
        id_map(&uid_map),
        vec![vec![0, u64::from(host), u64::from(SIZE)]]
    );
    let dir = cri.w().path("volume");
    fs::create_dir_all(&dir).unwrap();
    let mut c = cri.container_config(&pod, "c", SLEEPER);
    c.mounts = vec![volume(&dir, "/v", Some(&mappings))];
    let id = cri.create_container(&pod, &c);
    let e = cri
        .client
        .start_container(&id)
        .expect_err("an id-mapped volume on runc 1.1.5");
    assert!(e.message().contains("idmap mounts not supported"), "{e}");
    cri.remove_pod(&pod);
}
