//! The shim binary's life cycle (containerd's runtime v2 commands), on the containerd-shim
//! crate's synchronous bootstrap:
//!
//! - `start`: spawns the long-lived server (grouped by the CRI sandbox id when there is
//!   one), prints its socket address, returns.
//! - `delete`: cleans up after a dead shim from the bundle.
//! - no command: the server. [`YoukiShim::new`] forks the zygote there, while the process
//!   still has its only thread (the crate calls it before starting any), then the crate
//!   sets up logging and serves the Task service until [`YoukiShim::wait`] returns.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use containerd_shim::api::DeleteResponse;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, ExitSignal, Flags, StartOpts};

use crate::events::{Events, Item, Publish, Publisher};
use crate::service::{self, Service, Shared};
use crate::zygote::{LogSetup, Zygote};

/// The annotation CRI puts on every container of a pod: the shim of the pod serves them all.
const SANDBOX_ID_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";

/// The shim.
pub struct YoukiShim {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
    bundle: String,
    /// The socket this server listens on (`-socket`).
    socket: String,
    zygote: Mutex<Option<std::result::Result<Zygote, String>>>,
    shared: OnceLock<Arc<Shared>>,
}

/// The id that names the shim's socket: the sandbox's for a CRI container, else the task's.
fn grouping_id(id: &str) -> String {
    let sandbox = std::fs::read("config.json")
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.get("annotations")?
                .get(SANDBOX_ID_ANNOTATION)?
                .as_str()
                .map(str::to_string)
        });
    match sandbox {
        Some(s) if !s.is_empty() => s,
        _ => id.to_string(),
    }
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

/// Stands in for a publisher that could not connect: every event fails (and is logged).
struct Unconnected(String);

impl Publish for Unconnected {
    fn publish(&self, _namespace: &str, _item: &Item) -> Result<(), String> {
        Err(self.0.clone())
    }
}

impl containerd_shim::Shim for YoukiShim {
    type T = Service;

    fn new(_runtime_id: &str, flags: &Flags, _config: &mut Config) -> Self {
        // Only the server needs a zygote. This runs before the crate starts any thread.
        let zygote = (flags.action.is_empty() && !flags.socket.is_empty()).then(|| {
            Zygote::spawn(&LogSetup {
                debug: flags.debug,
                namespace: flags.namespace.clone(),
                id: flags.id.clone(),
            })
            .map_err(|e| e.to_string())
        });
        YoukiShim {
            exit: Arc::new(ExitSignal::default()),
            namespace: flags.namespace.clone(),
            id: flags.id.clone(),
            bundle: flags.bundle.clone(),
            socket: flags.socket.clone(),
            zygote: Mutex::new(zygote),
            shared: OnceLock::new(),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        let grouping = grouping_id(&opts.id);
        let (_pid, address) = containerd_shim::spawn(opts, &grouping, Vec::new())?;
        // Relative to the bundle (the cwd containerd gives us): the server removes the
        // socket it names when it stops.
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
        Ok(service::cleanup_dead_shim(&bundle, &self.id))
    }

    fn wait(&mut self) {
        self.exit.wait();
        if let Some(shared) = self.shared.get() {
            shared.shutdown();
        }
        // The crate removes the socket named by the bundle's `address` file after this
        // returns, but containerd may have removed the bundle by then (it does so right
        // after Shutdown): remove it here, by the path this server was given. Unlinking
        // does not disturb the connection still answering Shutdown.
        remove_socket(&self.socket);
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> Service {
        let zygote = self
            .zygote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_else(|| Err("not forked".into()));
        if let Err(e) = &zygote {
            log::error!("no zygote: {e}; creating containers will fail");
        }
        // The crate's publisher encodes events through protobuf reflection, whose tables
        // stay in the heap: this shim connects its own (see events.rs).
        drop(publisher);
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let events = match Publisher::connect(&address) {
            Ok(p) => Events::start(p, self.namespace.clone()),
            Err(e) => {
                log::error!("events: {e}; events to containerd will be lost");
                Events::start(Unconnected(e), self.namespace.clone())
            }
        };
        let shared = Shared::new(zygote, events, self.exit.clone());
        let weak = Arc::downgrade(&shared);
        if let Err(e) = crate::reaper::start(move |pid, status| {
            if let Some(s) = weak.upgrade() {
                s.on_exit(pid, status);
            }
        }) {
            log::error!("starting the reaper: {e}");
        }
        let _ = self.shared.set(shared.clone());
        Service::new(shared)
    }
}
