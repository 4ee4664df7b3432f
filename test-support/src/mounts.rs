//! The mount table of the test's mount namespace.

use std::fs;
use std::path::Path;

/// Mount points of this (the test's) mount namespace.
pub fn mount_points() -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(unescape_mountinfo))
        .collect()
}

/// Mount points at or below `dir`, deepest first (the order to detach them in).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = mount_points()
        .into_iter()
        .filter(|m| Path::new(m).starts_with(dir))
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.len()));
    out
}

/// Detaches (MNT_DETACH) each of `mounts`, in order; failures are left to the caller's
/// next look at the mount table.
pub fn detach(mounts: &[String]) {
    for m in mounts {
        if let Ok(c) = std::ffi::CString::new(m.as_bytes()) {
            // SAFETY: umount2 with a NUL-terminated path we own.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// A mountinfo field with its escapes (`\ooo` for space, tab, newline and backslash)
/// undone.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).ok();
            if let Some(v) = oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal_escapes_only() {
        assert_eq!(unescape_mountinfo(r"/a\040b\134c\x"), r"/a b\c\x");
    }
}
