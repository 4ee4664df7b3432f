//! runc's command line: global flags and subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// An OCI container runtime, runc-compatible.
#[derive(Debug, Parser)]
#[command(name = "youki", disable_version_flag = true)]
pub struct Cli {
    /// Root directory for container state (default /run/youki; for an unprivileged user
    /// $XDG_RUNTIME_DIR/youki when that is set).
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Debug logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups: cgroupsPath is `slice:prefix:name` (default
    /// `system.slice:youki:<id>`), the container a transient scope.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Ignore cgroup permission errors: true, false or auto (unprivileged, or root in a
    /// user namespace). Before the command, as runc takes it: `spec` has a `--rootless`
    /// of its own.
    #[arg(long = "rootless", id = "rootless_cgroups", value_enum, default_value_t = Rootless::Auto)]
    pub rootless: Rootless,
    /// The CRIU binary for checkpoint and restore (default: `criu` on PATH).
    #[arg(long, global = true, default_value = "criu")]
    pub criu: PathBuf,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Values of `--rootless`, as runc takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Rootless {
    /// Rootless when not root, or root in a user namespace.
    Auto,
    /// Always.
    True,
    /// Never.
    False,
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
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// Freeze every process of the container.
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// List the processes of the container.
    Ps {
        /// Container id.
        id: String,
        /// Output format.
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Arguments passed to ps(1) for the table format.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print resource usage, or stream events (OOM) of the container.
    Events {
        /// Container id.
        id: String,
        /// Print the statistics once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between statistics while streaming.
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Change the resource limits of a running container.
    Update(UpdateArgs),
    /// Print the features this runtime supports, as OCI features.json.
    Features,
    /// Write a default config.json.
    Spec {
        /// Directory to write config.json into.
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for a container run by an unprivileged user.
        #[arg(long)]
        rootless: bool,
    },
    /// Checkpoint a running container with CRIU.
    Checkpoint(crate::commands::checkpoint::CheckpointArgs),
    /// Restore a container from a checkpoint.
    Restore(crate::commands::checkpoint::RestoreArgs),
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

/// Flags of `exec`, as runc has them.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Container id.
    pub id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// OCI process JSON file.
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// User as uid[:gid].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional group id (repeatable).
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Capability to add (repeatable).
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Unix socket to send the terminal master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Number of extra file descriptors to pass after stdio.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// SELinux label of the process (not supported on this host).
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile of the process (not supported on this host).
    #[arg(long)]
    pub apparmor: Option<String>,
}

/// Flags of `update`, as runc has them.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Container id.
    pub id: String,
    /// OCI LinuxResources JSON file, `-` for stdin.
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g allowed).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory reservation in bytes.
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit in bytes, -1 for unlimited.
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    /// CPU CFS quota in microseconds.
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPU realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds.
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs allowed (e.g. 0-1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Block I/O weight.
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
}
