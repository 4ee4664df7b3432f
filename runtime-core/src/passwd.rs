//! Lookups in an /etc/passwd file, read directly: binaries are linked statically, where
//! glibc's getpw* (NSS) would need shared libraries at run time, and inside a container
//! the file to read is the container's, not the host's.

use std::path::Path;

/// One line of a passwd file: the fields the runtime uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Login name.
    pub name: String,
    /// Home directory.
    pub home: String,
}

/// The entry of `uid` in `text` (the contents of a passwd file), the first one if repeated.
pub fn find(text: &str, uid: u32) -> Option<Entry> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| Entry {
            name: f[0].to_string(),
            home: f[5].to_string(),
        })
    })
}

/// The entry of `uid` in the passwd file at `path`; `None` if unreadable or absent.
pub fn lookup(path: &Path, uid: u32) -> Option<Entry> {
    find(&std::fs::read_to_string(path).ok()?, uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        short:x:5\n\
        user:x:1000:1000:User:/home/user:/bin/sh\n\
        again:x:1000:1000::/elsewhere:/bin/sh\n";

    #[test]
    fn finds_name_and_home_by_uid() {
        let e = find(PASSWD, 1000).expect("uid 1000");
        assert_eq!(e.name, "user");
        assert_eq!(e.home, "/home/user");
        assert_eq!(find(PASSWD, 0).map(|e| e.home), Some("/root".into()));
    }

    #[test]
    fn malformed_lines_and_unknown_uids_give_none() {
        assert_eq!(find(PASSWD, 5), None);
        assert_eq!(find(PASSWD, 42), None);
        assert_eq!(lookup(Path::new("/nonexistent/passwd"), 0), None);
    }
}
