//! The `options` of CreateTaskRequest: none, runc's `containerd.runc.v1.Options`, or CRI's
//! `runtimeoptions.v1.Options` (what CRI sends for any runtime type that is not runc's).
//! What does not apply to this shim is ignored, and said once in the shim's log.
//!
//! runc's options arrive when the CRI runtime entry has `runtime_type =
//! "io.containerd.runc.v2"` and `runtime_path` naming this binary (the registration that
//! lets containerd 2.x introspect the handler, see info.rs), with the entry's `options`
//! table: SystemdCgroup, BinaryName and Root are what operators usually set there.
//! SystemdCgroup is honoured (runtime-core's systemd driver); BinaryName and Root have no
//! meaning for a shim that runs no runtime binary.

use std::path::PathBuf;
use std::sync::Mutex;

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;

use crate::error::{Result, ShimError};

/// What the shim takes from the options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskOptions {
    /// Enter the rootfs without pivot_root (runc's `NoPivotRoot`).
    pub no_pivot: bool,
    /// Owner of the stdio pipes (runc's `IoUid`/`IoGid`).
    pub io_owner: Option<(u32, u32)>,
    /// The systemd cgroup driver for every container (runc's `SystemdCgroup`); without
    /// it, a container whose cgroupsPath is in the systemd form gets it.
    pub systemd_cgroup: bool,
    /// CRIU's work directory for a restore (runc's `CriuWorkPath`); the bundle without it.
    pub criu_work_path: Option<PathBuf>,
}

/// Decodes the options of a Create request.
pub fn parse(any: Option<&Any>) -> Result<TaskOptions> {
    let Some(any) = any else {
        return Ok(TaskOptions::default());
    };
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    match type_name {
        "" => Ok(TaskOptions::default()),
        "containerd.runc.v1.Options" => {
            let o = RuncOptions::parse_from_bytes(&any.value)
                .map_err(|e| ShimError::invalid(format!("decoding {}: {e}", any.type_url)))?;
            log_ignored(&ignored(&o));
            Ok(TaskOptions {
                no_pivot: o.no_pivot_root,
                io_owner: (o.io_uid != 0 || o.io_gid != 0).then_some((o.io_uid, o.io_gid)),
                systemd_cgroup: o.systemd_cgroup,
                criu_work_path: (!o.criu_work_path.is_empty())
                    .then(|| PathBuf::from(&o.criu_work_path)),
            })
        }
        // CRI's options name a runtime config file; nothing in it applies yet.
        "runtimeoptions.v1.Options" => Ok(TaskOptions::default()),
        other => {
            log::warn!("options: ignoring unknown options type {other}");
            Ok(TaskOptions::default())
        }
    }
}

/// What runc's options ask for that this shim does not do, one phrase each. Not among
/// them: NoNewKeyring (runtime-core never creates a session keyring, which is what it
/// asks), TaskApiAddress/TaskApiVersion (containerd's own: its task service dials that
/// address instead of a shim's) and CriuImagePath (containerd's too).
fn ignored(o: &RuncOptions) -> Vec<String> {
    let mut out = Vec::new();
    if !o.binary_name.is_empty() {
        out.push(format!(
            "BinaryName={:?}: containers run in-process, no runtime binary is executed",
            o.binary_name
        ));
    }
    if !o.root.is_empty() {
        out.push(format!(
            "Root={:?}: the shim keeps its state in the bundle",
            o.root
        ));
    }
    if !o.shim_cgroup.is_empty() {
        out.push(format!(
            "ShimCgroup={:?}: the shim stays in the cgroup containerd started it in",
            o.shim_cgroup
        ));
    }
    out
}

/// The last ignore message logged: every container of a runtime handler gets the same
/// options, and one line per shim says it.
static LOGGED: Mutex<Option<String>> = Mutex::new(None);

/// Logs `ignored` as one warning, unless this shim said the same already.
fn log_ignored(ignored: &[String]) {
    if ignored.is_empty() {
        return;
    }
    let line = format!(
        "options: ignoring what does not apply to this shim: {}",
        ignored.join("; ")
    );
    let mut last = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
    if last.as_deref() != Some(line.as_str()) {
        log::warn!("{line}");
        *last = Some(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn any(type_url: &str, value: Vec<u8>) -> Any {
        Any {
            type_url: type_url.into(),
            value,
            ..Default::default()
        }
    }

    #[test]
    fn no_options() {
        assert_eq!(parse(None).unwrap(), TaskOptions::default());
        assert_eq!(
            parse(Some(&any("", vec![]))).unwrap(),
            TaskOptions::default()
        );
    }

    #[test]
    fn runc_options_apply_what_fits() {
        let o = RuncOptions {
            no_pivot_root: true,
            io_uid: 1000,
            io_gid: 1001,
            systemd_cgroup: true,
            criu_work_path: "/w".into(),
            binary_name: "runc".into(),
            root: "/run/runc".into(),
            ..Default::default()
        };
        let bytes = o.write_to_bytes().unwrap();
        for url in [
            "containerd.runc.v1.Options",
            "type.googleapis.com/containerd.runc.v1.Options",
        ] {
            let got = parse(Some(&any(url, bytes.clone()))).unwrap();
            assert_eq!(
                got,
                TaskOptions {
                    no_pivot: true,
                    io_owner: Some((1000, 1001)),
                    systemd_cgroup: true,
                    criu_work_path: Some("/w".into()),
                }
            );
        }
    }

    #[test]
    fn what_is_ignored_is_named() {
        assert!(ignored(&RuncOptions::default()).is_empty());
        // Options that apply, or that containerd itself consumes, are not named.
        let honoured = RuncOptions {
            no_pivot_root: true,
            no_new_keyring: true,
            io_uid: 1,
            io_gid: 1,
            task_api_address: "ttrpc+unix:///run/x.sock".into(),
            task_api_version: 3,
            systemd_cgroup: true,
            criu_image_path: "/cp".into(),
            criu_work_path: "/w".into(),
            ..Default::default()
        };
        assert!(ignored(&honoured).is_empty());
        let o = RuncOptions {
            binary_name: "/usr/bin/runc".into(),
            root: "/run/x".into(),
            shim_cgroup: "/shims".into(),
            ..Default::default()
        };
        let got = ignored(&o);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].contains("\"/usr/bin/runc\""));
    }

    #[test]
    fn cri_runtime_options_are_accepted() {
        // runtimeoptions.v1.Options{type_name: "x", config_path: "/etc/x.toml"}.
        let mut bytes = vec![0x0a, 1, b'x', 0x12, 11];
        bytes.extend_from_slice(b"/etc/x.toml");
        let got = parse(Some(&any("runtimeoptions.v1.Options", bytes))).unwrap();
        assert_eq!(got, TaskOptions::default());
    }

    #[test]
    fn garbage_runc_options_are_invalid() {
        let e = parse(Some(&any("containerd.runc.v1.Options", vec![0xff, 0xff]))).unwrap_err();
        assert_eq!(e.kind, Kind::InvalidArgument);
    }
}
