//! The `options` of CreateTaskRequest: none, runc's `containerd.runc.v1.Options`, or CRI's
//! `runtimeoptions.v1.Options` (what CRI sends for any runtime type that is not runc's).
//! What does not apply to this shim is ignored.

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
            if o.systemd_cgroup {
                log::warn!("options: SystemdCgroup is not supported yet; using cgroupfs");
            }
            Ok(TaskOptions {
                no_pivot: o.no_pivot_root,
                io_owner: (o.io_uid != 0 || o.io_gid != 0).then_some((o.io_uid, o.io_gid)),
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
                }
            );
        }
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
