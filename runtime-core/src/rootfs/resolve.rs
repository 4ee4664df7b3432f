//! Finding and creating paths inside the rootfs without ever leaving it.
//!
//! A container image is untrusted: any component of a mount destination may be a symlink,
//! absolute or full of `..`, meant to make the runtime mount over a host path. Every
//! lookup here is done relative to a descriptor of the rootfs with openat2's
//! RESOLVE_IN_ROOT, which interprets symlinks and `..` as if the rootfs were `/`, and
//! directories and files are created with the *at calls relative to a directory descriptor
//! obtained that way, so nothing is ever created or mounted outside the rootfs.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};

use crate::syscall::{open_in_root, SyscallError};

/// How many symlinks one resolution may follow, as the kernel's MAXSYMLINKS.
const MAX_SYMLINKS: usize = 40;

/// What to create when the final component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (mount points of filesystems and directory binds).
    Dir,
    /// An empty regular file (binds of files and device nodes).
    File,
}

fn fail(call: &'static str, target: &Path, errno: Errno) -> SyscallError {
    SyscallError {
        call,
        target: target.display().to_string(),
        errno,
    }
}

/// The normal components of `path` read as an absolute path inside the rootfs, `..` applied
/// lexically and clamped at `/` (a relative destination counts from `/`, as the spec allows).
pub fn clean(path: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// `path` cleaned as by [`clean`], as an absolute path.
pub fn absolute(path: &Path) -> PathBuf {
    join(&clean(path))
}

fn join(parts: &[OsString]) -> PathBuf {
    let mut p = PathBuf::from("/");
    p.extend(parts);
    p
}

/// Opens the existing `path` inside `root` with O_PATH, following symlinks only inside it.
pub fn open_path(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, SyscallError> {
    open_in_root(root, path, OFlag::O_PATH)
}

/// Resolves `path` inside `root`, creating what is missing: directories for every
/// component but the last, and the last as `kind`. A symlink on the way, even a dangling
/// one, is followed inside the rootfs, so `evil -> /host/dir` makes `<rootfs>/host/dir`.
/// Returns the resolved path (relative to the rootfs, for messages) and an O_PATH
/// descriptor of exactly the file or directory found or created.
pub fn create_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    kind: Kind,
) -> Result<(PathBuf, OwnedFd), SyscallError> {
    let mut todo: Vec<OsString> = clean(path);
    todo.reverse();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    // Retries of one component after a concurrent change (EEXIST on create).
    let mut retries = 0;
    while let Some(name) = todo.pop() {
        if name.as_bytes() == b".." {
            done.pop();
            continue;
        }
        if name.as_bytes() == b"." {
            continue;
        }
        let last = todo.is_empty();
        let dir = open_in_root(root, &join(&done), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
        match nix::sys::stat::fstatat(dir.as_fd(), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                if fmt == SFlag::S_IFLNK {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(fail("resolve", path, Errno::ELOOP));
                    }
                    let target = nix::fcntl::readlinkat(dir.as_fd(), name.as_os_str())
                        .map_err(|e| fail("readlinkat", &join(&done).join(&name), e))?;
                    let target = Path::new(&target);
                    if target.is_absolute() {
                        done.clear();
                    }
                    // The link's components are resolved before the rest of the path;
                    // `..` inside them is handled in order, clamped at the rootfs.
                    for c in target.components().rev() {
                        match c {
                            Component::Normal(n) => todo.push(n.to_os_string()),
                            Component::ParentDir => todo.push(OsString::from("..")),
                            _ => {}
                        }
                    }
                    continue;
                }
                if !last && fmt != SFlag::S_IFDIR {
                    return Err(fail("resolve", &join(&done).join(&name), Errno::ENOTDIR));
                }
                done.push(name);
            }
            Err(Errno::ENOENT) => {
                let created = if last && kind == Kind::File {
                    nix::fcntl::openat(
                        dir.as_fd(),
                        name.as_os_str(),
                        OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_WRONLY
                            | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map(drop)
                } else {
                    nix::sys::stat::mkdirat(
                        dir.as_fd(),
                        name.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                };
                match created {
                    Ok(()) => done.push(name),
                    // Someone created it meanwhile: look at it again.
                    Err(Errno::EEXIST) if retries < MAX_SYMLINKS => {
                        retries += 1;
                        todo.push(name);
                    }
                    Err(e) => {
                        let call = if last && kind == Kind::File {
                            "create"
                        } else {
                            "mkdirat"
                        };
                        return Err(fail(call, &join(&done).join(&name), e));
                    }
                }
            }
            Err(e) => return Err(fail("fstatat", &join(&done).join(&name), e)),
        }
    }
    let resolved = join(&done);
    // Opened through RESOLVE_IN_ROOT once more: should anything have been swapped for a
    // symlink since it was checked, the open still cannot leave the rootfs.
    let fd = open_path(root, &resolved)?;
    Ok((resolved, fd))
}

/// Resolves (creating directories) the parent of `path` inside `root` and returns an
/// O_PATH descriptor of it with the final name, for *at calls that never follow the name.
pub fn create_parent_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
) -> Result<(PathBuf, OwnedFd, OsString), SyscallError> {
    let mut parts = clean(path);
    let name = parts
        .pop()
        .ok_or_else(|| fail("resolve", path, Errno::EINVAL))?;
    let (parent, fd) = create_in_root(root, &join(&parts), Kind::Dir)?;
    Ok((parent.join(&name), fd, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &Path) -> OwnedFd {
        nix::fcntl::open(
            dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .expect("open root")
    }

    fn real(fd: &OwnedFd) -> PathBuf {
        fs::read_link(crate::syscall::fd_path(fd.as_fd())).expect("readlink")
    }

    #[test]
    fn clean_is_lexical_and_clamped() {
        let c = |p: &str| join(&clean(Path::new(p)));
        assert_eq!(c("/a/b/../c/./d"), PathBuf::from("/a/c/d"));
        assert_eq!(c("/../../etc"), PathBuf::from("/etc"));
        assert_eq!(c("relative/x"), PathBuf::from("/relative/x"));
        assert_eq!(c("/"), PathBuf::from("/"));
    }

    #[test]
    fn creates_missing_directories_and_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = root_fd(tmp.path());
        let (p, fd) = create_in_root(root.as_fd(), Path::new("/a/b/c"), Kind::Dir).expect("dir");
        assert_eq!(p, PathBuf::from("/a/b/c"));
        assert!(tmp.path().join("a/b/c").is_dir());
        assert_eq!(real(&fd), tmp.path().join("a/b/c"));

        let (_, fd) =
            create_in_root(root.as_fd(), Path::new("/etc/hosts"), Kind::File).expect("file");
        assert!(tmp.path().join("etc/hosts").is_file());
        assert_eq!(real(&fd), tmp.path().join("etc/hosts"));

        // Existing paths are found as they are.
        let (_, fd) = create_in_root(root.as_fd(), Path::new("/a/b"), Kind::Dir).expect("again");
        assert_eq!(real(&fd), tmp.path().join("a/b"));
    }

    #[test]
    fn absolute_symlink_stays_inside() {
        let host = tempfile::tempdir().expect("host dir");
        let tmp = tempfile::tempdir().expect("tempdir");
        symlink(host.path(), tmp.path().join("evil")).expect("symlink");
        let root = root_fd(tmp.path());
        let (p, fd) =
            create_in_root(root.as_fd(), Path::new("/evil/sub"), Kind::Dir).expect("resolve");
        let inside = tmp.path().join(host.path().strip_prefix("/").expect("abs"));
        assert_eq!(
            p,
            Path::new("/")
                .join(host.path().strip_prefix("/").expect("abs"))
                .join("sub")
        );
        assert_eq!(real(&fd), inside.join("sub"));
        assert!(inside.join("sub").is_dir());
        assert!(!host.path().join("sub").exists(), "host dir was touched");
        assert_eq!(fs::read_dir(host.path()).expect("read").count(), 0);
    }

    #[test]
    fn dotdot_symlink_stays_inside() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("d")).expect("mkdir");
        symlink("../../../../../../tmp", tmp.path().join("d/up")).expect("symlink");
        let root = root_fd(tmp.path());
        let (p, fd) =
            create_in_root(root.as_fd(), Path::new("/d/up/x"), Kind::File).expect("resolve");
        assert_eq!(p, PathBuf::from("/tmp/x"));
        assert_eq!(real(&fd), tmp.path().join("tmp/x"));
    }

    #[test]
    fn relative_symlink_is_followed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(tmp.path().join("run")).expect("mkdir");
        fs::create_dir(tmp.path().join("var")).expect("mkdir");
        symlink("../run", tmp.path().join("var/run")).expect("symlink");
        let root = root_fd(tmp.path());
        let (p, _) =
            create_in_root(root.as_fd(), Path::new("/var/run/x.sock"), Kind::File).expect("ok");
        assert_eq!(p, PathBuf::from("/run/x.sock"));
        assert!(tmp.path().join("run/x.sock").is_file());
    }

    #[test]
    fn symlink_loop_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        symlink("/b", tmp.path().join("a")).expect("symlink");
        symlink("/a", tmp.path().join("b")).expect("symlink");
        let root = root_fd(tmp.path());
        let e = create_in_root(root.as_fd(), Path::new("/a/x"), Kind::Dir).expect_err("loop");
        assert_eq!(e.errno, Errno::ELOOP);
    }

    #[test]
    fn file_in_the_way_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::write(tmp.path().join("f"), b"").expect("write");
        let root = root_fd(tmp.path());
        let e = create_in_root(root.as_fd(), Path::new("/f/x"), Kind::Dir).expect_err("notdir");
        assert_eq!(e.errno, Errno::ENOTDIR);
    }

    #[test]
    fn parent_and_name() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = root_fd(tmp.path());
        let (p, fd, name) =
            create_parent_in_root(root.as_fd(), Path::new("/dev/net/tun")).expect("parent");
        assert_eq!(p, PathBuf::from("/dev/net/tun"));
        assert_eq!(name, OsString::from("tun"));
        assert_eq!(real(&fd), tmp.path().join("dev/net"));
        assert!(create_parent_in_root(root.as_fd(), Path::new("/")).is_err());
    }
}
