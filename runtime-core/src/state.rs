//! Container state on disk: `<root>/<id>/state.json`, serialised by a lock per container.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::deadline::Deadline;

/// The OCI spec version this runtime implements, reported in state.
pub const OCI_VERSION: &str = "1.2.0";
/// Name of the state file in a container's directory.
const STATE_FILE: &str = "state.json";
/// Name of the fifo `start` opens to release the init process.
pub(crate) const EXEC_FIFO: &str = "exec.fifo";
/// Longest accepted container id.
const MAX_ID_LEN: usize = 1024;
/// How long a command waits for another command on the same container to finish. Only a
/// runtime process that is still alive can hold a lock (the container's processes never
/// do: see [`Entry::lock_fd`]), so this only bounds a hung one.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a command waiting for the lock tries again.
const LOCK_RETRY: Duration = Duration::from_millis(5);

/// Errors about stored state, naming the container or path.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The id would be unsafe or invalid as a directory name.
    #[error("invalid container id {id:?}: {why}")]
    InvalidId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A container with that id exists.
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// No container with that id.
    #[error("container {0} does not exist")]
    NotFound(String),
    /// Filesystem error on a state path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// state.json could not be read or written as JSON.
    #[error("{path}: {source}")]
    Json {
        /// The path.
        path: PathBuf,
        /// The error.
        source: serde_json::Error,
    },
    /// Another runtime command held the container's lock for too long.
    #[error("container {id} is busy: another runtime command has held its lock for {waited:?}")]
    Busy {
        /// The container.
        id: String,
        /// How long we waited.
        waited: Duration,
    },
    /// Taking the container's lock failed.
    #[error("locking {path}: {errno}")]
    Lock {
        /// The path.
        path: PathBuf,
        /// The error.
        errno: nix::errno::Errno,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Checks that `id` is safe to use as a directory name, as runc does: letters, digits and
/// `_ + - .`, not `.` or `..`, bounded length.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let bad = |why| {
        Err(StateError::InvalidId {
            id: id.to_string(),
            why,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > MAX_ID_LEN {
        return bad("longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return bad("'.' and '..' are not ids");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b))
    {
        return bad("only letters, digits and _ + - . are allowed");
    }
    Ok(())
}

/// The status of a container as the OCI spec names them (plus `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created.
    Creating,
    /// Created, waiting for start.
    Created,
    /// The user's program runs.
    Running,
    /// Frozen.
    Paused,
    /// The init process has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What is stored for a container: the OCI state plus what later commands need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// OCI spec version.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Status when last written; the live one is [`crate::container::Container::status`].
    pub status: Status,
    /// Init process pid as seen from the runtime's pid namespace.
    pub pid: i32,
    /// Absolute bundle path.
    pub bundle: PathBuf,
    /// The spec's annotations.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// Start time of the init process (clock ticks since boot), to detect pid reuse.
    pub init_start_time: u64,
    /// The container's cgroup path.
    pub cgroup_path: PathBuf,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// Owner uid of the runtime that created it.
    pub owner: u32,
    /// The spec's hooks, kept for start and delete, which must not depend on the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The spec's seccomp profile, which exec'd processes get too (whatever the bundle says
    /// by then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// No pid namespace of its own (none, or one joined by path): its processes can
    /// outlive its init, and are killed when it exits or is deleted, as runc does.
    #[serde(default)]
    pub shares_pid_ns: bool,
}

impl State {
    /// The state of container `id` of `bundle` as its create (or restore) begins: status
    /// creating, no pid yet, what the operations after it need from `spec`.
    pub(crate) fn creating(
        id: &str,
        bundle: &Path,
        spec: &oci_spec::runtime::Spec,
        cgroup_path: PathBuf,
    ) -> State {
        let linux = spec.linux().as_ref();
        State {
            oci_version: OCI_VERSION.to_string(),
            id: id.to_string(),
            status: Status::Creating,
            pid: 0,
            bundle: bundle.to_path_buf(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            init_start_time: 0,
            cgroup_path,
            created: now_secs(),
            owner: nix::unistd::geteuid().as_raw(),
            hooks: spec.hooks().clone(),
            seccomp: linux.and_then(|l| l.seccomp().clone()),
            shares_pid_ns: !crate::namespaces::has_private_pid_ns(spec),
        }
    }

    /// The state of a container whose create stopped before it wrote any: only its id.
    pub(crate) fn unfinished(id: &str) -> State {
        State {
            oci_version: OCI_VERSION.to_string(),
            id: id.to_string(),
            status: Status::Creating,
            pid: 0,
            bundle: PathBuf::new(),
            annotations: HashMap::new(),
            init_start_time: 0,
            cgroup_path: PathBuf::new(),
            created: 0,
            owner: 0,
            hooks: None,
            seccomp: None,
            shares_pid_ns: false,
        }
    }

    /// The OCI state document that hooks and `youki state` show.
    pub fn oci_json(&self, status: Status) -> serde_json::Value {
        let mut v = serde_json::json!({
            "ociVersion": self.oci_version,
            "id": self.id,
            "status": status,
            "bundle": self.bundle,
        });
        if status != Status::Stopped && self.pid > 0 {
            v["pid"] = self.pid.into();
        }
        if !self.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.annotations);
        }
        v
    }
}

/// Seconds since the epoch, for `created`.
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A container's state read without its lock.
#[derive(Debug)]
pub(crate) struct Peek {
    /// state.json; `None` if the create that made the directory has not written it.
    pub(crate) state: Option<State>,
    /// Another command holds the lock: a create still at work, or any other command.
    pub(crate) busy: bool,
}

/// Reads `dir`'s state.json; `None` if there is none.
fn read_state(dir: &Path) -> Result<Option<State>, StateError> {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        r => r.map_err(io(&path))?,
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| StateError::Json { path, source })
}

/// A container's directory under the state root, with its lock held while this lives.
#[derive(Debug)]
pub(crate) struct Entry {
    dir: PathBuf,
    id: String,
    lock: Flock<File>,
}

/// The state root (`--root`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store at `root`; nothing is created until a container is.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates and locks the directory of a new container; fails if the id exists.
    pub(crate) fn create(&self, id: &str) -> Result<Entry, StateError> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .map_err(io(&self.root))?;
        let dir = self.root.join(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StateError::AlreadyExists(id.to_string()))
            }
            r => r.map_err(io(&dir))?,
        }
        Self::lock(dir, id)
    }

    /// Opens and locks an existing container's directory.
    pub(crate) fn open(&self, id: &str) -> Result<Entry, StateError> {
        validate_id(id)?;
        let dir = self.root.join(id);
        if !dir.is_dir() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Self::lock(dir, id)
    }

    fn lock(dir: PathBuf, id: &str) -> Result<Entry, StateError> {
        let deadline = Deadline::after(LOCK_TIMEOUT);
        let mut f = File::open(&dir).map_err(io(&dir))?;
        // Never an unbounded wait: a holder that hangs must not hang every later command.
        let lock = loop {
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((back, Errno::EWOULDBLOCK | Errno::EINTR)) => {
                    if deadline.expired() {
                        return Err(StateError::Busy {
                            id: id.to_string(),
                            waited: LOCK_TIMEOUT,
                        });
                    }
                    f = back;
                    std::thread::sleep(LOCK_RETRY);
                }
                Err((_, errno)) => {
                    return Err(StateError::Lock {
                        path: dir.clone(),
                        errno,
                    })
                }
            }
        };
        // The directory may have been removed by a delete that held the lock before us.
        if !dir.is_dir() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(Entry {
            dir,
            id: id.to_string(),
            lock,
        })
    }

    /// Reads a container's state without waiting for its lock, for `state` and `list`,
    /// which must answer while another command (a slow create) works on the container.
    pub(crate) fn peek(&self, id: &str) -> Result<Peek, StateError> {
        validate_id(id)?;
        let dir = self.root.join(id);
        let f = match File::open(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(id.to_string()))
            }
            r => r.map_err(io(&dir))?,
        };
        let busy = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(_released_at_once) => false,
            Err((_, Errno::EWOULDBLOCK)) => true,
            Err((_, errno)) => return Err(StateError::Lock { path: dir, errno }),
        };
        let state = read_state(&dir)?;
        Ok(Peek { state, busy })
    }

    /// Ids of every container in the store, sorted.
    pub(crate) fn ids(&self) -> Result<Vec<String>, StateError> {
        let rd = match fs::read_dir(&self.root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            r => r.map_err(io(&self.root))?,
        };
        let mut ids: Vec<String> = rd
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

impl Entry {
    /// The container's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The container id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The exec fifo's path.
    pub(crate) fn fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// Reads state.json; a container whose create stopped early has none.
    pub(crate) fn load(&self) -> Result<Option<State>, StateError> {
        read_state(&self.dir)
    }

    /// The descriptor that holds the lock. Processes forked while it is held must close
    /// it: the lock belongs to the open file description, which a child shares. A command
    /// that ends normally unlocks it for all (dropping the lock), but one that is killed
    /// does not, and a container's init that kept its copy (waiting for `start`) would
    /// then hold the lock for ever.
    pub(crate) fn lock_fd(&self) -> BorrowedFd<'_> {
        self.lock.as_fd()
    }

    /// Writes state.json atomically (temp file + rename), so readers never see half of it.
    pub(crate) fn save(&self, state: &State) -> Result<(), StateError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(".state.json.tmp");
        let bytes = serde_json::to_vec(state).map_err(|source| StateError::Json {
            path: path.clone(),
            source,
        })?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// Removes the container's directory and everything in it. A mount under it (restore's
    /// bind of the rootfs, left by a runtime killed midway) is detached first: removing
    /// through it would delete the rootfs's files. One that cannot be detached stops the
    /// removal.
    pub(crate) fn remove(self) -> Result<(), StateError> {
        self.detach_mounts()?;
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r.map_err(io(&self.dir)),
        }
    }

    /// Detaches every mount at or under this container's directory, deepest first.
    fn detach_mounts(&self) -> Result<(), StateError> {
        let Ok(dir) = fs::canonicalize(&self.dir) else {
            return Ok(());
        };
        let text = fs::read_to_string(MOUNTINFO).map_err(io(Path::new(MOUNTINFO)))?;
        let mut under: Vec<PathBuf> = crate::mountinfo::parse(&text)
            .into_iter()
            .map(|m| m.mount_point)
            .filter(|p| p.starts_with(&dir))
            .collect();
        under.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in under {
            match nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
                // Gone already (a mount stacked on the same point went with the first).
                Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
                Err(e) => return Err(io(&p)(e.into())),
            }
        }
        Ok(())
    }
}

/// The mount table the state directories are checked against.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// What /proc says about a pid: its start time, and whether it is a zombie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Start time in clock ticks since boot (field 22 of /proc/PID/stat).
    pub(crate) start_time: u64,
    /// State letter (field 3), `Z` for a zombie.
    pub(crate) state: char,
}

/// Parses /proc/PID/stat; `None` if the process does not exist.
pub(crate) fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether the container's init process still exists (same pid, same start time, not a
/// zombie: an exited init whose parent has not reaped it has stopped).
pub(crate) fn init_alive(state: &State) -> bool {
    matches!(proc_stat(state.pid), Some(s) if s.start_time == state.init_start_time && s.state != 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for ok in ["a", "abc-123", "x_y.z+1", "A"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "ü", &"x".repeat(1025)] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn stat_parsing_survives_odd_names() {
        let line = "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.start_time, 987654);
        assert!(proc_stat(std::process::id() as i32).is_some());
    }

    #[test]
    fn create_open_save_load_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("root"));
        let e = store.create("c1").unwrap();
        assert!(e.load().unwrap().is_none());
        let st = State {
            oci_version: OCI_VERSION.into(),
            id: "c1".into(),
            status: Status::Created,
            pid: 1,
            bundle: "/b".into(),
            annotations: HashMap::new(),
            init_start_time: 5,
            cgroup_path: "/youki/c1".into(),
            created: 1,
            owner: 0,
            hooks: None,
            seccomp: None,
            shares_pid_ns: false,
        };
        e.save(&st).unwrap();
        assert_eq!(e.load().unwrap(), Some(st.clone()));
        drop(e);
        assert!(matches!(
            store.create("c1"),
            Err(StateError::AlreadyExists(_))
        ));
        assert_eq!(store.ids().unwrap(), vec!["c1".to_string()]);
        store.open("c1").unwrap().remove().unwrap();
        assert!(matches!(store.open("c1"), Err(StateError::NotFound(_))));
        assert!(matches!(
            store.open("../x"),
            Err(StateError::InvalidId { .. })
        ));
    }

    #[test]
    fn peek_reads_without_the_lock_and_says_whether_it_is_held() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("root"));
        let e = store.create("c1").unwrap();
        let p = store.peek("c1").unwrap();
        assert!(p.busy && p.state.is_none());
        e.save(&State::unfinished("c1")).unwrap();
        assert_eq!(
            store.peek("c1").unwrap().state,
            Some(State::unfinished("c1"))
        );
        drop(e);
        assert!(!store.peek("c1").unwrap().busy);
        // Peeking took the lock for an instant only.
        store.open("c1").unwrap();
        assert!(matches!(store.peek("nope"), Err(StateError::NotFound(_))));
    }

    #[test]
    fn oci_json_has_pid_only_while_alive() {
        let st = State {
            oci_version: OCI_VERSION.into(),
            id: "c".into(),
            status: Status::Running,
            pid: 42,
            bundle: "/b".into(),
            annotations: HashMap::new(),
            init_start_time: 0,
            cgroup_path: "/x".into(),
            created: 0,
            owner: 0,
            hooks: None,
            seccomp: None,
            shares_pid_ns: false,
        };
        assert_eq!(st.oci_json(Status::Running)["pid"], 42);
        assert!(st.oci_json(Status::Stopped).get("pid").is_none());
        assert_eq!(st.oci_json(Status::Running)["status"], "running");
    }
}
