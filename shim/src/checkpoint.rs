//! Checkpoint and restore of a task with CRIU (runtime-core's checkpoint module), as
//! containerd's runc shim does them with `runc checkpoint` and `runc restore`.
//!
//! - Checkpoint: containerd pauses the task, asks for a dump into a directory (its own
//!   temporary one, which it turns into a checkpoint image, or the `--image-path` given to
//!   `ctr task checkpoint`), then resumes it. containerd's runc `CheckpointOptions` say what
//!   CRIU may dump (open TCP connections, external unix sockets, a terminal, file locks) and
//!   whether the task stops (`exit`): CRIU kills it then, and its exit (SIGKILL) is reported
//!   like any other. CRIU works in `WorkPath`, or in `<bundle>/criu-work`, removed
//!   afterwards unless the dump failed: the error names the log there (runc's shim copies
//!   it to `<bundle>/criu-dump.log` instead).
//! - Restore: a Create that names a checkpoint directory (containerd extracted the image's
//!   CRIU files there). runc's shim restores at Start; this shim restores at Create, with the
//!   I/O a create gets, and Start only reports the task started: containerd (ctr, CRI)
//!   starts a restored task right after creating it. CRIU works in runc's `CriuWorkPath`, or
//!   the bundle, where runc's shim has it too.
//!
//! CRIU is `criu` on the shim's PATH (containerd's), as runc finds it.
//!
//! Both run in the zygote: CRIU is its child, and so is the restored init (CRIU restores
//! it as its own sibling), which must be the server's. The restore therefore runs in a
//! child of the zygote that exits once it is done, and init goes to the server, the
//! subreaper, as a created container's init does when runtime-core's intermediate exits.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::CheckpointOptions as RuncCheckpointOptions;
use runtime_core::cgroups::Driver;
use runtime_core::checkpoint::{self, CgMode, CheckpointError, CheckpointOptions, CriuFlags};
use runtime_core::container::Container;
use runtime_core::state::Store;
use serde::{Deserialize, Serialize};

use crate::error::{Kind, Result, ShimError};

/// The CRIU binary: found on PATH, as runc finds it.
const CRIU: &str = "criu";
/// The work directory of a dump whose request names none, in the bundle; removed after.
const DUMP_WORK_DIR: &str = "criu-work";

/// What a Checkpoint asks for, from containerd's request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dump {
    /// Where the images go.
    pub image_path: PathBuf,
    /// CRIU's work directory, if the request names one (it is kept then).
    pub work_path: Option<PathBuf>,
    /// The task stops after the dump.
    pub exit: bool,
    /// Established TCP connections may be dumped.
    pub open_tcp: bool,
    /// Unix sockets connected outside the container may be dumped.
    pub external_unix_sockets: bool,
    /// A terminal may be dumped (runc's `--shell-job`).
    pub terminal: bool,
    /// File locks may be dumped.
    pub file_locks: bool,
    /// Namespaces (CLONE_NEW* mask) created empty at restore.
    pub empty_ns: u32,
    /// CRIU's cgroup mode (runc's name of it), if the request names one.
    pub cgroups_mode: Option<String>,
}

/// Decodes a Checkpoint request: `path` and containerd's runc `CheckpointOptions` (what
/// ctr and CRI send; none means the defaults).
pub fn decode(path: &str, options: Option<&Any>) -> Result<Dump> {
    let image_path = PathBuf::from(path);
    if !image_path.is_absolute() {
        return Err(ShimError::invalid(format!(
            "checkpoint: the image path {path:?} is not absolute"
        )));
    }
    let mut dump = Dump {
        image_path,
        ..Dump::default()
    };
    let Some(any) = options.filter(|a| !a.type_url.is_empty()) else {
        return Ok(dump);
    };
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    if type_name != "containerd.runc.v1.CheckpointOptions" {
        return Err(ShimError::invalid(format!(
            "checkpoint: options of type {} (containerd.runc.v1.CheckpointOptions expected)",
            any.type_url
        )));
    }
    let o = RuncCheckpointOptions::parse_from_bytes(&any.value)
        .map_err(|e| ShimError::invalid(format!("checkpoint: decoding its options: {e}")))?;
    for ns in &o.empty_namespaces {
        // runc's --empty-ns takes only the network namespace as well.
        if ns != "network" {
            return Err(ShimError::invalid(format!(
                "checkpoint: empty namespace {ns:?}: only \"network\" can be restored empty"
            )));
        }
        dump.empty_ns |= libc::CLONE_NEWNET as u32;
    }
    if !o.cgroups_mode.is_empty() {
        if CgMode::parse(&o.cgroups_mode).is_none() {
            return Err(ShimError::invalid(format!(
                "checkpoint: cgroups mode {:?} (soft, full, strict or ignore)",
                o.cgroups_mode
            )));
        }
        dump.cgroups_mode = Some(o.cgroups_mode.clone());
    }
    dump.work_path = (!o.work_path.is_empty()).then(|| PathBuf::from(&o.work_path));
    dump.exit = o.exit;
    dump.open_tcp = o.open_tcp;
    dump.external_unix_sockets = o.external_unix_sockets;
    dump.terminal = o.terminal;
    dump.file_locks = o.file_locks;
    Ok(dump)
}

/// Dumps container `id` of `store` (its bundle `bundle`) as `d` asks. In the zygote.
pub fn dump(store: &Store, id: &str, bundle: &Path, d: &Dump) -> Result<()> {
    let work = d
        .work_path
        .clone()
        .unwrap_or_else(|| bundle.join(DUMP_WORK_DIR));
    let mut criu = CriuFlags {
        criu: CRIU.into(),
        image_path: d.image_path.clone(),
        work_path: Some(work.clone()),
        tcp_established: d.open_tcp,
        ext_unix_sk: d.external_unix_sockets,
        shell_job: d.terminal,
        file_locks: d.file_locks,
        empty_ns: d.empty_ns,
        ..CriuFlags::default()
    };
    if let Some(mode) = d.cgroups_mode.as_deref().and_then(CgMode::parse) {
        criu.manage_cgroups_mode = mode;
    }
    let opts = CheckpointOptions {
        criu,
        leave_running: !d.exit,
        ..CheckpointOptions::default()
    };
    checkpoint::checkpoint(store, id, &opts)?;
    // After a failure the directory stays, with the log the error names.
    if d.work_path.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

/// What a restore needs besides the I/O.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    /// The checkpoint's images (the Create's `checkpoint`).
    pub image_path: PathBuf,
    /// CRIU's work directory (runc's `CriuWorkPath`, or the bundle).
    pub work_path: PathBuf,
}

/// Restores container `id` of `store` from `r`, with the bundle's config, in this process
/// (a child of the zygote, which exits after: see the module's doc). `stdio` becomes this
/// process's stdio first: CRIU reconnects the restored pipes to the descriptors of the
/// same numbers. Returns the restored container.
pub fn restore(
    store: &Store,
    id: &str,
    bundle: &Path,
    r: &Restore,
    driver: Driver,
    stdio: Option<runtime_core::os::Stdio>,
    console: Option<OwnedFd>,
) -> Result<Container> {
    if let Some(s) = stdio {
        let taken = s
            .stdin
            .map_or(Ok(()), nix::unistd::dup2_stdin)
            .and(s.stdout.map_or(Ok(()), nix::unistd::dup2_stdout))
            .and(s.stderr.map_or(Ok(()), nix::unistd::dup2_stderr));
        taken
            .map_err(|e| ShimError::other(format!("restore {id}: taking the task's stdio: {e}")))?;
    }
    let opts = checkpoint::RestoreOptions {
        criu: CriuFlags {
            criu: CRIU.into(),
            image_path: r.image_path.clone(),
            work_path: Some(r.work_path.clone()),
            ..CriuFlags::default()
        },
        id: id.to_string(),
        bundle: bundle.to_path_buf(),
        console,
        cgroup_driver: driver,
        ..Default::default()
    };
    Ok(checkpoint::restore(store, &opts)?)
}

impl From<CheckpointError> for ShimError {
    fn from(e: CheckpointError) -> Self {
        // The CLI's advice (its --criu flag) does not apply here.
        if let CheckpointError::CriuStart { source, .. } = &e {
            return ShimError::new(
                Kind::FailedPrecondition,
                format!("{CRIU} (CRIU 4) on the shim's PATH, which is containerd's: {source}"),
            );
        }
        let kind = match &e {
            CheckpointError::Container(c) => Kind::from(c),
            CheckpointError::State(s) => Kind::from(s),
            CheckpointError::Spec(_) | CheckpointError::BadImage { .. } => Kind::InvalidArgument,
            CheckpointError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Kind::NotFound
            }
            CheckpointError::MissingFeature { .. } | CheckpointError::Unsupported(_) => {
                Kind::Unimplemented
            }
            _ => Kind::Unknown,
        };
        ShimError::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(value: &RuncCheckpointOptions) -> Any {
        Any {
            type_url: "containerd.runc.v1.CheckpointOptions".into(),
            value: value.write_to_bytes().unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn no_options_are_the_defaults() {
        let d = decode("/cp", None).unwrap();
        assert_eq!(
            d,
            Dump {
                image_path: "/cp".into(),
                ..Dump::default()
            }
        );
    }

    #[test]
    fn runc_checkpoint_options_are_decoded() {
        let o = RuncCheckpointOptions {
            exit: true,
            open_tcp: true,
            external_unix_sockets: true,
            terminal: true,
            file_locks: true,
            empty_namespaces: vec!["network".into()],
            cgroups_mode: "full".into(),
            work_path: "/w".into(),
            ..Default::default()
        };
        let d = decode("/cp", Some(&any(&o))).unwrap();
        assert_eq!(
            d,
            Dump {
                image_path: "/cp".into(),
                work_path: Some("/w".into()),
                exit: true,
                open_tcp: true,
                external_unix_sockets: true,
                terminal: true,
                file_locks: true,
                empty_ns: libc::CLONE_NEWNET as u32,
                cgroups_mode: Some("full".into()),
            }
        );
    }

    #[test]
    fn bad_requests_are_invalid_and_named() {
        let cases = [
            (decode("cp", None), "\"cp\""),
            (
                decode(
                    "/cp",
                    Some(&any(&RuncCheckpointOptions {
                        empty_namespaces: vec!["pid".into()],
                        ..Default::default()
                    })),
                ),
                "\"pid\"",
            ),
            (
                decode(
                    "/cp",
                    Some(&any(&RuncCheckpointOptions {
                        cgroups_mode: "half".into(),
                        ..Default::default()
                    })),
                ),
                "\"half\"",
            ),
            (
                decode(
                    "/cp",
                    Some(&Any {
                        type_url: "containerd.runc.v1.Options".into(),
                        ..Default::default()
                    }),
                ),
                "containerd.runc.v1.Options",
            ),
        ];
        for (got, named) in cases {
            let e = got.unwrap_err();
            assert_eq!(e.kind, Kind::InvalidArgument, "{e:?}");
            assert!(e.message.contains(named), "{e:?}");
        }
    }
}
