//! containerd's stdio paths and URIs: a fifo path (or `fifo://`), `file:///path` and
//! `binary:///path?args`.

use std::path::PathBuf;

use crate::error::{Result, ShimError};

/// A stdio destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// A fifo: a plain path or `fifo://path`.
    Fifo(PathBuf),
    /// `file:///path`: appended to.
    File(PathBuf),
    /// `binary:///path?args`: a logging binary.
    Binary(LogBinary),
}

/// A logging binary and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LogBinary {
    pub(super) path: PathBuf,
    /// The URI's query, in order: each key, then its value unless that is empty.
    pub(super) args: Vec<String>,
}

/// Parses a stdio path as containerd gives it: a fifo path, or a `fifo://`, `file://` or
/// `binary://` URI (percent-encoded, as Go's net/url writes them; no host).
pub(super) fn parse_uri(s: &str) -> Result<Option<Target>> {
    if s.is_empty() {
        return Ok(None);
    }
    let Some((scheme, rest)) = s.split_once("://") else {
        return Ok(Some(Target::Fifo(PathBuf::from(s))));
    };
    let bad = |why: &str| ShimError::invalid(format!("stdio URI {s}: {why}"));
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "fifo" {
        return Ok(Some(Target::Fifo(PathBuf::from(rest))));
    }
    if scheme != "file" && scheme != "binary" {
        return Err(ShimError::unimplemented(format!(
            "stdio URI {s}: {scheme}:// is not supported (fifo, file:// and binary:// are)"
        )));
    }
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') {
        return Err(bad(
            "expected an absolute path and no host (scheme:///path)",
        ));
    }
    let path = percent_decode(path, false).map_err(|e| bad(&e))?;
    if path.len() < 2 || path.contains('\0') {
        return Err(bad("no path"));
    }
    let path = PathBuf::from(path);
    if scheme == "file" {
        return Ok(Some(Target::File(path)));
    }
    let mut args = vec![];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k, true).map_err(|e| bad(&e))?;
        let v = percent_decode(v, true).map_err(|e| bad(&e))?;
        if k.contains('\0') || v.contains('\0') {
            return Err(bad("NUL in an argument"));
        }
        args.push(k);
        if !v.is_empty() {
            args.push(v);
        }
    }
    Ok(Some(Target::Binary(LogBinary { path, args })))
}

/// Decodes `%XX` escapes (and `+` as a space in a query).
fn percent_decode(s: &str, plus_is_space: bool) -> std::result::Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad escape at {:?}", &s[i..]))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 once decoded".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    #[test]
    fn stdio_uris() {
        let fifo = |p: &str| Some(Target::Fifo(p.into()));
        assert!(parse_uri("").unwrap().is_none());
        assert_eq!(parse_uri("/a/b").unwrap(), fifo("/a/b"));
        assert_eq!(parse_uri("fifo:///a").unwrap(), fifo("/a"));
        assert_eq!(
            parse_uri("file:///var/log/a%20b.log").unwrap(),
            Some(Target::File("/var/log/a b.log".into()))
        );
        assert_eq!(
            parse_uri("binary:///usr/bin/logger?_MAGIC=%2Fvar%2Flib%2Fx&--tag=a+b&flag").unwrap(),
            Some(Target::Binary(LogBinary {
                path: "/usr/bin/logger".into(),
                args: vec![
                    "_MAGIC".into(),
                    "/var/lib/x".into(),
                    "--tag".into(),
                    "a b".into(),
                    "flag".into()
                ],
            }))
        );
        assert_eq!(
            parse_uri("BINARY:///bin/l").unwrap(),
            Some(Target::Binary(LogBinary {
                path: "/bin/l".into(),
                args: vec![]
            }))
        );
        for bad in [
            "file://host/log",
            "binary://relative",
            "file:///",
            "binary:///bin/x?a=%zz",
            "file:///a%00b",
        ] {
            assert_eq!(
                parse_uri(bad).unwrap_err().kind,
                Kind::InvalidArgument,
                "{bad}"
            );
        }
        assert_eq!(
            parse_uri("tcp://x:1").unwrap_err().kind,
            Kind::Unimplemented
        );
    }
}
