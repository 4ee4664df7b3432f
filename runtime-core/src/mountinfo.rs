//! `/proc/self/mountinfo` (proc(5)), parsed once for every module that needs mount facts.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount, as a line of mountinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the filesystem: the same for every bind mount of it.
    pub dev: String,
    /// The directory of the filesystem that is mounted (`/` unless a bind mount).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Optional fields: `shared:N`, `master:N`, ...
    pub optional: Vec<String>,
    /// Filesystem type.
    pub fstype: String,
    /// Per-superblock options (for cgroup v1, the controllers among them).
    pub super_options: String,
}

impl Mount {
    /// Whether the mount has shared propagation.
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|f| f.starts_with("shared:"))
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash).
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                // Three octal digits exceed a byte only for values nobody escapes.
                if let Ok(byte) = u8::try_from(v) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

fn parse_line(line: &str) -> Option<Mount> {
    // 0 id, 1 parent, 2 major:minor, 3 root, 4 mount point, 5 options, optional fields...,
    // "-", fstype, source, super options.
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    Some(Mount {
        dev: fields.get(2)?.to_string(),
        root: unescape(fields.get(3)?),
        mount_point: unescape(fields.get(4)?),
        optional: fields[6..sep].iter().map(|f| f.to_string()).collect(),
        fstype: fields.get(sep + 1)?.to_string(),
        super_options: fields.get(sep + 3).unwrap_or(&"").to_string(),
    })
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// The mount that `path` (canonical) lives on: the longest mount point that contains it,
/// the last listed among equals (the one on top).
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .fold(None, |best: Option<&Mount>, m| match best {
            Some(b) if b.mount_point.components().count() > m.mount_point.components().count() => {
                Some(b)
            }
            _ => Some(m),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 0:35 / /var/lib rw,relatime - ext4 /dev/sdb1 rw
41 40 0:36 / /var/lib/c\\040x rw,relatime shared:30 master:2 - tmpfs tmpfs rw
42 40 0:37 /sub /var/lib/c\\040x rw,relatime - tmpfs tmpfs rw,size=10k
bad line
";

    #[test]
    fn parses_fields() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].mount_point, PathBuf::from("/"));
        assert!(m[0].is_shared());
        assert!(!m[2].is_shared());
        assert_eq!(m[3].mount_point, PathBuf::from("/var/lib/c x"));
        assert_eq!(m[3].optional, vec!["shared:30", "master:2"]);
        assert_eq!(m[4].root, PathBuf::from("/sub"));
        assert_eq!(m[4].fstype, "tmpfs");
        assert_eq!(m[4].super_options, "rw,size=10k");
        assert_eq!(m[4].dev, "0:37");
    }

    #[test]
    fn finds_the_mount_of_a_path() {
        let m = parse(SAMPLE);
        let found = mount_of(&m, Path::new("/var/lib/containers/x")).expect("found");
        assert_eq!(found.mount_point, PathBuf::from("/var/lib"));
        let found = mount_of(&m, Path::new("/srv/rootfs")).expect("found");
        assert_eq!(found.mount_point, PathBuf::from("/"));
        // Stacked on the same point: the later (upper) one.
        let found = mount_of(&m, Path::new("/var/lib/c x/rootfs")).expect("found");
        assert!(!found.is_shared());
        // Prefixes are by component, not by string.
        let found = mount_of(&m, Path::new("/var/library")).expect("found");
        assert_eq!(found.mount_point, PathBuf::from("/"));
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("a\\040b\\134c"), PathBuf::from("a b\\c"));
        assert_eq!(unescape("end\\04"), PathBuf::from("end\\04"));
    }
}
