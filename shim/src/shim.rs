//! The shim binary's life cycle (containerd's runtime v2 commands), on the containerd-shim
//! crate's synchronous bootstrap:
//!
//! - `start`: spawns the long-lived server, prints its socket address, returns. Containers
//!   of one group (a CRI pod, or `io.containerd.runc.v2.group`) share one server: the
//!   first one's `start` spawns it, the others' answer its address.
//! - `delete`: cleans up after a dead shim from the bundle.
//! - no command: the server, [`serve`]: the crate's bootstrap for it, with this shim's
//!   ttrpc server (ttrpc_server.rs) in place of ttrpc's, which keeps six threads per
//!   connection. `YoukiShim::new` forks the zygote while the process still has its
//!   only thread, sets up logging, then the main thread serves the Task service until
//!   the [`ExitSignal`]. Later zygotes are exec'd on demand (zygote.rs).
//! - `zygote` (after the server's own arguments): the zygote, dispatched in main.rs.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, Flags, StartOpts};
use containerd_shim_protos::shim::shim_ttrpc::create_task;

use crate::events::{Events, Publisher};
use crate::service::Service;
use crate::task::{self, Tasks};
use crate::ttrpc_server;
use crate::zygote::Zygote;

pub(crate) mod logger;

/// The server's signal to stop (Shutdown with no task left): wakes [`ExitSignal::wait`] and
/// makes [`ExitSignal::fd`] readable, so that the thread serving ttrpc needs no other
/// thread to watch for it.
#[derive(Default)]
pub struct ExitSignal {
    signalled: Mutex<bool>,
    cond: Condvar,
    /// A socket pair: the first end is polled, the second written at the signal.
    wake: OnceLock<Result<(UnixStream, UnixStream), String>>,
}

impl ExitSignal {
    /// Tells the server to stop.
    pub fn signal(&self) {
        *self.signalled.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_all();
        if let Some(Ok((_, w))) = self.wake.get() {
            // A full socket is readable already.
            let _ = (&*w).write(&[1]);
        }
    }

    /// Waits for the signal.
    pub fn wait(&self) {
        let mut signalled = self.signalled.lock().unwrap_or_else(|p| p.into_inner());
        while !*signalled {
            signalled = self.cond.wait(signalled).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A descriptor that is readable once the signal is given (made on first use).
    pub fn fd(&self) -> Result<BorrowedFd<'_>, String> {
        let pair = self.wake.get_or_init(|| {
            let (r, w) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
            w.set_nonblocking(true)
                .map_err(|e| format!("socketpair: {e}"))?;
            Ok((r, w))
        });
        let (r, _) = pair.as_ref().map_err(Clone::clone)?;
        // Given before the pair existed: make it readable now.
        if *self.signalled.lock().unwrap_or_else(|p| p.into_inner()) {
            self.signal();
        }
        Ok(r.as_fd())
    }
}

/// The shim.
pub struct YoukiShim {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
    bundle: String,
    /// The socket this server listens on (`-socket`).
    socket: String,
    zygote: Mutex<Option<std::result::Result<Zygote, String>>>,
    tasks: OnceLock<Arc<Tasks>>,
}

/// Annotations that group containers into one shim, in the order containerd's runc shim
/// reads them: an explicit group, then the pod CRI puts every container of a sandbox in.
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

/// The id that names the shim's socket: the group of the bundle's config.json (`config`),
/// else the task's own id.
fn grouping_id(id: &str, config: &[u8]) -> String {
    let annotations = serde_json::from_slice::<serde_json::Value>(config)
        .ok()
        .and_then(|v| v.get("annotations").cloned());
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|key| {
            let group = annotations.as_ref()?.get(key)?.as_str()?;
            (!group.is_empty()).then(|| group.to_string())
        })
        .unwrap_or_else(|| id.to_string())
}

/// How long the crate gets to stop the server and the process to exit after `YoukiShim::wait`
/// returned.
const EXIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Ends the process if it is still there [`EXIT_DEADLINE`] after the shim was told to go:
/// a shim containerd has shut down must never linger. Under load in CI a server was seen
/// still running 30 s after it logged the end of its ttrpc server (cause not found).
fn exit_watchdog() {
    let spawned = std::thread::Builder::new()
        .name("exit-watchdog".into())
        .stack_size(64 * 1024)
        .spawn(|| {
            std::thread::sleep(EXIT_DEADLINE);
            // Nothing is logged here: a blocked logger may be what holds the exit up. The
            // shim's state is on disk and its socket removed, nothing else needs to run.
            runtime_core::os::exit_now(0)
        });
    if let Err(e) = spawned {
        log::warn!("starting the exit watchdog: {e}");
    }
}

/// A shim already serves `address` (its group's first container started it).
fn serving(address: &str) -> bool {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;

    let path = address.strip_prefix("unix://").unwrap_or(address);
    let Ok(addr) = UnixAddr::new(path) else {
        return false;
    };
    let Ok(sock) = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    // Non-blocking: a busy shim whose backlog is full (EAGAIN) is alive, and must not
    // hang `start`.
    matches!(
        connect(sock.as_raw_fd(), &addr),
        Ok(()) | Err(nix::errno::Errno::EAGAIN)
    )
}

/// Listens on `address`, making its directory first (as the crate does).
fn listen(address: &str) -> std::io::Result<std::os::unix::net::UnixListener> {
    let path = std::path::Path::new(address.strip_prefix("unix://").unwrap_or(address));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::os::unix::net::UnixListener::bind(path)
}

/// How long the answers still being written (Shutdown's) get once the shim was told to go.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The server process (no action), as the containerd-shim crate's bootstrap runs it but on
/// [`ttrpc_server`]: `-namespace` and `-socket` are required, `TTRPC_ADDRESS` names
/// containerd's ttrpc socket for events.
pub fn serve(runtime_id: &str, flags: Flags) -> Result<(), String> {
    if flags.namespace.is_empty() {
        return Err("the shim's namespace cannot be empty".into());
    }
    if flags.socket.is_empty() {
        return Err("the shim's socket cannot be empty".into());
    }
    std::env::var("TTRPC_ADDRESS").map_err(|e| format!("TTRPC_ADDRESS: {e}"))?;
    // A subreaper: the containers' init processes are reparented to the server when
    // runtime-core's intermediate process exits.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("becoming a child subreaper: {e}"))?;
    let mut config = Config {
        // The shim owns reaping (src/reaper.rs): exactly one reaper in the process.
        no_reaper: true,
        ..Default::default()
    };
    let mut shim = <YoukiShim as containerd_shim::Shim>::new(runtime_id, &flags, &mut config);
    if !config.no_setup_logger {
        containerd_shim::logger::init(
            flags.debug,
            &config.default_log_level,
            &flags.namespace,
            &flags.id,
        )
        .map_err(|e| format!("setting up the log: {e}"))?;
    }
    let listener = match listen(&flags.socket) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // As the crate: a live server there serves this shim's tasks too.
            if serving(&flags.socket) {
                containerd_shim::synchronous::util::write_address(&flags.socket)
                    .map_err(|e| format!("writing the address: {e}"))?;
                return started();
            }
            remove_socket(&flags.socket);
            listen(&flags.socket).map_err(|e| format!("listening on {}: {e}", flags.socket))?
        }
        Err(e) => return Err(format!("listening on {}: {e}", flags.socket)),
    };
    let exit = shim.exit.clone();
    let stop = exit
        .fd()
        .map_err(|e| format!("the server's exit signal: {e}"))?;
    let service = shim.task_service();
    // Wait lasts as long as its process: no thread of its own (service.rs).
    let deferred = ttrpc_server::DeferredMethods::from([(
        "/containerd.task.v2.Task/Wait".to_string(),
        Box::new(service.wait_rpc()) as Box<dyn ttrpc_server::Deferred>,
    )]);
    let server = ttrpc_server::Server::new(create_task(Arc::new(service)), deferred);
    started()?;
    log::info!("shim serving on {}", flags.socket);
    server.run(&listener, stop);
    containerd_shim::Shim::wait(&mut shim);
    server.drain(DRAIN_TIMEOUT);
    Ok(())
}

/// Releases `start`, which reads the server's stdout until its end: stdout becomes a copy
/// of stderr (as the crate does it).
fn started() -> Result<(), String> {
    nix::unistd::dup2_stdout(std::io::stderr())
        .map(drop)
        .map_err(|e| format!("closing the pipe to `start`: {e}"))
}

fn remove_socket(address: &str) {
    use std::os::unix::fs::FileTypeExt;

    let path = std::path::Path::new(address.strip_prefix("unix://").unwrap_or(address));
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("removing {}: {e}", path.display());
        }
    }
}

impl containerd_shim::Shim for YoukiShim {
    type T = Service;

    fn new(runtime_id: &str, flags: &Flags, config: &mut Config) -> Self {
        let server = flags.action.is_empty() && !flags.socket.is_empty();
        // Only the server needs a zygote. Forked here, while the process still has its
        // only thread ([`serve`] calls this before starting any), by the main thread, which
        // lives as long as the server: the zygote's parent-death signal is tied to it.
        let zygote = server.then(|| Ok(Zygote::start(flags.debug)));
        // After the fork: the zygote has no logger, as before. Should the fifo not open,
        // the crate sets up its own logger and fails the server with its error.
        if server {
            config.no_setup_logger = logger::init(flags.debug, runtime_id.to_string()).is_ok();
        }
        YoukiShim {
            exit: Arc::new(ExitSignal::default()),
            namespace: flags.namespace.clone(),
            id: flags.id.clone(),
            bundle: flags.bundle.clone(),
            socket: flags.socket.clone(),
            zygote: Mutex::new(zygote),
            tasks: OnceLock::new(),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        // containerd runs `start` in the bundle.
        let config = std::fs::read("config.json").unwrap_or_else(|e| {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("reading config.json for the shim's group: {e}");
            }
            Vec::new()
        });
        let grouping = grouping_id(&opts.id, &config);
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &grouping);
        // Another container of the group: its shim serves this one too. Without this check
        // a whole server (and its zygote) would start only to find the address taken.
        let address = if serving(&address) {
            address
        } else {
            // As containerd's runc shim: the shim is a little likelier than containerd to be
            // chosen by the OOM killer, and containers without an oomScoreAdj of their own
            // inherit that score. Set here, before the server and its zygote are forked.
            if let Err(e) = containerd_shim::cgroup::adjust_oom_score(std::process::id()) {
                log::warn!("raising the shim's oom_score_adj above containerd's: {e}");
            }
            containerd_shim::spawn(opts, &grouping, Vec::new())?.1
        };
        // Relative to the bundle (the cwd containerd gives us): the server removes the
        // socket it names when it stops, `delete` after a killed shim.
        containerd_shim::synchronous::util::write_address(&address)?;
        Ok(address)
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        let bundle = if self.bundle.is_empty() {
            std::env::current_dir().map_err(|e| containerd_shim::Error::IoError {
                context: "current dir".into(),
                err: e,
            })?
        } else {
            PathBuf::from(&self.bundle)
        };
        Ok(task::cleanup_dead_shim(&bundle, &self.id))
    }

    fn wait(&mut self) {
        self.exit.wait();
        if let Some(tasks) = self.tasks.get() {
            tasks.shutdown();
        }
        // The crate removes the socket named by the bundle's `address` file after this
        // returns, but containerd may have removed the bundle by then (it does so right
        // after Shutdown): remove it here, by the path this server was given. Unlinking
        // does not disturb the connection still answering Shutdown.
        remove_socket(&self.socket);
        exit_watchdog();
    }

    /// Not called ([`serve`] runs the server, not the crate): the trait requires it.
    fn create_task_service(&self, publisher: RemotePublisher) -> Service {
        // The crate's publisher encodes events through protobuf reflection, whose tables
        // stay in the heap: this shim connects its own (see events.rs).
        drop(publisher);
        self.task_service()
    }
}

impl YoukiShim {
    /// The Task service, with the zygote forked in [`containerd_shim::Shim::new`], its own
    /// events publisher and the reaper started.
    fn task_service(&self) -> Service {
        let zygote = self
            .zygote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| Err("not started".into()));
        if let Err(e) = &zygote {
            log::error!("no zygote: {e}; creating containers will fail");
        }
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let events = Events::start(Publisher::new(&address), self.namespace.clone());
        let tasks = Tasks::new(zygote, events, self.exit.clone());
        let weak = Arc::downgrade(&tasks);
        if let Err(e) = crate::reaper::start(move |pid, status| {
            if let Some(s) = weak.upgrade() {
                s.on_exit(pid, status);
            }
        }) {
            log::error!("starting the reaper: {e}");
        }
        let _ = self.tasks.set(tasks.clone());
        Service::new(tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_follows_runc_shims_annotations() {
        let both = br#"{"annotations": {"io.kubernetes.cri.sandbox-id": "pod",
            "io.containerd.runc.v2.group": "g"}}"#;
        assert_eq!(grouping_id("c", both), "g");
        let pod = br#"{"annotations": {"io.kubernetes.cri.sandbox-id": "pod"}}"#;
        assert_eq!(grouping_id("c", pod), "pod");
    }

    #[test]
    fn without_a_group_the_task_has_its_own_shim() {
        for config in [
            &b""[..],
            b"not json",
            b"{}",
            br#"{"annotations": {"other": "x"}}"#,
            br#"{"annotations": {"io.containerd.runc.v2.group": ""}}"#,
            br#"{"annotations": {"io.containerd.runc.v2.group": 7}}"#,
        ] {
            assert_eq!(
                grouping_id("c", config),
                "c",
                "{}",
                String::from_utf8_lossy(config)
            );
        }
    }

    #[test]
    fn serving_means_something_accepts_connections() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let address = format!("unix://{}", path.display());
        assert!(!serving(&address));
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        assert!(serving(&address));
        assert!(serving(path.to_str().expect("utf-8")));
    }
}
