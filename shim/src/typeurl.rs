//! The `google.protobuf.Any` values of the task API, as containerd's typeurl package makes
//! and reads them:
//!
//! - OCI runtime-spec types (an exec's `Process`, Update's `LinuxResources`) are registered
//!   with typeurl as JSON: the URL is `types.containerd.io/opencontainers/runtime-spec/1/<Type>`
//!   and the value is the type's JSON.
//! - protobuf messages (Stats' metrics, Pids' process details) go by their full protobuf
//!   name, without a `type.googleapis.com/` prefix: containerd 1.6's typeurl looks a bare
//!   name up in its registry, 2.x takes either form.

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use serde::de::DeserializeOwned;

use crate::error::{Result, ShimError};

/// The last path element of a type URL: the type's name.
fn type_name(any: &Any) -> &str {
    any.type_url.rsplit('/').next().unwrap_or_default()
}

/// Decodes a JSON-registered runtime-spec value whose type is named `want`
/// (`Process`, `LinuxResources`).
pub fn spec_json<T: DeserializeOwned>(any: Option<&Any>, want: &str) -> Result<T> {
    let any = any.ok_or_else(|| ShimError::invalid(format!("no {want} given")))?;
    if type_name(any) != want {
        return Err(ShimError::invalid(format!(
            "expected a runtime-spec {want}, got type {:?}",
            any.type_url
        )));
    }
    serde_json::from_slice(&any.value)
        .map_err(|e| ShimError::invalid(format!("decoding {}: {e}", any.type_url)))
}

/// Wraps a protobuf message whose full name is `name`.
pub fn message<M: Message>(name: &str, m: &M) -> Result<Any> {
    let value = m
        .write_to_bytes()
        .map_err(|e| ShimError::other(format!("encoding {name}: {e}")))?;
    Ok(Any {
        type_url: name.to_string(),
        value,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use oci_spec::runtime::{LinuxResources, Process};

    fn any(url: &str, value: &str) -> Any {
        Any {
            type_url: url.into(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn exec_process_from_containerds_json() {
        let a = any(
            "types.containerd.io/opencontainers/runtime-spec/1/Process",
            r#"{"user":{"uid":1000,"gid":1000},"args":["sh","-c","id"],
                "env":["A=b"],"cwd":"/tmp","terminal":true}"#,
        );
        let p: Process = spec_json(Some(&a), "Process").unwrap();
        assert_eq!(
            p.args().as_deref(),
            Some(&["sh".into(), "-c".into(), "id".into()][..])
        );
        assert_eq!(p.cwd().to_str(), Some("/tmp"));
        assert_eq!(p.user().uid(), 1000);
        assert_eq!(p.env().as_deref(), Some(&["A=b".to_string()][..]));
        assert_eq!(p.terminal(), Some(true));
    }

    #[test]
    fn resources_from_containerds_json() {
        let a = any(
            "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
            r#"{"memory":{"limit":33554432},"pids":{"limit":10}}"#,
        );
        let r: LinuxResources = spec_json(Some(&a), "LinuxResources").unwrap();
        assert_eq!(r.memory().as_ref().and_then(|m| m.limit()), Some(33554432));
        assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(10));
    }

    #[test]
    fn wrong_or_missing_types_are_invalid() {
        let e = spec_json::<Process>(None, "Process").unwrap_err();
        assert_eq!(e.kind, Kind::InvalidArgument);
        let a = any(
            "types.containerd.io/opencontainers/runtime-spec/1/Spec",
            "{}",
        );
        let e = spec_json::<Process>(Some(&a), "Process").unwrap_err();
        assert_eq!(e.kind, Kind::InvalidArgument);
        let a = any(
            "types.containerd.io/opencontainers/runtime-spec/1/Process",
            "not json",
        );
        let e = spec_json::<Process>(Some(&a), "Process").unwrap_err();
        assert_eq!(e.kind, Kind::InvalidArgument);
    }
}
