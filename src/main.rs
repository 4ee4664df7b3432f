//! `youki`: an OCI container runtime command line with runc's commands and flags.

// No unsafe code here: the kernel calls that need it live in runtime-core (issue 20).
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod foreground;
mod logger;
mod rootless;
mod run;

use clap::Parser;

/// The commit `--version` names: `YOUKI_COMMIT` at build time (what runc's Makefile
/// passes as its commit: `git describe --dirty --long --always`), else the package version,
/// as Debian builds runc from a source tarball with its package version as the commit.
const COMMIT: &str = match option_env!("YOUKI_COMMIT") {
    Some(c) => c,
    None => env!("CARGO_PKG_VERSION"),
};

/// What `--version` prints: runc's three lines (`runc version X`, `commit: Y`, `spec: Z`)
/// under our name. Docker's `docker info` reads them (moby daemon/info_unix.go,
/// parseRuntimeVersion: the version from the line holding "version", the commit from the
/// line starting "commit:", shown as the runtime's version; N/A without one).
fn version_text() -> String {
    format!(
        "youki version {}\ncommit: {COMMIT}\nspec: {}",
        env!("CARGO_PKG_VERSION"),
        runtime_core::features::OCI_VERSION_MAX
    )
}

fn main() {
    let cli = cli::Cli::parse();
    if cli.version {
        println!("{}", version_text());
        return;
    }
    if let Err(e) = logger::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        eprintln!("{e:#}");
        std::process::exit(1);
    }
    let log_to_file = cli.log.is_some();
    match commands::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let text = error_text(&e);
            // Once on stderr, plain, for people; with --log also as runc's log line there,
            // which containerd's runc shim and podman read. Without --log the log is stderr,
            // where the line would say it a second time.
            if log_to_file {
                log::error!("{text}");
                log::logger().flush();
            }
            eprintln!("youki: {text}");
            std::process::exit(1);
        }
    }
}

/// The error and its causes joined by ": ", as anyhow's `{:#}` does, but leaving out a cause
/// whose text the message holds already: the error types of runtime-core put their cause in
/// their own message (so that Display alone, which the shim and the logs use, is complete)
/// and also return it from `source()`, which `{:#}` would print a second time.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Like runtime-core's errors: the cause in the message and from `source()`.
    #[derive(Debug)]
    struct Wrapping {
        path: &'static str,
        source: std::io::Error,
    }

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading {}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn causes_already_in_the_message_are_not_repeated() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = anyhow::Error::new(Wrapping {
            path: "/x",
            source: io,
        })
        .context("create c1");
        assert_eq!(
            error_text(&e),
            "create c1: reading /x: No such file or directory (os error 2)"
        );
        assert_eq!(format!("{e:#}").matches("No such file").count(), 2);
    }

    #[test]
    fn causes_not_in_the_message_are_kept() {
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&e), "outer: inner");
    }
}
