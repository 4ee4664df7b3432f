//! Kubernetes' forensic container checkpointing through CRI, as kubelet drives it:
//! CheckpointContainer of a running container writes the archive kubelet keeps
//! (CRIU's images under `checkpoint/`, the container's config, spec and rw layer), and
//! the container runs on. With our shim (the `youki` handler, and on containerd 2.x
//! `youki-runc-type`, which gets runc's checkpoint options) and, as the reference,
//! containerd's runc shim with Debian's runc.
//!
//! Not here: restoring the archive as the image of a new container. containerd 2.1.9
//! imports it by pulling the checkpoint's base image from its registry, always (even when
//! the image is on the node), and records that image as CRI's ContainerStatus gives it,
//! for a locally imported image its bare id (`sha256:...`), which cannot be pulled. With
//! no registry here, that fails before any shim is asked, for runc's as for ours. The
//! restore it would then ask of the shim is a Create with a checkpoint, as `ctr container
//! restore --live` asks it (tests/e2e_shim_checkpoint.rs).
//!
//! containerd 1.6 and 1.7 answer CheckpointContainer with Unimplemented, for runc as for us: the
//! test says so and checks that. CRIU is sid's 4.x (scripts/fetch-criu.sh) or
//! `$CRIU_BIN`, linked first on containerd's PATH, where CRI looks for it; without it the
//! test prints why and checks nothing.

mod common;
#[allow(dead_code)]
#[path = "e2e_support/cri.rs"]
mod cri;
mod e2e_support;

use std::process::Command;
use std::time::Duration;

use common::{criu_or_skip, describe, poll, stdout_of, token_count, TOKEN_COUNTER};
use cri::*;

/// Bound on one CheckpointContainer.
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(120);

/// (token, number) of the counter in container `id`.
fn count(cri: &Cri, id: &str) -> Option<(String, u64)> {
    let r = cri
        .client
        .exec_sync(id, &["cat", "/count"], Duration::from_secs(30))
        .ok()?;
    let text = String::from_utf8_lossy(&r.stdout).into_owned();
    token_count(&text)
}

/// Waits until the counter in `id` reached `n`; returns its reading.
#[track_caller]
fn count_to(cri: &Cri, id: &str, n: u64) -> (String, u64) {
    let mut last = None;
    let reached = poll(Duration::from_secs(30), || {
        last = count(cri, id);
        last.as_ref().is_some_and(|(_, i)| *i >= n)
    });
    assert!(reached, "{id} did not count to {n}: {last:?}");
    last.expect("a reading")
}

#[test]
fn cri_checkpoint_writes_kubelets_archive_and_the_container_runs_on() {
    let Some(criu) =
        criu_or_skip("cri_checkpoint_writes_kubelets_archive_and_the_container_runs_on")
    else {
        return;
    };
    let cri = Cri::start_with("cri-ckpt", true, &[("criu", &criu)]);
    let mut handlers = vec![YOUKI, RUNC];
    if cri.containerd_major >= 2 && cri.handler_features(YOUKI_RUNC_TYPE).is_some() {
        handlers.push(YOUKI_RUNC_TYPE);
    }
    for handler in handlers {
        let pod = cri.run_pod(cri.pod_config("ck", false), handler);
        let config = cri.container_config(&pod, "counter", &["sh", "-c", TOKEN_COUNTER]);
        let id = cri.start_container(&pod, &config);
        let (token, before) = count_to(&cri, &id, 3);

        let archive = cri.w().path(&format!("checkpoint-{handler}.tar"));
        let r = cri
            .client
            .checkpoint_container(&id, &archive, CHECKPOINT_TIMEOUT);
        if cri.containerd_major < 2 {
            let e = r.expect_err("containerd 1.x checkpointed");
            assert_eq!(
                e.code(),
                Some(youki_cri::Code::Unimplemented),
                "{handler}: {e}"
            );
            cri.remove_pod(&pod);
            continue;
        }
        r.unwrap_or_else(|e| {
            panic!(
                "{handler}: CheckpointContainer: {e}\n{}",
                cri.ctd.log_tail()
            )
        });
        let o = Command::new("tar")
            .arg("-tf")
            .arg(&archive)
            .output()
            .expect("tar");
        let listed = stdout_of(&o);
        for entry in [
            "checkpoint/inventory.img",
            "config.dump",
            "spec.dump",
            "rootfs-diff.tar",
        ] {
            assert!(
                listed.lines().any(|l| l.trim_start_matches("./") == entry),
                "{handler}: no {entry} in the archive\n{}",
                describe(&o)
            );
        }
        // Kubernetes' checkpoints are forensic: the same process runs on.
        let (same, n) = count_to(&cri, &id, before + 1);
        assert_eq!(same, token, "{handler}: the counter started afresh");
        count_to(&cri, &id, n + 2);

        cri.remove_pod(&pod);
    }
}
