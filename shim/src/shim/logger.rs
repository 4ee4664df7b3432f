//! The server's logger: the containerd-shim crate's `FifoLogger` (the bundle's `log`
//! fifo, which containerd copies to its own output), set up by the shim instead of the
//! crate for two differences:
//!
//! - Every line names the runtime (`runtime="io.containerd.youki.v2"`), as containerd's
//!   Go shims name theirs (`runtime=io.containerd.runc.v2`): containerd copies the lines
//!   of every shim and its own into one stream, and this tells an operator (and the CRI
//!   tests) which shim printed what.
//! - A reply the ttrpc server could not write because containerd closed the connection
//!   is logged at debug level, not error. containerd restarting leaves every Wait it had
//!   sent blocked in the shim until the process exits; the ttrpc crate (0.9,
//!   sync/server.rs, its response thread) then writes the reply to the dead connection
//!   and logs `write_message got Socket("Nix error: EPIPE: Broken pipe")` at error level,
//!   once per exit of every task that ran across the restart. The new containerd has sent
//!   its own Wait on its own connection, so nothing is lost. This is the only place that
//!   can tell: the write happens in the crate's thread after the handler returned, and
//!   any reply, also an early one on cancellation, meets the same closed socket. Only
//!   EPIPE and ECONNRESET (the peer is gone) are lowered; any other write error stays an
//!   error.

use std::str::FromStr;

use containerd_shim::logger::FifoLogger;
use log::kv::{self, Key, Source, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};

/// The variable that sets the level, as the crate reads it (`RUST_LOG`).
const LEVEL_ENV: &str = "RUST_LOG";

/// The level containerd's debug flag asks for, and the default otherwise (as the crate).
fn max_level(debug: bool, env: Option<&str>) -> LevelFilter {
    let level = env
        .and_then(|v| LevelFilter::from_str(v).ok())
        .unwrap_or(LevelFilter::Info);
    if debug {
        level.max(LevelFilter::Debug)
    } else {
        level
    }
}

/// The ttrpc server failed to write a reply because the client closed the connection.
fn peer_gone(record: &Record) -> bool {
    if record.level() != Level::Error || !record.target().starts_with("ttrpc") {
        return false;
    }
    // Formatted only for the ttrpc crate's errors, which are rare.
    let message = record.args().to_string();
    message.starts_with("write_message got Socket(")
        && (message.contains("EPIPE") || message.contains("ECONNRESET"))
}

/// The record's own key-values, then the runtime's name.
struct WithRuntime<'a> {
    own: &'a dyn Source,
    runtime: &'a str,
}

impl Source for WithRuntime<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), kv::Error> {
        self.own.visit(visitor)?;
        visitor.visit_pair(Key::from_str("runtime"), Value::from(self.runtime))
    }
}

struct ShimLogger {
    fifo: FifoLogger,
    runtime: String,
}

impl Log for ShimLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.fifo.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        let fields = WithRuntime {
            own: record.key_values(),
            runtime: &self.runtime,
        };
        let mut builder = Record::builder();
        builder
            .level(record.level())
            .target(record.target())
            .module_path(record.module_path())
            .file(record.file())
            .line(record.line())
            .key_values(&fields);
        if peer_gone(record) {
            self.fifo.log(
                &builder
                    .level(Level::Debug)
                    .args(format_args!(
                        "{} (containerd closed the connection)",
                        record.args()
                    ))
                    .build(),
            );
        } else {
            self.fifo.log(&builder.args(*record.args()).build());
        }
    }

    fn flush(&self) {
        self.fifo.flush();
    }
}

/// Installs the logger on the bundle's `log` fifo (the server's cwd is the bundle), for
/// `runtime` (the name containerd knows the shim by), at the level `debug` and
/// `RUST_LOG` ask for.
pub fn init(debug: bool, runtime: String) -> std::io::Result<()> {
    install(FifoLogger::with_path("log")?, debug, runtime)
}

/// Installs the same logger on `file` (the zygote's copy of the server's log fifo), so
/// that the zygote's lines name the runtime too.
pub fn init_on_file(file: std::fs::File, debug: bool, runtime: String) -> std::io::Result<()> {
    install(FifoLogger::with_file(file), debug, runtime)
}

fn install(fifo: FifoLogger, debug: bool, runtime: String) -> std::io::Result<()> {
    log::set_boxed_logger(Box::new(ShimLogger { fifo, runtime }))
        .map_err(|e| std::io::Error::other(format!("a logger is already set: {e}")))?;
    log::set_max_level(max_level(debug, std::env::var(LEVEL_ENV).ok().as_deref()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = "ttrpc::sync::server";

    fn is_quiet(level: Level, target: &str, message: &str) -> bool {
        peer_gone(
            &Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("{message}"))
                .build(),
        )
    }

    #[test]
    fn a_reply_to_a_closed_connection_is_quiet() {
        for errno in ["EPIPE: Broken pipe", "ECONNRESET: Connection reset by peer"] {
            let msg = format!("write_message got Socket(\"Nix error: {errno}\")");
            assert!(is_quiet(Level::Error, SERVER, &msg), "{msg}");
        }
    }

    #[test]
    fn other_errors_stay_errors() {
        let epipe = "write_message got Socket(\"Nix error: EPIPE: Broken pipe\")";
        // Another write error, another message of the crate, another crate.
        let other = "write_message got Socket(\"Nix error: EBADF: Bad file number\")";
        assert!(!is_quiet(Level::Error, SERVER, other));
        assert!(!is_quiet(Level::Error, SERVER, "listener accept got EPIPE"));
        assert!(!is_quiet(
            Level::Error,
            "containerd_shim_youki::service",
            epipe
        ));
        // Already below error: left as it is.
        assert!(!is_quiet(Level::Warn, SERVER, epipe));
    }

    #[test]
    fn level_follows_the_debug_flag_and_rust_log() {
        assert_eq!(max_level(false, None), LevelFilter::Info);
        assert_eq!(max_level(true, None), LevelFilter::Debug);
        assert_eq!(max_level(false, Some("warn")), LevelFilter::Warn);
        assert_eq!(max_level(true, Some("warn")), LevelFilter::Debug);
        assert_eq!(max_level(true, Some("trace")), LevelFilter::Trace);
        assert_eq!(max_level(false, Some("nonsense")), LevelFilter::Info);
    }
}
