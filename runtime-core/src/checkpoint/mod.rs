//! Checkpoint and restore of a running container with CRIU, as runc does them: CRIU is
//! driven through its RPC interface (`swrk`, `proto`) and told what of the container
//! comes from outside it (`external`). A restored container is a container of this
//! runtime like any other: its state is stored, it runs in its own cgroup, and `state`,
//! `kill` and `delete` work on it.

mod external;
mod proto;
mod swrk;

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::{self, CgroupError};
use crate::container::{self, Container, ContainerError};
use crate::hooks::{self, HookError};
use crate::rootfs::{self, RootfsError};
use crate::spec::{self, SpecError};
use crate::state::{self, Entry, State, StateError, Status, Store};
use crate::syscall::{LinuxSyscall, Syscall, SyscallError};
use proto::{CriuOpts, CriuReq, Features, ReqType};
use swrk::{Notify, Swrk};

pub(crate) use external::DESCRIPTORS;
pub use proto::CgMode;

/// CRIU's log verbosity: 4 is everything, which the error excerpts need.
const LOG_LEVEL: i32 = 4;
/// In the state directory during a restore: the rootfs bound on a mount point of its own,
/// since CRIU wants its root to be one, with a parent that is not overmounted.
const CRIU_ROOT: &str = "criu-root";
/// In the state directory during a restore: the copy of the rootfs mount on which the
/// mount points are made (see [`rootfs::create_mountpoints`]).
const MOUNTPOINTS_COPY: &str = "mountpoints";
/// The CRIU configuration file used unless the `org.criu.config` annotation names another
/// (or, empty, none): runc's, so that what an administrator set there for the OCI runtime
/// applies to this drop-in too. CRIU skips a file that does not exist.
const DEFAULT_CRIU_CONFIG: &str = "/etc/criu/runc.conf";
/// The annotation naming a container's own CRIU configuration file (runc's).
const CRIU_CONFIG_ANNOTATION: &str = "org.criu.config";
/// How many of the log's error lines a failure quotes.
const LOG_EXCERPT_LINES: usize = 5;

/// Errors of checkpoint and restore, naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The CRIU binary could not be started (or waited for).
    #[error("criu {}: {source} (install CRIU, or name its binary with --criu)", .criu.display())]
    CriuStart {
        /// The binary.
        criu: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// CRIU exited before answering, or failed after it answered.
    #[error("criu {} exited unexpectedly ({status}){}", .criu.display(), .log.as_ref().map(|l| format!(": {l}")).unwrap_or_default())]
    CriuExited {
        /// The binary.
        criu: PathBuf,
        /// How it ended.
        status: String,
        /// Its log.
        log: Option<CriuLog>,
    },
    /// CRIU answered that the request failed. The message leads with the log's last error
    /// lines: CRIU's own message is its first error, which is often harmless (without
    /// CAP_SYS_RESOURCE, "rlimit: Can't setup RLIMIT_NOFILE for self") while the cause
    /// comes later.
    #[error("criu {what} failed{}", failure_text(.errno, .message, .log))]
    CriuFailed {
        /// The request.
        what: ReqType,
        /// CRIU's errno.
        errno: Option<i32>,
        /// CRIU's message: the first error it logged.
        message: Option<String>,
        /// Its log.
        log: Option<CriuLog>,
    },
    /// CRIU lacks a feature an option needs.
    #[error("{option} needs CRIU's {feature} support, which this CRIU or kernel lacks")]
    MissingFeature {
        /// The option asked for.
        option: &'static str,
        /// The feature.
        feature: &'static str,
    },
    /// The socket to CRIU failed.
    #[error("{step}: {errno}")]
    Socket {
        /// What was being done.
        step: &'static str,
        /// The error.
        errno: nix::errno::Errno,
    },
    /// CRIU sent something that is not its protocol.
    #[error("criu: {0}")]
    Protocol(String),
    /// A file or directory of the checkpoint (images, work directory, descriptors.json).
    #[error("{}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// descriptors.json is not what a checkpoint writes.
    #[error("{}: {why}", .path.display())]
    BadImage {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// An option or a container that cannot be checkpointed or restored.
    #[error("{0}")]
    Unsupported(String),
    /// The container is in the wrong state, or its own operations failed.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The bundle is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The cgroup could not be set up.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A prestart or createRuntime hook failed during restore.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// A mount or another call failed.
    #[error(transparent)]
    Syscall(#[from] SyscallError),
    /// The pty master could not be received or passed on.
    #[error(transparent)]
    Tty(#[from] crate::tty::TtyError),
    /// The mount points CRIU restores the mounts onto could not be made in the rootfs.
    #[error("make the mount points in {} for the restore: {source}", .rootfs.display())]
    Mountpoints {
        /// The rootfs.
        rootfs: PathBuf,
        /// The error.
        source: RootfsError,
    },
}

/// CRIU's log of a request that failed: where it is, and its last error lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriuLog {
    /// The log file.
    pub path: PathBuf,
    /// Its last `LOG_EXCERPT_LINES` error lines, in order, without their time stamps.
    pub errors: Vec<String>,
}

impl CriuLog {
    /// Reads the error lines of `dir`/`file` (none if it cannot be read).
    fn read(dir: &Path, file: &str) -> Self {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let errors: Vec<String> = text
            .lines()
            .filter_map(|l| l.find("Error").map(|at| l[at..].trim().to_string()))
            .collect();
        let tail = errors.len().saturating_sub(LOG_EXCERPT_LINES);
        CriuLog {
            path,
            errors: errors[tail..].to_vec(),
        }
    }
}

impl std::fmt::Display for CriuLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.errors.is_empty() {
            write!(f, "{}; ", self.errors.join(" | "))?;
        }
        write!(f, "see {}", self.path.display())
    }
}

/// What follows "criu X failed": the log's last errors but CRIU's message (its first
/// error), and the log's path, then that message; only the message when the log has no
/// other error. The errno last.
fn failure_text(errno: &Option<i32>, message: &Option<String>, log: &Option<CriuLog>) -> String {
    let message = message.as_deref().map(str::trim).filter(|m| !m.is_empty());
    let errors: Vec<&str> = log
        .iter()
        .flat_map(|l| &l.errors)
        .map(String::as_str)
        .filter(|e| Some(*e) != message)
        .collect();
    let mut parts: Vec<String> = vec![];
    if errors.is_empty() {
        parts.extend(message.map(str::to_string));
    } else {
        parts.push(errors.join(" | "));
    }
    parts.extend(log.iter().map(|l| format!("see {}", l.path.display())));
    if !errors.is_empty() {
        parts.extend(message.map(|m| format!("CRIU's first error: {m}")));
    }
    let lead = if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    };
    lead + &errno_text(errno)
}

fn errno_text(errno: &Option<i32>) -> String {
    match errno {
        Some(e) if *e != 0 => format!(" ({})", nix::errno::Errno::from_raw(*e)),
        _ => String::new(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// CRIU options shared by checkpoint and restore (runc's flags of the same names).
#[derive(Debug, Clone, Default)]
pub struct CriuFlags {
    /// The CRIU binary (`criu` on PATH by default).
    pub criu: PathBuf,
    /// Directory of the images.
    pub image_path: PathBuf,
    /// Directory for CRIU's logs and temporary files (default: the images directory).
    pub work_path: Option<PathBuf>,
    /// Established TCP connections.
    pub tcp_established: bool,
    /// Unix sockets connected to peers outside the container.
    pub ext_unix_sk: bool,
    /// The container is a shell job (its session or process group leads outside).
    pub shell_job: bool,
    /// File locks.
    pub file_locks: bool,
    /// How CRIU handles cgroups.
    pub manage_cgroups_mode: CgMode,
    /// Namespaces (CLONE_NEW* mask) created but not restored. The network namespace
    /// always is, as runc does: the runtime does not manage network devices.
    pub empty_ns: u32,
    /// Deduplicate memory pages against the parent images.
    pub auto_dedup: bool,
}

/// What `checkpoint` does besides the shared flags.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    /// The shared flags.
    pub criu: CriuFlags,
    /// Leave the container running after the dump.
    pub leave_running: bool,
    /// Only pre-dump memory; the container keeps running.
    pub pre_dump: bool,
    /// The previous (pre-)dump's images, relative to the image path.
    pub parent_path: Option<PathBuf>,
}

/// What `restore` needs besides the store.
#[derive(Debug, Default)]
pub struct RestoreOptions {
    /// The shared flags.
    pub criu: CriuFlags,
    /// The new container's id.
    pub id: String,
    /// Its bundle.
    pub bundle: PathBuf,
    /// Where to write the restored init's pid.
    pub pid_file: Option<PathBuf>,
    /// A connected console socket, for a container with a terminal.
    pub console: Option<OwnedFd>,
    /// The cgroup driver of the new container.
    pub cgroup_driver: cgroups::Driver,
}

/// Checkpoints a running (or paused) container into `opts.criu.image_path`. Unless it
/// leaves the container running (`leave_running`, `pre_dump`), the container is deleted
/// after a successful dump, as runc does. A failed dump leaves the container running and
/// no images written (the log stays, for the error it names).
pub fn checkpoint(
    store: &Store,
    id: &str,
    opts: &CheckpointOptions,
) -> Result<(), CheckpointError> {
    let c = Container::load(store, id)?;
    c.require(
        &[Status::Running, Status::Paused],
        "only a running or paused container can be checkpointed",
    )?;
    let st = c.state();
    let spec::Bundle { spec, rootfs, .. } = spec::open_bundle(&st.bundle)?;

    let images = &opts.criu.image_path;
    let made_images = !images.exists();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(images)
        .map_err(io_err(images))?;
    if let Err(e) = dump(st, c.cgroup()?, &spec, &rootfs, opts) {
        if made_images {
            remove_images(images);
        }
        return Err(e);
    }
    if !opts.leave_running && !opts.pre_dump {
        // CRIU killed the processes: what is left is the container's cgroup and state. The
        // checkpoint is done whatever happens to them: a failure is a warning, as in runc.
        if let Err(e) = c.delete(true) {
            log::warn!("deleting {id} after its checkpoint: {e}");
        }
    }
    Ok(())
}

/// The dump (or pre-dump) of the container `st` into the images directory, which exists.
fn dump(
    st: &State,
    cgroup: &dyn cgroups::CgroupManager,
    spec: &Spec,
    rootfs: &Path,
    opts: &CheckpointOptions,
) -> Result<(), CheckpointError> {
    let c = &opts.criu;
    let images = &c.image_path;
    let parent_img = parent_image(images, opts.parent_path.as_deref())?;
    let images_dir = open_dir(images)?;
    let work_dir = c.work_path.as_deref().map(make_and_open_dir).transpose()?;

    let cgroup_mounts = cgroup.mounts();
    let mounts = external::mounts(spec, rootfs, &cgroup_mounts);
    let mut criu_opts = CriuOpts {
        images_dir_fd: images_dir.as_raw_fd(),
        pid: Some(st.pid),
        leave_running: opts.leave_running,
        log_file: Some("dump.log".into()),
        root: Some(rootfs.display().to_string()),
        parent_img: parent_img.clone(),
        track_mem: parent_img.is_some(),
        work_dir_fd: work_dir.as_ref().map(|d| d.as_raw_fd()),
        ext_mnt: external::dump_pairs(spec, &mounts, st.pid),
        freeze_cgroup: freezer_dir(&cgroup_mounts),
        ..common_opts(c, &st.annotations)
    };
    for (kind, path) in external::joined_namespaces(spec) {
        if let Some(key) = external::ns_key(kind) {
            let ino = std::fs::metadata(&path).map_err(io_err(&path))?;
            criu_opts.external.push(format!(
                "{}[{}]:{key}",
                external::ns_name(kind),
                std::os::unix::fs::MetadataExt::ino(&ino)
            ));
        }
    }
    let kind = if opts.pre_dump {
        require_feature(
            &c.criu,
            Features {
                mem_track: Some(true),
                lazy_pages: None,
            },
            "--pre-dump",
            "memory tracking",
        )?;
        criu_opts.track_mem = true;
        ReqType::PreDump
    } else {
        write_descriptors(&images.join(DESCRIPTORS), st.pid)?;
        ReqType::Dump
    };

    let log_dir = c.work_path.as_deref().unwrap_or(images);
    run_criu(&c.criu, CriuReq::new(kind, criu_opts), log_dir)
}

/// Restores a container from the images in `opts.criu.image_path` as `opts.id`, with the
/// bundle's config. The restored init is our child (CRIU restores it as its sibling);
/// returns the new container.
pub fn restore(store: &Store, opts: &RestoreOptions) -> Result<Container, CheckpointError> {
    state::validate_id(&opts.id)?;
    let c = &opts.criu;
    // Everything about the images and the bundle is checked before anything is created.
    let images_dir = open_dir(&c.image_path)?;
    let descriptors = read_descriptors(&c.image_path.join(DESCRIPTORS))?;
    let spec::Bundle {
        path: bundle,
        spec,
        rootfs,
    } = spec::open_bundle(&opts.bundle)?;
    let joined = external::joined_namespaces(&spec);
    if joined.iter().any(|(k, _)| *k == LinuxNamespaceType::Cgroup) {
        return Err(CheckpointError::Unsupported(
            "restore cannot join a cgroup namespace by path (CRIU cannot)".into(),
        ));
    }
    let work_dir = c.work_path.as_deref().map(make_and_open_dir).transpose()?;
    let (cgroup_path, cgroup) = cgroups::for_new_container(&spec, &opts.id, opts.cgroup_driver)?;

    let entry = store.create(&opts.id)?;
    let mut st = State::creating(&opts.id, &bundle, &spec, cgroup_path);
    let prepared = Prepared {
        spec: &spec,
        rootfs,
        images_dir,
        work_dir,
        descriptors,
        joined,
        cgroup,
    };
    match restore_into(&entry, &mut st, &prepared, opts) {
        Ok(()) => Ok(Container::made(store, st, prepared.cgroup)),
        Err(e) => {
            // As after a failed create: whatever was restored is killed, the cgroup and
            // state go (the rootfs bind went already).
            drop(entry);
            if let Err(de) = container::delete(store, &opts.id, true) {
                log::warn!("cleaning up after failed restore: {de}");
            }
            Err(e)
        }
    }
}

/// What restore checked and opened before it created the container.
struct Prepared<'a> {
    spec: &'a Spec,
    rootfs: PathBuf,
    images_dir: OwnedFd,
    work_dir: Option<OwnedFd>,
    descriptors: Vec<String>,
    joined: Vec<(LinuxNamespaceType, PathBuf)>,
    cgroup: Box<dyn cgroups::CgroupManager>,
}

/// The restore proper, once the container's state directory exists: its cgroup, the
/// rootfs's mount points, CRIU's root, the CRIU session, then the state with the restored
/// init.
fn restore_into(
    entry: &Entry,
    st: &mut State,
    p: &Prepared<'_>,
    opts: &RestoreOptions,
) -> Result<(), CheckpointError> {
    // Saved before anything runs, so that `delete` finds the cgroup to clean up.
    entry.save(st)?;
    let linux = p.spec.linux().as_ref();
    // With the device rules a create gives (the defaults CRIU needs too: /dev/null).
    p.cgroup.create(Some(&cgroups::with_default_rules(
        linux.and_then(|l| l.resources().as_ref()),
        linux
            .and_then(|l| l.devices().as_deref())
            .unwrap_or_default(),
    )))?;
    // A rootfs made anew for the restore lacks the mount points create made; before the
    // external mounts are looked up, so that they resolve as at the dump.
    rootfs::create_mountpoints(
        &LinuxSyscall,
        p.spec,
        &p.rootfs,
        &entry.dir().join(MOUNTPOINTS_COPY),
    )
    .map_err(|source| CheckpointError::Mountpoints {
        rootfs: p.rootfs.clone(),
        source,
    })?;
    let mounts = external::mounts(p.spec, &p.rootfs, &p.cgroup.mounts());
    let mut criu_opts = CriuOpts {
        images_dir_fd: p.images_dir.as_raw_fd(),
        evasive_devices: true,
        log_file: Some("restore.log".into()),
        rst_sibling: true,
        work_dir_fd: p.work_dir.as_ref().map(|d| d.as_raw_fd()),
        ext_mnt: external::restore_pairs(p.spec, &mounts),
        ..common_opts(&opts.criu, &st.annotations)
    };
    // Our stdio stands for every pipe the init had (runc does the same): CRIU connects
    // the restored descriptor to ours at the same number.
    for (fd, what) in p.descriptors.iter().enumerate() {
        if what.contains("pipe:") {
            criu_opts.inherit_fd.push((what.clone(), fd as i32));
        }
    }
    // Namespaces joined by path: net and pid were dumped as external, and are handed
    // over as descriptors; the others are joined.
    let mut ns_files = vec![];
    for (kind, path) in &p.joined {
        match external::ns_key(*kind) {
            Some(key) => {
                let fd = open_for_criu(path)?;
                criu_opts.inherit_fd.push((key.to_string(), fd.as_raw_fd()));
                ns_files.push(fd);
            }
            None => criu_opts.join_ns.push((
                external::ns_name(*kind).to_string(),
                path.display().to_string(),
            )),
        }
    }
    let root = CriuRoot::bind(&entry.dir().join(CRIU_ROOT), &p.rootfs)?;
    criu_opts.root = Some(root.path.display().to_string());
    let restored = run_restore(criu_opts, p.cgroup.as_ref(), st, opts);
    drop(ns_files);
    root.release()?;
    let pid = restored?;
    st.pid = pid;
    st.init_start_time = state::proc_stat(pid).map(|s| s.start_time).ok_or_else(|| {
        CheckpointError::Unsupported(format!("restored init {pid} exited at once"))
    })?;
    st.status = Status::Running;
    entry.save(st)?;
    if let Some(path) = &opts.pid_file {
        container::write_pid_file(path, nix::unistd::Pid::from_raw(pid))?;
    }
    Ok(())
}

/// The CRIU session of a restore: CRIU moved into the container's cgroup first (the tree
/// it forks lands there), its callbacks answered. Returns the restored init's pid.
fn run_restore(
    mut criu_opts: CriuOpts,
    cgroup: &dyn cgroups::CgroupManager,
    st: &State,
    opts: &RestoreOptions,
) -> Result<i32, CheckpointError> {
    let c = &opts.criu;
    let hooks = st.hooks.clone().unwrap_or_default();
    let mut restored_pid = None;
    let mut swrk = Swrk::start(&c.criu)?;
    let criu_pid = swrk.pid();
    let outcome = cgroup
        .add_task(nix::unistd::Pid::from_raw(criu_pid))
        .map_err(CheckpointError::from)
        .and_then(|()| {
            criu_opts.cg_root = cgroup_roots(criu_pid)?;
            let req = CriuReq::new(ReqType::Restore, criu_opts);
            swrk.request(&req, &mut |n: Notify<'_>| match n.script {
                // The namespaces exist, nothing runs yet: where create runs them.
                "setup-namespaces" => {
                    let mut s = st.clone();
                    s.pid = n.pid.unwrap_or(0);
                    let json =
                        serde_json::to_vec(&s.oci_json(Status::Creating)).unwrap_or_default();
                    hooks::run(hooks.prestart().as_deref().unwrap_or_default(), &json)?;
                    hooks::run(hooks.create_runtime().as_deref().unwrap_or_default(), &json)?;
                    Ok(())
                }
                "post-restore" => {
                    restored_pid = n.pid;
                    Ok(())
                }
                swrk::ORPHAN_PTS_MASTER => {
                    let (Some(console), Some(master)) = (&opts.console, n.fd) else {
                        return Err(CheckpointError::Unsupported(
                            "the restored container has a terminal: a --console-socket is needed to receive it".into(),
                        ));
                    };
                    Ok(crate::tty::send_master(console.as_fd(), master.as_fd())?)
                }
                _ => Ok(()),
            })
        });
    let finished = swrk.finish(ReqType::Restore);
    let log_dir = c.work_path.as_deref().unwrap_or(&c.image_path);
    let resp = outcome.map_err(|e| with_log(e, log_dir, "restore.log"))?;
    finished.map_err(|e| with_log(e, log_dir, "restore.log"))?;
    restored_pid
        .or(resp.restored_pid)
        .ok_or_else(|| CheckpointError::Protocol("restore succeeded but named no pid".into()))
}

/// The options a dump and a restore share.
fn common_opts(c: &CriuFlags, annotations: &std::collections::HashMap<String, String>) -> CriuOpts {
    let config_file = match annotations.get(CRIU_CONFIG_ANNOTATION) {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(f.clone()),
        None => Some(DEFAULT_CRIU_CONFIG.to_string()),
    };
    CriuOpts {
        ext_unix_sk: c.ext_unix_sk,
        tcp_established: c.tcp_established,
        shell_job: c.shell_job,
        file_locks: c.file_locks,
        log_level: Some(LOG_LEVEL),
        notify_scripts: true,
        auto_dedup: c.auto_dedup,
        manage_cgroups: true,
        manage_cgroups_mode: Some(c.manage_cgroups_mode),
        empty_ns: Some(c.empty_ns | libc::CLONE_NEWNET as u32),
        orphan_pts_master: true,
        config_file,
        ..CriuOpts::default()
    }
}

/// Runs one request in a new `criu swrk` and waits for CRIU to exit; a failure quotes the
/// log's last error lines.
fn run_criu(criu: &Path, req: CriuReq, log_dir: &Path) -> Result<(), CheckpointError> {
    let mut swrk = Swrk::start(criu)?;
    // A dump's callbacks (network lock and unlock, post-dump) need nothing of a runtime
    // that manages no network devices: answered only.
    let outcome = swrk.request(&req, &mut |_| Ok(()));
    let finished = swrk.finish(req.kind);
    let log = req
        .opts
        .as_ref()
        .and_then(|o| o.log_file.clone())
        .unwrap_or_default();
    outcome.map_err(|e| with_log(e, log_dir, &log))?;
    finished.map_err(|e| with_log(e, log_dir, &log))
}

/// Asks CRIU whether it supports `wanted`; an option that needs it is refused if not.
fn require_feature(
    criu: &Path,
    wanted: Features,
    option: &'static str,
    feature: &'static str,
) -> Result<(), CheckpointError> {
    let mut swrk = Swrk::start(criu)?;
    let outcome = swrk.request(&CriuReq::feature_check(wanted), &mut |_| Ok(()));
    let finished = swrk.finish(ReqType::FeatureCheck);
    // CRIU's answer says more than its exit status: it is the error when both failed.
    let got = outcome?.features.unwrap_or_default();
    finished?;
    let missing = (wanted.mem_track == Some(true) && got.mem_track != Some(true))
        || (wanted.lazy_pages == Some(true) && got.lazy_pages != Some(true));
    if missing {
        return Err(CheckpointError::MissingFeature { option, feature });
    }
    Ok(())
}

/// Adds the log's location and its last error lines to a CRIU failure: a failed request,
/// or a CRIU that died or failed without one.
fn with_log(e: CheckpointError, dir: &Path, file: &str) -> CheckpointError {
    match e {
        CheckpointError::CriuFailed {
            what,
            errno,
            message,
            log: None,
        } => CheckpointError::CriuFailed {
            what,
            errno,
            message,
            log: Some(CriuLog::read(dir, file)),
        },
        CheckpointError::CriuExited {
            criu,
            status,
            log: None,
        } => CheckpointError::CriuExited {
            criu,
            status,
            log: Some(CriuLog::read(dir, file)),
        },
        e => e,
    }
}

/// The freezer cgroup directory CRIU freezes the container with instead of ptrace: v1's
/// freezer hierarchy, or the v2 directory itself.
fn freezer_dir(mounts: &[cgroups::CgroupMount]) -> Option<String> {
    let dir = match mounts.iter().find(|m| m.name == "freezer") {
        Some(m) => Some(m),
        None if mounts.iter().all(|m| m.name.is_empty()) => mounts.first(),
        None => None,
    };
    dir.map(|m| m.source.display().to_string())
}

/// `cg_root` for every hierarchy `pid` is in, from /proc/PID/cgroup: the restored tree's
/// cgroups are made under the container's (runc's criuApplyCgroups).
fn cgroup_roots(pid: i32) -> Result<Vec<(Option<String>, String)>, CheckpointError> {
    let path = PathBuf::from(format!("/proc/{pid}/cgroup"));
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    Ok(parse_cgroup_roots(&text))
}

fn parse_cgroup_roots(text: &str) -> Vec<(Option<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
            let ctrl = (!ctrl.is_empty()).then(|| ctrl.to_string());
            Some((ctrl, path.to_string()))
        })
        .collect()
}

/// `--parent-path`: relative to the images directory, an existing directory there.
fn parent_image(images: &Path, parent: Option<&Path>) -> Result<Option<String>, CheckpointError> {
    let Some(p) = parent else {
        return Ok(None);
    };
    if p.is_absolute() {
        return Err(CheckpointError::Unsupported(format!(
            "--parent-path {} must be relative to the image path",
            p.display()
        )));
    }
    if !images.join(p).is_dir() {
        return Err(CheckpointError::Unsupported(format!(
            "--parent-path: {} is not a directory",
            images.join(p).display()
        )));
    }
    Ok(Some(p.display().to_string()))
}

/// Writes what the init's stdio are (runc's descriptors.json), for restore to connect the
/// pipes among them again.
fn write_descriptors(path: &Path, pid: i32) -> Result<(), CheckpointError> {
    let fds: Vec<String> = (0..3)
        .map(|fd| {
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        })
        .collect();
    write_private(path, &serde_json::to_vec(&fds).unwrap_or_default())
}

/// The init's stdio as [`checkpoint`] wrote it.
fn read_descriptors(path: &Path) -> Result<Vec<String>, CheckpointError> {
    let text = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            source.kind(),
            format!("{source} (not the image path of a checkpoint?)"),
        ),
    })?;
    serde_json::from_slice(&text).map_err(|e| CheckpointError::BadImage {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

fn open_dir(path: &Path) -> Result<OwnedFd, CheckpointError> {
    let fd = open_for_criu(path)?;
    if !nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR) {
        return Err(CheckpointError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
        });
    }
    Ok(fd)
}

/// Opens `path` for CRIU, which gets the descriptor at the same number (see
/// [`Swrk::start`]).
fn open_for_criu(path: &Path) -> Result<OwnedFd, CheckpointError> {
    let fd: OwnedFd = File::open(path).map_err(io_err(path))?.into();
    swrk::keep_on_exec(&fd).map_err(|errno| CheckpointError::Io {
        path: path.to_path_buf(),
        source: errno.into(),
    })?;
    Ok(fd)
}

fn make_and_open_dir(path: &Path) -> Result<OwnedFd, CheckpointError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err(path))?;
    open_dir(path)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(io_err(path))
}

/// What a failed checkpoint wrote into the images directory it made: the images and
/// descriptors.json go, and so does the directory unless CRIU's log is there (it stays for
/// the error that names it).
fn remove_images(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".img") || name == DESCRIPTORS {
            let _ = std::fs::remove_file(e.path());
        }
    }
    // Only an empty directory goes: what else is there is not ours to remove.
    let _ = std::fs::remove_dir(dir);
}

/// The rootfs bound at a mount point of its own for CRIU's root, detached when released
/// (also when dropped): it must never outlive the restore, since removing the state
/// directory through it would remove the rootfs.
struct CriuRoot {
    path: PathBuf,
    mounted: bool,
}

impl CriuRoot {
    fn bind(path: &Path, rootfs: &Path) -> Result<Self, CheckpointError> {
        std::fs::create_dir(path).map_err(io_err(path))?;
        let mut root = CriuRoot {
            path: path.to_path_buf(),
            mounted: false,
        };
        LinuxSyscall.mount(
            Some(rootfs),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        root.mounted = true;
        Ok(root)
    }

    fn release(mut self) -> Result<(), CheckpointError> {
        self.detach()
    }

    fn detach(&mut self) -> Result<(), CheckpointError> {
        if self.mounted {
            LinuxSyscall.umount2(&self.path, MntFlags::MNT_DETACH)?;
            self.mounted = false;
        }
        std::fs::remove_dir(&self.path).map_err(io_err(&self.path))
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        if self.mounted || self.path.exists() {
            if let Err(e) = self.detach() {
                log::warn!("detaching {}: {e}", self.path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_roots_of_a_hybrid_host() {
        let text = "9:name=systemd:/c\n4:memory:/c\n2:cpu,cpuacct:/c\n0::/c\n";
        assert_eq!(
            parse_cgroup_roots(text),
            [
                (Some("name=systemd".into()), "/c".into()),
                (Some("memory".into()), "/c".into()),
                (Some("cpu,cpuacct".into()), "/c".into()),
                (None, "/c".into()),
            ]
        );
    }

    #[test]
    fn freezer_of_v1_and_v2() {
        let m = |name: &str, source: &str| cgroups::CgroupMount {
            name: name.into(),
            source: source.into(),
        };
        let v1 = [m("memory", "/m/c"), m("freezer", "/f/c"), m("", "/u/c")];
        assert_eq!(freezer_dir(&v1).as_deref(), Some("/f/c"));
        assert_eq!(
            freezer_dir(&[m("", "/sys/fs/cgroup/c")]).as_deref(),
            Some("/sys/fs/cgroup/c")
        );
        assert_eq!(freezer_dir(&[m("memory", "/m/c")]), None);
    }

    #[test]
    fn the_network_namespace_is_always_left_empty_and_config_follows_the_annotation() {
        let mut ann = std::collections::HashMap::new();
        let o = common_opts(&CriuFlags::default(), &ann);
        assert_eq!(o.empty_ns, Some(libc::CLONE_NEWNET as u32));
        assert_eq!(o.config_file.as_deref(), Some(DEFAULT_CRIU_CONFIG));
        ann.insert(CRIU_CONFIG_ANNOTATION.to_string(), String::new());
        assert_eq!(common_opts(&CriuFlags::default(), &ann).config_file, None);
        ann.insert(CRIU_CONFIG_ANNOTATION.to_string(), "/x.conf".into());
        assert_eq!(
            common_opts(&CriuFlags::default(), &ann)
                .config_file
                .as_deref(),
            Some("/x.conf")
        );
    }

    #[test]
    fn a_failure_names_the_log_and_quotes_its_last_errors() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (1..=7)
            .map(|n| format!("(0.1) Error (x.c:{n}): e{n}"))
            .collect();
        std::fs::write(dir.path().join("dump.log"), lines.join("\ninfo\n")).unwrap();
        let exited = CheckpointError::CriuExited {
            criu: "criu".into(),
            status: "signal: 9".into(),
            log: None,
        };
        let text = with_log(exited, dir.path(), "dump.log").to_string();
        let last: Vec<String> = (3..=7).map(|n| format!("Error (x.c:{n}): e{n}")).collect();
        let log = dir.path().join("dump.log");
        assert_eq!(
            text,
            format!(
                "criu criu exited unexpectedly (signal: 9): {}; see {}",
                last.join(" | "),
                log.display()
            ),
            "the last 5 error lines only, without time stamps"
        );
        let failed = CheckpointError::CriuFailed {
            what: ReqType::Dump,
            errno: Some(libc::EPERM),
            message: Some("m\n".into()),
            log: None,
        };
        let text = with_log(failed, dir.path(), "none.log").to_string();
        let none = dir.path().join("none.log");
        assert_eq!(
            text,
            format!(
                "criu dump failed: m; see {} (EPERM: Operation not permitted)",
                none.display()
            ),
            "no errors to quote: CRIU's message leads"
        );
    }

    /// As CRIU 4.2 logs a restore onto a rootfs without a mount point here: its first error
    /// (its message) is harmless, the cause comes later.
    #[test]
    fn a_failure_leads_with_the_logs_last_errors_not_criu_s_first() {
        let dir = tempfile::tempdir().unwrap();
        let rlimit =
            "Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted";
        let cause = "Error (criu/mount-v2.c:634): mnt-v2: Can't stat mountpoint /tmp/.criu.mntns.Bs4X8U/mnt-0000000067/etc/hosts: No such file or directory";
        let failed = "Error (criu/cr-restore.c:2331): Restoring FAILED.";
        let cgroupd =
            "Error (criu/cgroup.c:2055): cg: cgroupd: recv req error: No such file or directory";
        let log = format!(
            "(00.000001) Version: 4.2.1\n(00.056205) {rlimit}\n(00.060000) info\n\
             (00.079663)      1: {cause}\n(00.082777) {failed}\n(00.084573) {cgroupd}\n"
        );
        std::fs::write(dir.path().join("restore.log"), log).unwrap();
        let path = dir.path().join("restore.log");
        let e = || CheckpointError::CriuFailed {
            what: ReqType::Restore,
            errno: Some(libc::EPERM),
            message: Some(format!("{rlimit}\n")),
            log: None,
        };
        let text = with_log(e(), dir.path(), "restore.log").to_string();
        assert_eq!(
            text,
            format!(
                "criu restore failed: {cause} | {failed} | {cgroupd}; see {}; \
                 CRIU's first error: {rlimit} (EPERM: Operation not permitted)",
                path.display()
            )
        );
        // Without other errors, CRIU's message is the cause.
        std::fs::write(&path, format!("(00.05) {rlimit}\n")).unwrap();
        let text = with_log(e(), dir.path(), "restore.log").to_string();
        assert_eq!(
            text,
            format!(
                "criu restore failed: {rlimit}; see {} (EPERM: Operation not permitted)",
                path.display()
            )
        );
    }

    #[test]
    fn a_missing_criu_is_a_clear_error() {
        let e = Swrk::start(Path::new("/nonexistent/criu")).err().unwrap();
        let text = e.to_string();
        assert!(
            text.contains("/nonexistent/criu") && text.contains("--criu"),
            "{text}"
        );
    }
}
