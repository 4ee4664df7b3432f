//! runc's command line: global flags and subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// An OCI container runtime, runc-compatible.
#[derive(Debug, Parser)]
#[command(name = "youki", version = crate::VERSION_TEXT, disable_version_flag = true)]
pub struct Cli {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/youki")]
    pub root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `time="..." level=... msg="..."`
    Text,
    /// One JSON object per line, as containerd and podman read them.
    Json,
}

/// Flags shared by create and run.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// File to write the init pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Number of extra file descriptors to pass after stdio.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Do not use pivot_root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
}

/// Output format of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container; its program waits for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start {
        /// Container id.
        id: String,
    },
    /// Create and start a container, wait for it, delete it.
    Run {
        /// Shared create flags.
        #[command(flatten)]
        create: CreateArgs,
        /// Return after start instead of waiting.
        #[arg(short = 'd', long)]
        detach: bool,
        /// Keep the container after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print the container's state as JSON.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal to the container's init (or all) processes.
    Kill {
        /// Container id.
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
        /// Signal every process of the container.
        #[arg(short = 'a', long)]
        all: bool,
    },
    /// Delete a container.
    Delete {
        /// Container id.
        id: String,
        /// Kill it first if it runs.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// List containers.
    List {
        /// Output format.
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Only ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
}
