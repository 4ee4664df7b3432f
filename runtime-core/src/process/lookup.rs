//! Finding the program a container process runs, and saying why when there is none, in
//! runc's words: clients derive exit codes from them. Docker's daemon (moby
//! daemon/errors.go, setExitCodeFromError) and docker/cli give 126 for "permission denied"
//! and 127 for "executable file not found" or "no such file or directory"; podman reads
//! the same phrases. runc 1.1.5 finds the program with Go's exec.LookPath after switching
//! to the process's user, then checks access(X_OK) (standard_init_linux.go); its errors:
//!
//! - `exec: "nosuchcmd": executable file not found in $PATH` (a name, on no PATH directory
//!   as an executable regular file);
//! - `exec: "/nosuch": stat /nosuch: no such file or directory` (a path that is not there);
//! - `exec: "/etc/hosts": permission denied` (a path that is no executable file, a
//!   directory included: runc 1.3 says "is a directory" there, which Docker also maps to
//!   126);
//! - `exec /bin/x: permission denied` (the process's user may not execute it, or a noexec
//!   mount).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::unistd::AccessFlags;

/// Why there is no program to run; the texts are runc's (see the module's comment).
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// `process.args` is empty.
    #[error("process.args: empty")]
    NoArgs,
    /// A name without `/` that no directory of PATH holds as an executable file.
    #[error("exec: {name:?}: executable file not found in $PATH")]
    NotInPath {
        /// `args[0]`.
        name: String,
    },
    /// A path that stat(2) refuses (not there, a component not a directory, ...).
    #[error("exec: {name:?}: stat {name}: {}", go_text(*errno))]
    Stat {
        /// `args[0]`.
        name: String,
        /// stat's error.
        errno: Errno,
    },
    /// A path that is there but is not a file with an execute bit (a directory included).
    #[error("exec: {name:?}: permission denied")]
    NotExecutable {
        /// `args[0]`.
        name: String,
    },
    /// The process's user may not execute the file found (or it is on a noexec mount).
    #[error("exec {}: {}", path.display(), go_text(*errno))]
    Access {
        /// The file found.
        path: PathBuf,
        /// access(2)'s error.
        errno: Errno,
    },
    /// `args[0]` holds a NUL byte, which no path can.
    #[error("process.args[0] {name:?}: contains NUL")]
    Nul {
        /// `args[0]`.
        name: String,
    },
}

impl LookupError {
    /// The errno the failure stands for: the kernel's, or the one Go's lookup reports as
    /// (ENOENT for a name on no PATH directory, EACCES for a file that is not executable).
    pub fn errno(&self) -> Option<Errno> {
        match self {
            LookupError::NoArgs | LookupError::Nul { .. } => None,
            LookupError::NotInPath { .. } => Some(Errno::ENOENT),
            LookupError::NotExecutable { .. } => Some(Errno::EACCES),
            LookupError::Stat { errno, .. } | LookupError::Access { errno, .. } => Some(*errno),
        }
    }
}

/// An errno as Go (and so runc) spells it: strerror in lower case ("no such file or
/// directory"). docker/cli matches these phrases case-sensitively.
fn go_text(errno: Errno) -> String {
    errno.desc().to_lowercase()
}

/// Go's findExecutable: the path (followed through symlinks) is a non-directory with an
/// execute bit. stat(2) as Go calls it (newfstatat), not std's statx: this runs under the
/// container's seccomp filter when it is loaded before the user switch, and profiles that
/// predate statx refuse it.
fn is_executable(path: &Path) -> Result<bool, Errno> {
    let st = nix::sys::stat::stat(path)?;
    let mode = st.st_mode & libc::S_IFMT;
    Ok(mode != libc::S_IFDIR && st.st_mode & 0o111 != 0)
}

/// Whether this process may execute `path`, with its effective ids and capabilities (a
/// user holding CAP_DAC_OVERRIDE may run a file only root has execute permission on, as
/// execve lets it), and not on a noexec mount: faccessat2(AT_EACCESS), as runc's Eaccess.
/// Where a seccomp profile older than faccessat2 refuses it (EPERM, or ENOSYS), plain
/// access(2) as runc falls back to: the real ids are the effective ones here.
fn may_execute(path: &Path) -> Result<(), Errno> {
    match nix::unistd::faccessat(
        nix::fcntl::AT_FDCWD,
        path,
        AccessFlags::X_OK,
        AtFlags::AT_EACCESS,
    ) {
        Err(Errno::EPERM | Errno::ENOSYS) => nix::unistd::access(path, AccessFlags::X_OK),
        r => r,
    }
}

/// The program `args[0]` names: itself if it has a `/` (relative to `cwd` if relative),
/// else the first executable file of that name in a directory of `path` (a PATH value).
/// Then, as the caller's user (the process's, by now), access(X_OK) must allow it.
pub(super) fn find_program(
    args: Option<&[String]>,
    path: &str,
    cwd: &Path,
) -> Result<CString, LookupError> {
    let name = args.and_then(|a| a.first()).ok_or(LookupError::NoArgs)?;
    let full = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    let found = if name.contains('/') {
        let candidate = full(Path::new(name));
        match is_executable(&candidate) {
            Ok(true) => candidate,
            Ok(false) => return Err(LookupError::NotExecutable { name: name.clone() }),
            Err(errno) => {
                return Err(LookupError::Stat {
                    name: name.clone(),
                    errno,
                })
            }
        }
    } else {
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| full(&Path::new(d).join(name)))
            .find(|c| is_executable(c).unwrap_or(false))
            .ok_or_else(|| LookupError::NotInPath { name: name.clone() })?
    };
    may_execute(&found).map_err(|errno| LookupError::Access {
        path: found.clone(),
        errno,
    })?;
    CString::new(found.as_os_str().as_bytes()).map_err(|_| LookupError::Nul { name: name.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn args(a: &str) -> Vec<String> {
        vec![a.to_string()]
    }

    /// A directory with `bin/run` (0755), `bin/data` (0644) and `sub/` in it.
    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("bin")).unwrap();
        fs::create_dir_all(d.path().join("sub")).unwrap();
        for (name, mode) in [("run", 0o755), ("data", 0o644)] {
            let p = d.path().join("bin").join(name);
            fs::write(&p, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }
        d
    }

    fn find(d: &tempfile::TempDir, arg0: &str) -> Result<CString, LookupError> {
        let path = format!("/nonexistent:{}", d.path().join("bin").display());
        find_program(Some(&args(arg0)), &path, d.path())
    }

    #[test]
    fn names_are_found_on_path_and_paths_taken_as_they_are() {
        let d = tree();
        let run = d.path().join("bin/run");
        assert_eq!(
            find(&d, "run").unwrap().to_bytes(),
            run.as_os_str().as_bytes()
        );
        assert_eq!(
            find(&d, run.to_str().unwrap()).unwrap().to_bytes(),
            run.as_os_str().as_bytes()
        );
        // Relative to the process's cwd.
        assert_eq!(
            find(&d, "./bin/run").unwrap().to_bytes(),
            d.path().join("./bin/run").as_os_str().as_bytes()
        );
    }

    #[test]
    fn errors_say_what_runc_says() {
        let d = tree();
        let text = |arg0: &str| find(&d, arg0).unwrap_err().to_string();
        assert_eq!(
            text("nosuchcmd"),
            r#"exec: "nosuchcmd": executable file not found in $PATH"#
        );
        // A name whose only match is not executable is not found, as Go's LookPath says.
        assert_eq!(
            text("data"),
            r#"exec: "data": executable file not found in $PATH"#
        );
        assert_eq!(
            text("/nosuch"),
            r#"exec: "/nosuch": stat /nosuch: no such file or directory"#
        );
        assert_eq!(
            text("./nosuch"),
            r#"exec: "./nosuch": stat ./nosuch: no such file or directory"#
        );
        assert_eq!(
            text("./bin/data/x"),
            r#"exec: "./bin/data/x": stat ./bin/data/x: not a directory"#
        );
        assert_eq!(
            text("./bin/data"),
            r#"exec: "./bin/data": permission denied"#
        );
        assert_eq!(text("./sub"), r#"exec: "./sub": permission denied"#);
        assert_eq!(
            find_program(Some(&[]), "/bin", d.path())
                .unwrap_err()
                .to_string(),
            "process.args: empty"
        );
        let access = LookupError::Access {
            path: PathBuf::from("/bin/x"),
            errno: Errno::EACCES,
        };
        assert_eq!(access.to_string(), "exec /bin/x: permission denied");
    }
}
