//! `youki-cri`: a smoke check of a node's containerd CRI and a runtime handler, making
//! the calls kubelet makes.
//!
//!   youki-cri [--address SOCK] version
//!   youki-cri [--address SOCK] smoke --runtime-handler youki --image IMAGE [--pause-image P] [--host-network]
//!
//! `smoke` runs a pod with one busybox container (`sleep`), checks ExecSync (`echo ok`), prints
//! the container's stats, then stops and removes the container and the pod, also when
//! a step failed.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use youki_cri::{api, Client};

#[derive(Parser)]
#[command(
    name = "youki-cri",
    version,
    about = "A kubelet-like CRI smoke check against containerd"
)]
struct Cli {
    /// containerd's CRI socket.
    #[arg(long, default_value = youki_cri::DEFAULT_ADDRESS)]
    address: String,
    /// Seconds each CRI call may take.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the runtime's Version and its Status conditions.
    Version,
    /// Runs a pod with one container through a runtime handler, checks it, removes it.
    Smoke {
        /// The runtime handler (a runtime name in containerd's CRI config, the
        /// RuntimeClass's `handler`).
        #[arg(long)]
        runtime_handler: String,
        /// The container's image; it must be present on the node and have `sh`, `sleep`
        /// and `echo` (busybox).
        #[arg(long)]
        image: String,
        /// The sandbox (pause) image containerd is configured with: checked to be
        /// present, since a node without a registry cannot pull it.
        #[arg(long)]
        pause_image: Option<String>,
        /// Runs the pod in the node's network namespace instead of a CNI pod network.
        #[arg(long)]
        host_network: bool,
        /// The pod's cgroup parent, as kubelet passes it (cgroupfs driver: a path such
        /// as /kubepods/besteffort). Without it containerd puts the pod under /k8s.io.
        #[arg(long)]
        cgroup_parent: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match Client::connect_with_timeout(&cli.address, Duration::from_secs(cli.timeout))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("youki-cri: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Version => version(&client),
        Command::Smoke {
            runtime_handler,
            image,
            pause_image,
            host_network,
            cgroup_parent,
        } => smoke(
            &client,
            &SmokeOptions {
                handler: &runtime_handler,
                image: &image,
                pause_image: pause_image.as_deref(),
                host_network,
                cgroup_parent: cgroup_parent.as_deref(),
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("youki-cri: {e}");
            ExitCode::FAILURE
        }
    }
}

fn version(c: &Client) -> Result<(), String> {
    let v = c.version().map_err(|e| e.to_string())?;
    println!(
        "runtime: {} {} (CRI API {})",
        v.runtime_name, v.runtime_version, v.runtime_api_version
    );
    let st = c.status(false).map_err(|e| e.to_string())?;
    for cond in st.status.iter().flat_map(|s| &s.conditions) {
        let why = if cond.status {
            String::new()
        } else {
            format!(": {} {}", cond.reason, cond.message)
        };
        println!("{}: {}{why}", cond.r#type, cond.status);
    }
    Ok(())
}

/// Prints a step and how long it took.
fn step<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let t0 = Instant::now();
    let r = f();
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    match &r {
        Ok(_) => println!("ok   {what} ({ms:.0} ms)"),
        Err(_) => println!("FAIL {what} ({ms:.0} ms)"),
    }
    r
}

/// What `smoke` runs.
struct SmokeOptions<'a> {
    handler: &'a str,
    image: &'a str,
    pause_image: Option<&'a str>,
    host_network: bool,
    cgroup_parent: Option<&'a str>,
}

fn smoke(c: &Client, o: &SmokeOptions) -> Result<(), String> {
    let (handler, image, host_network) = (o.handler, o.image, o.host_network);
    step("Version", || {
        let v = c.version().map_err(|e| e.to_string())?;
        println!("     {} {}", v.runtime_name, v.runtime_version);
        Ok(())
    })?;
    step("Status", || {
        let st = c.status(false).map_err(|e| e.to_string())?;
        for kind in ["RuntimeReady", "NetworkReady"] {
            if kind == "NetworkReady" && host_network {
                continue;
            }
            match youki_cri::condition(&st, kind) {
                Some(cond) if cond.status => {}
                Some(cond) => {
                    return Err(format!(
                        "{kind} is false: {} {} (a pod network needs a CNI config on the node; \
                         --host-network does without)",
                        cond.reason, cond.message
                    ))
                }
                None => return Err(format!("the runtime reports no {kind} condition")),
            }
        }
        Ok(())
    })?;
    let mut wanted = vec![image];
    wanted.extend(o.pause_image);
    for img in wanted {
        step(&format!("ImageStatus {img}"), || {
            match c.image_status(img).map_err(|e| e.to_string())? {
                Some(_) => Ok(()),
                None => Err(format!(
                    "image {img} is not present in containerd's k8s.io namespace \
                     (import it: scripts/cri-images.sh, or ctr -n k8s.io images import)"
                )),
            }
        })?;
    }

    // Unique per run, so that a smoke check never meets an earlier one's pod.
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name = format!("youki-cri-smoke-{}", std::process::id());
    let uid = format!("youki-cri-smoke-{nonce:x}");
    let mut pod = youki_cri::pod_sandbox_config(&name, "default", &uid);
    youki_cri::set_host_network(&mut pod, host_network);
    if let (Some(parent), Some(linux)) = (o.cgroup_parent, pod.linux.as_mut()) {
        if !parent.starts_with('/') && !parent.ends_with(".slice") {
            return Err(format!(
                "--cgroup-parent {parent:?}: an absolute cgroup path (or a systemd slice)"
            ));
        }
        linux.cgroup_parent = parent.to_string();
    }

    let pod_id = step(&format!("RunPodSandbox (handler {handler})"), || {
        c.run_pod_sandbox(&pod, handler).map_err(|e| e.to_string())
    })?;
    let checked = pod_checks(c, &pod_id, &pod, image);
    // Cleanup always; its errors are reported after the check's own.
    let stopped = step("StopPodSandbox", || {
        c.stop_pod_sandbox(&pod_id).map_err(|e| e.to_string())
    });
    let removed = step("RemovePodSandbox", || {
        c.remove_pod_sandbox(&pod_id).map_err(|e| e.to_string())
    });
    checked?;
    stopped?;
    removed?;
    println!("smoke: ok (runtime handler {handler})");
    Ok(())
}

fn pod_checks(
    c: &Client,
    pod_id: &str,
    pod: &api::PodSandboxConfig,
    image: &str,
) -> Result<(), String> {
    step("PodSandboxStatus", || {
        let st = c
            .pod_sandbox_status(pod_id, false)
            .map_err(|e| e.to_string())?
            .status
            .ok_or("PodSandboxStatus: no status")?;
        if st.state != api::PodSandboxState::SandboxReady as i32 {
            return Err(format!("pod {pod_id} is not ready (state {})", st.state));
        }
        let ip = st.network.map(|n| n.ip).unwrap_or_default();
        println!(
            "     pod {pod_id} ready, ip {}",
            if ip.is_empty() { "(host)" } else { &ip }
        );
        Ok(())
    })?;
    // Exits 0 on SIGTERM: StopContainer then needs no grace period (a plain `sleep` as
    // pid 1 ignores SIGTERM and is killed only after it).
    let command = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
    let config = youki_cri::container_config("smoke", image, &command, pod);
    let id = step("CreateContainer", || {
        c.create_container(pod_id, &config, pod)
            .map_err(|e| e.to_string())
    })?;
    let checked = container_checks(c, &id);
    let stopped = step("StopContainer", || {
        c.stop_container(&id, 5).map_err(|e| e.to_string())
    });
    let removed = step("RemoveContainer", || {
        c.remove_container(&id).map_err(|e| e.to_string())
    });
    checked?;
    stopped?;
    removed
}

fn container_checks(c: &Client, id: &str) -> Result<(), String> {
    step("StartContainer", || {
        c.start_container(id).map_err(|e| e.to_string())
    })?;
    step("ContainerStatus", || {
        let st = c.container_state(id).map_err(|e| e.to_string())?;
        if st.state != api::ContainerState::ContainerRunning as i32 {
            return Err(format!(
                "container {id} is not running (state {}, reason {:?}, message {:?})",
                st.state, st.reason, st.message
            ));
        }
        Ok(())
    })?;
    step("ExecSync echo ok", || {
        let r = c
            .exec_sync(id, &["echo", "ok"], Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let out = String::from_utf8_lossy(&r.stdout);
        if r.exit_code != 0 || out != "ok\n" {
            return Err(format!(
                "ExecSync echo ok: exit code {}, stdout {out:?}, stderr {:?}",
                r.exit_code,
                String::from_utf8_lossy(&r.stderr)
            ));
        }
        Ok(())
    })?;
    step("ContainerStats", || {
        let s = c.container_stats(id).map_err(|e| e.to_string())?;
        let cpu = s
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .map(|v| v.value);
        let mem = s.memory.and_then(|m| m.working_set_bytes).map(|v| v.value);
        println!(
            "     cpu {} ns, memory working set {} bytes",
            cpu.map_or("n/a".into(), |v| v.to_string()),
            mem.map_or("n/a".into(), |v| v.to_string())
        );
        Ok(())
    })
}
