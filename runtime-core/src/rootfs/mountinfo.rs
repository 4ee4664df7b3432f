//! The few facts the rootfs setup needs from /proc/self/mountinfo.

use std::path::{Path, PathBuf};

/// One line of mountinfo, the fields that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Whether it has shared propagation (a `shared:N` optional field).
    pub shared: bool,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let digits = &b[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                // Three octal digits exceed a byte only for values nobody escapes.
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            let optional = fields.get(6..sep)?;
            Some(Entry {
                mount_point: PathBuf::from(unescape(mount_point)),
                shared: optional.iter().any(|f| f.starts_with("shared:")),
            })
        })
        .collect()
}

/// The mount that `path` (canonical) lives on: the longest mount point that contains it,
/// the last listed among equals (the one on top).
pub fn mount_of<'a>(entries: &'a [Entry], path: &Path) -> Option<&'a Entry> {
    entries
        .iter()
        .filter(|e| path.starts_with(&e.mount_point))
        .fold(None, |best: Option<&Entry>, e| match best {
            Some(b) if b.mount_point.components().count() > e.mount_point.components().count() => {
                Some(b)
            }
            _ => Some(e),
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
42 40 0:37 / /var/lib/c\\040x rw,relatime - tmpfs tmpfs rw
bad line
";

    #[test]
    fn parses_fields() {
        let e = parse(SAMPLE);
        assert_eq!(e.len(), 5);
        assert_eq!(e[0].mount_point, PathBuf::from("/"));
        assert!(e[0].shared);
        assert!(!e[2].shared);
        assert_eq!(e[3].mount_point, PathBuf::from("/var/lib/c x"));
        assert!(e[3].shared);
    }

    #[test]
    fn finds_the_mount_of_a_path() {
        let e = parse(SAMPLE);
        let m = mount_of(&e, Path::new("/var/lib/containers/x")).expect("found");
        assert_eq!(m.mount_point, PathBuf::from("/var/lib"));
        let m = mount_of(&e, Path::new("/srv/rootfs")).expect("found");
        assert_eq!(m.mount_point, PathBuf::from("/"));
        // Stacked on the same point: the later (upper) one.
        let m = mount_of(&e, Path::new("/var/lib/c x/rootfs")).expect("found");
        assert!(!m.shared);
        // Prefixes are by component, not by string.
        let m = mount_of(&e, Path::new("/var/library")).expect("found");
        assert_eq!(m.mount_point, PathBuf::from("/"));
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape("end\\04"), "end\\04");
    }
}
