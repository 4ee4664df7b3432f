//! containerd-shim-youki-v2: a containerd shim v2 (task API v2, as containerd 1.6 and 1.7
//! speak it, and 2.x accepts) that runs containers in-process with runtime-core: no
//! runtime binary is executed per operation.

// Unsafe code lives in runtime-core's kernel layer only (issue 20).
#![forbid(unsafe_code)]

mod checkpoint;
mod error;
mod events;
mod info;
mod io;
mod metrics;
mod mounts;
mod oom;
mod options;
mod reaper;
mod service;
mod shim;
mod task;
mod ttrpc_server;
mod typeurl;
mod zygote;

use containerd_shim::Config;
use nix::sys::signal::Signal;
use runtime_core::os::malloc;
use runtime_core::os::signals::{self, Action};

/// The runtime name containerd resolves to this binary.
const RUNTIME_ID: &str = "io.containerd.youki.v2";

fn is_version_flag(arg: &str) -> bool {
    matches!(arg, "-v" | "--v" | "-version" | "--version")
}

fn main() {
    if std::env::args().skip(1).any(|a| is_version_flag(&a)) {
        println!(
            "containerd-shim-youki-v2:\n  Version: {}\n  Runtime: runtime-core (in-process)\n  Task API: v2",
            env!("CARGO_PKG_VERSION")
        );
        return;
    }
    // containerd 2.x's introspection (info.rs): answered before anything of the
    // containerd-shim crate runs, which would ask for a namespace and socket first.
    if std::env::args().skip(1).any(|a| info::is_info_flag(&a)) {
        let stdout = std::io::stdout().lock();
        if let Err(e) = info::write_info(RUNTIME_ID, std::io::stdin().lock(), stdout) {
            // containerd puts the shim's stderr into its error, as for the runc shim.
            eprintln!("{RUNTIME_ID}: {e}");
            std::process::exit(1);
        }
        return;
    }
    // A panic in any thread ends the shim, in every build (release already aborts): a
    // server thread that died alone would leave a shim that containerd gave up on but
    // that never exits. The message goes to the shim's log, which containerd copies.
    std::panic::set_hook(Box::new(|info| {
        log::error!("panic: {info}");
        eprintln!("containerd-shim-youki-v2: panic: {info}");
        std::process::abort();
    }));
    // Early, before anything is allocated: about 2 MB of RSS per shim. The zygote turns it
    // back on for the containers it creates.
    let _ = nix::sys::prctl::set_thp_disable(true);
    // One malloc arena instead of one per thread (request, copy and watcher threads, all
    // lightly loaded): a few hundred kB of RSS.
    let _ = malloc::set_arena_max(1);
    // The reaper relies on exits staying waitable: an inherited SIG_IGN would auto-reap.
    let _ = signals::set_action(Signal::SIGCHLD, Action::Default);
    // The server starts its zygote as this binary with the action `zygote`: it only
    // serves the server's requests (zygote.rs), nothing of the containerd-shim crate runs.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(debug) = zygote::is_zygote(&args) {
        std::process::exit(zygote::main(debug));
    }
    // The server runs on this shim's own bootstrap (shim::serve); `start` and `delete` on
    // the crate's.
    match containerd_shim::parse(&args[1..]) {
        Ok(flags) if flags.action.is_empty() => {
            quiet_signals();
            if let Err(e) = shim::serve(RUNTIME_ID, flags) {
                log::error!("{e}");
                eprintln!("{RUNTIME_ID}: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            let config = Config {
                // The shim owns reaping (src/reaper.rs): exactly one reaper in the process.
                no_reaper: true,
                ..Default::default()
            };
            containerd_shim::run::<shim::YoukiShim>(RUNTIME_ID, Some(config));
        }
    }
}

/// The server outlives SIGTERM and SIGINT (containerd ends it with Shutdown), as under the
/// crate's bootstrap, which caught them to log them. Caught by a handler that does
/// nothing, not ignored: the programs the server starts (binary:// loggers) get the
/// default back at exec, as an ignored signal would not.
fn quiet_signals() {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        if let Err(e) = signals::set_action(sig, Action::Discard) {
            eprintln!("{RUNTIME_ID}: catching {sig}: {}", e.errno);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_flags() {
        for f in ["-v", "--v", "-version", "--version"] {
            assert!(super::is_version_flag(f));
        }
        assert!(!super::is_version_flag("-verbose"));
    }
}
