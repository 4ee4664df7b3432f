//! `checkpoint` and `restore` with runc's flags, over runtime-core's checkpoint module.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recv, MsgFlags};
use runtime_core::cgroups::Driver;
use runtime_core::checkpoint::{self, CgMode, CheckpointOptions, CriuFlags, RestoreOptions};
use runtime_core::state::Store;

use crate::foreground::Foreground;

/// Flags both commands take, as runc names them.
#[derive(Debug, clap::Args)]
pub struct SharedArgs {
    /// Directory of the CRIU images (default: ./checkpoint).
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's logs and work files (default: the image path).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow unix sockets connected outside the container.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft (default), full, strict or ignore.
    #[arg(long = "manage-cgroups-mode")]
    pub manage_cgroups_mode: Option<String>,
    /// Create a namespace but do not restore its properties (only `network`).
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images against the parent's.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Restore memory lazily with userfaultfd (not supported).
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

/// Flags of `checkpoint`. A flag given twice is taken, as runc takes it: podman 4 passes
/// `--leave-running` twice for `podman container checkpoint --leave-running`.
#[derive(Debug, clap::Args)]
#[command(args_override_self = true)]
pub struct CheckpointArgs {
    /// Container id.
    pub id: String,
    /// The shared flags.
    #[command(flatten)]
    pub shared: SharedArgs,
    /// The previous pre-dump's images, relative to the image path.
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Dump memory only; the container keeps running.
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// Skip in-flight TCP connections (not supported).
    #[arg(long = "tcp-skip-in-flight")]
    pub tcp_skip_in_flight: bool,
    /// Link unlinked files back (not supported).
    #[arg(long = "link-remap")]
    pub link_remap: bool,
    /// ADDRESS:PORT of a page server (not supported).
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
    /// Descriptor CRIU signals lazy-pages readiness on (not supported).
    #[arg(long = "status-fd", default_value_t = -1, allow_negative_numbers = true)]
    pub status_fd: i32,
}

/// Flags of `restore`. A flag given twice is taken, as runc takes any flag twice (conmon
/// appends podman's `--runtime-opt`s to flags of its own).
#[derive(Debug, clap::Args)]
#[command(args_override_self = true)]
pub struct RestoreArgs {
    /// Id of the restored container.
    pub id: String,
    /// The shared flags.
    #[command(flatten)]
    pub shared: SharedArgs,
    /// Bundle directory.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Return once restored instead of waiting for the container.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the restored init's pid to.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send a restored terminal's master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Accepted as runc takes it: the foreground wait reaps orphans either way.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Accepted as runc takes it: CRIU enters the restored root itself.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// LSM profile for the restored processes (no LSM on this runtime's hosts).
    #[arg(long = "lsm-profile")]
    pub lsm_profile: Option<String>,
    /// LSM mount context (no LSM on this runtime's hosts).
    #[arg(long = "lsm-mount-context")]
    pub lsm_mount_context: Option<String>,
}

/// `checkpoint ID`.
pub fn checkpoint(store: &Store, criu: &Path, a: &CheckpointArgs) -> Result<()> {
    let refused = [
        ("--tcp-skip-in-flight", a.tcp_skip_in_flight),
        ("--link-remap", a.link_remap),
        ("--page-server", a.page_server.is_some()),
        ("--status-fd", a.status_fd != -1),
    ];
    refuse(&refused)?;
    let opts = CheckpointOptions {
        criu: criu_flags(criu, &a.shared)?,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        parent_path: a.parent_path.clone(),
    };
    checkpoint::checkpoint(store, &a.id, &opts).with_context(|| format!("checkpoint {}", a.id))
}

/// `restore ID`: returns the exit code (0 when detached, else the container's).
pub fn restore(store: &Store, criu: &Path, driver: Driver, a: &RestoreArgs) -> Result<i32> {
    refuse(&[
        ("--lsm-profile", a.lsm_profile.is_some()),
        ("--lsm-mount-context", a.lsm_mount_context.is_some()),
    ])?;
    // Taken for runc's command lines and ignored: see the flags' docs for why no change is
    // needed here.
    let _ = (a.no_subreaper, a.no_pivot);
    let mut opts = RestoreOptions {
        criu: criu_flags(criu, &a.shared)?,
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: super::absolute_pid_file(a.pid_file.as_deref())?,
        console: super::connect_console(a.console_socket.as_deref())?,
        cgroup_driver: driver,
    };
    if a.detach {
        checkpoint::restore(store, &opts).with_context(|| format!("restore {}", a.id))?;
        return Ok(0);
    }
    // In the foreground, as `run`: the restored init is our child; a terminal without a
    // console socket is relayed to ours.
    let fg = Foreground::prepare()?;
    let mut relay_end = None;
    if opts.console.is_none() {
        let (ours, theirs) = UnixStream::pair().context("console socketpair")?;
        opts.console = Some(theirs.into());
        relay_end = Some(ours);
    }
    let c = checkpoint::restore(store, &opts).with_context(|| format!("restore {}", a.id))?;
    let code = fg.wait(c.pid(), relay_end.filter(master_sent))?;
    c.delete(true)?;
    Ok(code)
}

/// Whether a terminal master waits on our end of the relay socket: CRIU sends one during
/// the restore of a process that had a terminal, so it is there once `restore` returns.
fn master_sent(s: &UnixStream) -> bool {
    let mut buf = [0u8; 1];
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    matches!(recv(s.as_raw_fd(), &mut buf, flags), Ok(n) if n > 0)
}

fn refuse(flags: &[(&str, bool)]) -> Result<()> {
    if let Some((name, _)) = flags.iter().find(|(_, set)| *set) {
        bail!("{name} is not supported by youki");
    }
    Ok(())
}

fn criu_flags(criu: &Path, a: &SharedArgs) -> Result<CriuFlags> {
    if a.lazy_pages {
        bail!("--lazy-pages is not supported by youki (it needs CRIU's lazy-pages daemon and a page server)");
    }
    let manage_cgroups_mode = match &a.manage_cgroups_mode {
        None => CgMode::Default,
        Some(m) => CgMode::parse(m).with_context(|| {
            format!("--manage-cgroups-mode {m:?}: expected soft, full, strict or ignore")
        })?,
    };
    let mut empty_ns = 0;
    for ns in &a.empty_ns {
        match ns.as_str() {
            "network" => empty_ns |= libc::CLONE_NEWNET as u32,
            other => bail!("--empty-ns {other:?}: only network is supported"),
        }
    }
    // runc's default image path: ./checkpoint.
    let image_path = match &a.image_path {
        Some(p) => std::path::absolute(p).context("--image-path")?,
        None => std::env::current_dir()
            .context("current directory")?
            .join("checkpoint"),
    };
    Ok(CriuFlags {
        criu: criu.to_path_buf(),
        image_path,
        work_path: a
            .work_path
            .as_ref()
            .map(|p| std::path::absolute(p).context("--work-path"))
            .transpose()?,
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        manage_cgroups_mode,
        empty_ns,
        auto_dedup: a.auto_dedup,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn a_flag_given_twice_is_taken_as_podman_and_conmon_give_them() {
        // podman 4's `container checkpoint --leave-running`, verbatim but for the paths.
        let cli = Cli::try_parse_from([
            "youki",
            "checkpoint",
            "--image-path",
            "/i",
            "--work-path",
            "/w",
            "--leave-running",
            "--leave-running",
            "c1",
        ])
        .expect("parse");
        let Some(Command::Checkpoint(a)) = cli.command else {
            panic!("not a checkpoint: {:?}", cli.command);
        };
        assert!(a.leave_running);
        assert_eq!(a.shared.work_path.as_deref(), Some("/w".as_ref()));

        let cli = Cli::try_parse_from([
            "youki",
            "restore",
            "--detach",
            "--detach",
            "--pid-file",
            "/p1",
            "--pid-file",
            "/p2",
            "c1",
        ])
        .expect("parse");
        let Some(Command::Restore(a)) = cli.command else {
            panic!("not a restore: {:?}", cli.command);
        };
        assert!(a.detach);
        assert_eq!(a.pid_file.as_deref(), Some("/p2".as_ref()));
    }
}
