//! Output to a file: `file:///path` (parent directories created), or a plain path that
//! names a file and not a fifo (as containerd's runc shim takes it too). Appended to; one
//! file for both streams when both name it.

use std::fs::File;
use std::path::Path;

use crate::error::{Result, ShimError};

/// Opens `file:///path` for appending, creating it and its parent directories.
pub(super) fn open_uri(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| ShimError::other(format!("creating {}: {e}", dir.display())))?;
    }
    File::options()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| ShimError::other(format!("opening {}: {e}", path.display())))
}

/// Opens an existing file given as a plain path for appending.
pub(super) fn open_plain(path: &Path) -> Result<File> {
    File::options()
        .append(true)
        .open(path)
        .map_err(|e| ShimError::other(format!("opening {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;
    use std::time::Duration;

    use crate::io::testing::fifo_paths;
    use crate::io::{setup_for, StdioPaths};

    #[test]
    fn a_plain_file_as_output_is_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "before\n").unwrap();
        let (io, drain, _stop) = setup_for("c", &fifo_paths(&log), None).unwrap();
        File::from(io.stdout).write_all(b"after\n").unwrap();
        drop(io.stderr);
        assert!(drain.wait(Duration::from_secs(5)));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "before\nafter\n");
    }

    #[test]
    fn file_uri_appends_both_streams_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a/b/c.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(&log, "before\n").unwrap();
        std::fs::remove_dir_all(dir.path().join("a")).unwrap();
        let uri = format!("file://{}", log.display());
        let paths = StdioPaths {
            stdout: uri.clone(),
            stderr: uri,
            ..Default::default()
        };
        let (io, drain, _stop) = setup_for("c1", &paths, None).unwrap();
        File::from(io.stdout).write_all(b"out\n").unwrap();
        File::from(io.stderr).write_all(b"err\n").unwrap();
        drop(io.stdin);
        assert!(drain.wait(Duration::from_secs(10)));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out\nerr\n");
        // Appended, not truncated.
        let paths = StdioPaths {
            stdout: format!("file://{}", log.display()),
            ..Default::default()
        };
        let (io, drain, _stop) = setup_for("c1", &paths, None).unwrap();
        File::from(io.stdout).write_all(b"again\n").unwrap();
        drop(io.stderr);
        assert!(drain.wait(Duration::from_secs(10)));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out\nerr\nagain\n");
    }
}
