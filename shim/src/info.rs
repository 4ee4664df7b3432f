//! `containerd-shim-youki-v2 -info`: the RuntimeInfo message containerd 2.x reads from a
//! shim to learn what its runtime handler can do.
//!
//! containerd (core/runtime/v2 getRuntimeInfo) runs the shim binary once with `-info`,
//! writes the handler's runtime options to its stdin (a marshalled `google.protobuf.Any`,
//! or nothing), and decodes stdout as `containerd.types.RuntimeInfo`. CRI takes the OCI
//! Features document from it: `rro` among its mount options makes it tell kubelet that
//! the handler supports recursive read-only mounts; the `user` namespace plus idmapped
//! mounts, user namespaces. containerd-shim-runc-v2 answers with its name, version, the
//! options it was given, and `runc features` as a JSON-registered Any; this answers the
//! same way, with the document `youki features` prints (runtime-core's `features`).

use std::io::{Read, Write};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};

use crate::options;

/// The type URL containerd's typeurl gives the runtime-spec Features type, which it
/// registers as JSON: the Any's value is the document's JSON text.
pub const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";

/// The revision RuntimeInfo names: `YOUKI_COMMIT` at build time (as for `youki
/// --version`), else empty, as containerd's runc shim built without one reports it.
const REVISION: &str = match option_env!("YOUKI_COMMIT") {
    Some(c) => c,
    None => "",
};

/// Why `-info` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// stdin could not be read.
    #[error("reading the runtime options from stdin: {0}")]
    ReadOptions(#[source] std::io::Error),
    /// stdin held something that is not a marshalled Any.
    #[error("decoding the runtime options from stdin as google.protobuf.Any: {0}")]
    DecodeAny(#[source] containerd_shim_protos::protobuf::Error),
    /// The Any held options the shim refuses (as a Create request would).
    #[error("runtime options: {0}")]
    Options(#[source] crate::error::ShimError),
    /// The features document did not serialize.
    #[error("encoding the features document: {0}")]
    Features(#[source] serde_json::Error),
    /// The RuntimeInfo did not encode.
    #[error("encoding RuntimeInfo: {0}")]
    Encode(#[source] containerd_shim_protos::protobuf::Error),
    /// stdout could not be written.
    #[error("writing RuntimeInfo to stdout: {0}")]
    Write(#[source] std::io::Error),
}

/// Whether `arg` asks for the RuntimeInfo (Go's flag package takes one or two dashes).
pub fn is_info_flag(arg: &str) -> bool {
    matches!(arg, "-info" | "--info")
}

/// The RuntimeInfo for the options containerd wrote to stdin (`input`, possibly empty).
pub fn runtime_info(name: &str, input: &[u8]) -> Result<RuntimeInfo, InfoError> {
    // Like the runc shim: no bytes, no options; options are checked as Create checks them
    // and given back unchanged.
    let given = if input.is_empty() {
        None
    } else {
        let any = Any::parse_from_bytes(input).map_err(InfoError::DecodeAny)?;
        options::parse(Some(&any)).map_err(InfoError::Options)?;
        Some(any)
    };
    let features = serde_json::to_vec(&runtime_core::features::features_json())
        .map_err(InfoError::Features)?;
    Ok(RuntimeInfo {
        name: name.to_string(),
        version: MessageField::some(RuntimeVersion {
            version: env!("CARGO_PKG_VERSION").to_string(),
            revision: REVISION.to_string(),
            ..Default::default()
        }),
        options: given.into(),
        features: MessageField::some(Any {
            type_url: FEATURES_TYPE_URL.to_string(),
            value: features,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Reads the options from `stdin` and writes the encoded RuntimeInfo, alone, to `stdout`.
pub fn write_info(
    name: &str,
    mut stdin: impl Read,
    mut stdout: impl Write,
) -> Result<(), InfoError> {
    let mut input = Vec::new();
    stdin
        .read_to_end(&mut input)
        .map_err(InfoError::ReadOptions)?;
    let bytes = runtime_info(name, &input)?
        .write_to_bytes()
        .map_err(InfoError::Encode)?;
    stdout
        .write_all(&bytes)
        .and_then(|()| stdout.flush())
        .map_err(InfoError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::shim::oci::Options as RuncOptions;

    fn decode(bytes: &[u8]) -> RuntimeInfo {
        RuntimeInfo::parse_from_bytes(bytes).expect("RuntimeInfo decodes")
    }

    #[test]
    fn flags() {
        assert!(is_info_flag("-info"));
        assert!(is_info_flag("--info"));
        assert!(!is_info_flag("info"));
        assert!(!is_info_flag("-information"));
    }

    #[test]
    fn without_options_carries_name_version_and_features() {
        let mut out = Vec::new();
        write_info("io.containerd.youki.v2", &b""[..], &mut out).unwrap();
        let info = decode(&out);
        assert_eq!(info.name, "io.containerd.youki.v2");
        assert_eq!(info.version.version, env!("CARGO_PKG_VERSION"));
        assert!(info.options.is_none());
        assert!(info.annotations.is_empty());
        assert_eq!(info.features.type_url, FEATURES_TYPE_URL);
        let doc: serde_json::Value = serde_json::from_slice(&info.features.value).unwrap();
        assert_eq!(doc, runtime_core::features::features_json());
    }

    #[test]
    fn runc_options_are_given_back() {
        let opts = RuncOptions {
            binary_name: "runc".into(),
            systemd_cgroup: true,
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: opts.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let input = any.write_to_bytes().unwrap();
        let mut out = Vec::new();
        write_info("n", &input[..], &mut out).unwrap();
        assert_eq!(decode(&out).options.as_ref(), Some(&any));
    }

    #[test]
    fn garbage_on_stdin_is_an_error() {
        let e = write_info("n", &[0xff, 0xff][..], Vec::new()).unwrap_err();
        assert!(matches!(e, InfoError::DecodeAny(_)), "{e}");
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0xff, 0xff],
            ..Default::default()
        };
        let input = any.write_to_bytes().unwrap();
        let e = write_info("n", &input[..], Vec::new()).unwrap_err();
        assert!(matches!(e, InfoError::Options(_)), "{e}");
    }
}
