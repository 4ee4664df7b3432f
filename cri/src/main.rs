//! `youki-cri`: a smoke check of a node's containerd CRI and a runtime handler, making
//! the calls kubelet makes.
//!
//!   youki-cri [--address SOCK] version
//!   youki-cri [--address SOCK] smoke --runtime-handler youki --image IMAGE [--pause-image P] [--host-network]
//!   youki-cri [--address SOCK] pod-cycle --runtime-handler youki --image IMAGE [--host-network] [--cgroup-parent P] [--name N]
//!   youki-cri [--address SOCK] pod-up --runtime-handler youki --image IMAGE [--containers N] [same options]
//!   youki-cri [--address SOCK] pod-down [--name-prefix PREFIX] [POD_ID...]
//!
//! `smoke` runs a pod with one busybox container (`sleep`), checks ExecSync (`echo ok`), prints
//! the container's stats, then stops and removes the container and the pod, also when
//! a step failed.
//!
//! The other three are what `make bench` (scripts/bench.sh) drives pods with: `pod-cycle`
//! runs the calls kubelet makes for a pod of one container and for its deletion, and
//! prints how long they took; `pod-up` leaves a pod of `sleep` containers running (to
//! measure its shim from the host) and prints its id; `pod-down` removes pods.

// No unsafe code here: the kernel calls that need it live in runtime-core (issue 20).
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
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
        #[arg(long, value_parser = cgroup_parent_arg)]
        cgroup_parent: Option<String>,
    },
    /// Runs a pod of one `sleep` container and removes it; prints the time it took.
    ///
    /// The calls kubelet makes: RunPodSandbox, CreateContainer, StartContainer, then
    /// StopPodSandbox and RemovePodSandbox. Prints their time from the first call to the
    /// last answer, in microseconds (for `make bench`). On failure the pod is still
    /// removed.
    PodCycle {
        #[command(flatten)]
        pod: PodArgs,
    },
    /// Runs a pod of `sleep` containers and leaves it running; prints its sandbox id.
    ///
    /// Remove it with `pod-down ID`. On failure nothing is left running.
    PodUp {
        #[command(flatten)]
        pod: PodArgs,
        /// How many containers besides the sandbox.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        containers: u32,
    },
    /// Stops and removes pods.
    ///
    /// StopPodSandbox and RemovePodSandbox of the pods given, and of every pod whose name
    /// starts with --name-prefix (the pods a run named with `--name`). Carries on past a
    /// failure and reports every one.
    PodDown {
        /// Sandbox ids.
        #[arg(required_unless_present = "name_prefix")]
        ids: Vec<String>,
        /// Also every pod whose metadata.name starts with this (not empty: never every
        /// pod of the node).
        #[arg(long, value_parser = name_prefix_arg)]
        name_prefix: Option<String>,
    },
}

/// The pod that `pod-cycle` and `pod-up` run.
#[derive(Args)]
struct PodArgs {
    /// The runtime handler (a runtime name in containerd's CRI config).
    #[arg(long)]
    runtime_handler: String,
    /// The containers' image; it must be present on the node and have `sleep` (busybox).
    #[arg(long)]
    image: String,
    /// Runs the pod in the node's network namespace instead of a CNI pod network.
    #[arg(long)]
    host_network: bool,
    /// The pod's cgroup parent (an absolute cgroupfs path or a systemd slice).
    #[arg(long, value_parser = cgroup_parent_arg)]
    cgroup_parent: Option<String>,
    /// The pod's name (metadata.name; default youki-cri-PID). Its uid is unique per run,
    /// but CRI refuses a second live pod of the same name: give each its own.
    #[arg(long)]
    name: Option<String>,
}

/// `--cgroup-parent`: what kubelet passes, an absolute cgroupfs path or a systemd slice.
fn cgroup_parent_arg(s: &str) -> Result<String, String> {
    if s.starts_with('/') || s.ends_with(".slice") {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: an absolute cgroup path (or a systemd slice)"
        ))
    }
}

/// `--name-prefix`: not empty, since every name starts with "".
fn name_prefix_arg(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("an empty prefix would name every pod of the node".into())
    } else {
        Ok(s.to_string())
    }
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
        Command::PodCycle { pod } => pod_cycle(&client, &pod),
        Command::PodUp { pod, containers } => pod_up(&client, &pod, containers),
        Command::PodDown { ids, name_prefix } => pod_down(&client, &ids, name_prefix.as_deref()),
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

    let name = format!("youki-cri-smoke-{}", std::process::id());
    let pod = pod_config(&name, host_network, o.cgroup_parent);

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

/// A kubelet-like pod config named `name`, with a uid unique per run (so that a run never
/// meets an earlier one's pod).
fn pod_config(
    name: &str,
    host_network: bool,
    cgroup_parent: Option<&str>,
) -> api::PodSandboxConfig {
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let uid = format!("{name}-{nonce:x}");
    let mut pod = youki_cri::pod_sandbox_config(name, "default", &uid);
    youki_cri::set_host_network(&mut pod, host_network);
    if let (Some(parent), Some(linux)) = (cgroup_parent, pod.linux.as_mut()) {
        linux.cgroup_parent = parent.to_string();
    }
    pod
}

/// The pod of `pod-cycle` and `pod-up`.
fn bench_pod_config(a: &PodArgs) -> api::PodSandboxConfig {
    let name = a
        .name
        .clone()
        .unwrap_or_else(|| format!("youki-cri-{}", std::process::id()));
    pod_config(&name, a.host_network, a.cgroup_parent.as_deref())
}

/// RunPodSandbox, then CreateContainer + StartContainer of `containers` containers
/// running `sleep` (killed by StopPodSandbox, which stops containers without a grace
/// period). Returns the sandbox id; on failure the pod is removed first.
fn run_sleepers(
    c: &Client,
    a: &PodArgs,
    pod: &api::PodSandboxConfig,
    containers: u32,
) -> Result<String, String> {
    let handler = &a.runtime_handler;
    let pod_id = c
        .run_pod_sandbox(pod, handler)
        .map_err(|e| format!("RunPodSandbox (handler {handler}): {e}"))?;
    let started = (0..containers).try_for_each(|n| {
        let config =
            youki_cri::container_config(&format!("sleep-{n}"), &a.image, &["sleep", "3600"], pod);
        let id = c
            .create_container(&pod_id, &config, pod)
            .map_err(|e| format!("CreateContainer (handler {handler}): {e}"))?;
        c.start_container(&id)
            .map_err(|e| format!("StartContainer (handler {handler}): {e}"))
    });
    if let Err(e) = started {
        return Err(match remove_pod(c, &pod_id) {
            Ok(()) => e,
            Err(cleanup) => format!("{e}; then {cleanup}"),
        });
    }
    Ok(pod_id)
}

/// StopPodSandbox + RemovePodSandbox (which stop and remove the pod's containers too).
fn remove_pod(c: &Client, id: &str) -> Result<(), String> {
    // RemovePodSandbox is tried even when the stop failed: it stops what it can.
    let stopped = c
        .stop_pod_sandbox(id)
        .map_err(|e| format!("StopPodSandbox {id}: {e}"));
    let removed = c
        .remove_pod_sandbox(id)
        .map_err(|e| format!("RemovePodSandbox {id}: {e}"));
    stopped.and(removed)
}

fn pod_cycle(c: &Client, a: &PodArgs) -> Result<(), String> {
    let pod = bench_pod_config(a);
    // From the first call to the last answer: the process's start and connection are
    // not the pod's cost.
    let t0 = Instant::now();
    let id = run_sleepers(c, a, &pod, 1)?;
    remove_pod(c, &id)?;
    println!("{}", t0.elapsed().as_micros());
    Ok(())
}

fn pod_up(c: &Client, a: &PodArgs, containers: u32) -> Result<(), String> {
    let pod = bench_pod_config(a);
    let id = run_sleepers(c, a, &pod, containers)?;
    println!("{id}");
    Ok(())
}

fn pod_down(c: &Client, ids: &[String], name_prefix: Option<&str>) -> Result<(), String> {
    let mut all = ids.to_vec();
    if let Some(prefix) = name_prefix {
        let pods = c
            .list_pod_sandbox(None)
            .map_err(|e| format!("ListPodSandbox: {e}"))?;
        for p in pods {
            let named = p
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.starts_with(prefix));
            if named && !all.contains(&p.id) {
                all.push(p.id);
            }
        }
    }
    let errors: Vec<String> = all
        .iter()
        .filter_map(|id| remove_pod(c, id).err())
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}
