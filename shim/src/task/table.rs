//! The task table: every task (a container, its init and its execs) the shim serves, by
//! id and by pid, and the bookkeeping that exits (exits.rs) need while something spawns.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::{Kind, Result, ShimError};
use crate::oom::Oom;

use super::exits::PendingWait;
use super::process::{not_created, ExecProc, Exit, Proc, ProcId};

/// A task: one container with its init process and its exec processes.
pub struct Container {
    /// The bundle containerd gave at Create.
    pub bundle: PathBuf,
    /// A Delete is in progress.
    pub deleting: bool,
    /// The shim mounted the rootfs (Create's mounts): Delete unmounts it.
    pub rootfs_mounted: bool,
    /// Frozen by Pause.
    pub paused: bool,
    /// No pid namespace of its own: what outlives init is killed when init exits.
    pub shares_pid_ns: bool,
    /// Restored from a checkpoint at Create: its init runs already, Start only says so.
    pub restored: bool,
    /// The uid and gid that own its fifos (the io_uid, io_gid runc options).
    pub io_owner: Option<(u32, u32)>,
    /// Its init process.
    pub init: Proc,
    /// Its exec processes, by exec id.
    pub execs: HashMap<String, ExecProc>,
    /// Its OOM watch, if it could be watched.
    pub oom: Option<Oom>,
    /// Its runtime-core handle, opened by the server's first operation on it and kept
    /// (see [`super::on_container`]).
    pub handle: Arc<Mutex<Option<runtime_core::container::Container>>>,
}

impl Container {
    /// A created container whose init is `init`.
    pub fn new(bundle: PathBuf, init: Proc, rootfs_mounted: bool) -> Container {
        Container {
            bundle,
            deleting: false,
            rootfs_mounted,
            paused: false,
            shares_pid_ns: false,
            restored: false,
            io_owner: None,
            init,
            execs: HashMap::new(),
            oom: None,
            handle: Arc::default(),
        }
    }

    /// The process `exec_id` of task `id` (empty: the init).
    pub fn proc_(&self, id: &str, exec_id: &str) -> Result<&Proc> {
        if exec_id.is_empty() {
            return Ok(&self.init);
        }
        self.execs
            .get(exec_id)
            .map(|e| &e.proc_)
            .ok_or_else(|| exec_not_found(id, exec_id))
    }

    /// The process `exec_id` of task `id` (empty: the init), to change.
    pub fn proc_mut(&mut self, id: &str, exec_id: &str) -> Result<&mut Proc> {
        if exec_id.is_empty() {
            return Ok(&mut self.init);
        }
        self.execs
            .get_mut(exec_id)
            .map(|e| &mut e.proc_)
            .ok_or_else(|| exec_not_found(id, exec_id))
    }

    /// Refuses what needs a live task (exec, pause, update, stats, checkpoint): its init
    /// exited, or a Delete is in progress.
    pub fn check_live(&self, id: &str) -> Result<()> {
        if self.init.gone() || self.deleting {
            return Err(ShimError::precondition(format!("task {id} has exited")));
        }
        Ok(())
    }

    /// Starts the Start of the init (process.rs), unless a Delete is in progress.
    pub fn begin_start(&mut self, id: &str) -> Result<()> {
        let who = ProcId::init(id);
        if self.deleting && !self.init.gone() {
            return Err(not_created(who));
        }
        self.init.begin_start(who)
    }

    /// Starts the Start of exec `exec_id`: refused in a task that exited, is being deleted
    /// or is paused (a process cannot join a frozen cgroup: it would block there).
    pub fn begin_exec_start(&mut self, id: &str, exec_id: &str) -> Result<&ExecProc> {
        self.check_live(id)?;
        if self.paused {
            return Err(ShimError::precondition(format!("task {id} is paused")));
        }
        let e = self
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| exec_not_found(id, exec_id))?;
        e.proc_.begin_start(ProcId::new(id, exec_id))?;
        Ok(e)
    }

    /// Adds exec `exec_id`, created: refused in a task that exited or is being deleted, and
    /// for an exec id taken already.
    pub fn add_exec(&mut self, id: &str, exec_id: &str, exec: ExecProc) -> Result<()> {
        self.check_live(id)?;
        if self.execs.contains_key(exec_id) {
            return Err(ShimError::new(
                Kind::AlreadyExists,
                format!("exec {exec_id} already exists in task {id}"),
            ));
        }
        self.execs.insert(exec_id.to_string(), exec);
        Ok(())
    }

    /// Marks the task as being deleted: refused while a Delete is in progress already, or
    /// while its init runs.
    pub fn begin_delete(&mut self, id: &str) -> Result<()> {
        if self.deleting {
            return Err(ShimError::precondition(format!(
                "task {id} is being deleted"
            )));
        }
        self.init.check_deletable(ProcId::init(id))?;
        self.deleting = true;
        Ok(())
    }

    /// The pids of its processes that were started.
    fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        std::iter::once(self.init.pid())
            .chain(self.execs.values().map(|e| e.proc_.pid()))
            .filter(|p| *p != 0)
    }
}

/// NotFound: no task `id`.
pub fn task_not_found(id: &str) -> ShimError {
    ShimError::not_found(format!("task {id} not found"))
}

/// NotFound: no exec `exec_id` in task `id`.
pub fn exec_not_found(id: &str, exec_id: &str) -> ShimError {
    ShimError::not_found(format!("exec {exec_id} not found in task {id}"))
}

/// Every task, and what exits need to find theirs.
#[derive(Default)]
pub struct Table {
    /// The tasks, by id.
    pub containers: HashMap<String, Container>,
    /// pid -> (task id, exec id; empty for init).
    pub by_pid: HashMap<i32, (String, String)>,
    /// Ids whose Create is in flight.
    pub creating: HashSet<String>,
    /// Creates and exec starts in flight: exits of unknown pids are kept meanwhile.
    pub spawning: usize,
    /// Exits of pids not (yet) known, kept while something is spawning.
    pub unclaimed: HashMap<i32, Exit>,
    /// Wait RPCs whose process has not exited yet (exits.rs).
    pub waits: Vec<PendingWait>,
}

impl Table {
    /// Task `id`, or NotFound.
    pub fn container(&self, id: &str) -> Result<&Container> {
        self.containers.get(id).ok_or_else(|| task_not_found(id))
    }

    /// Task `id` to change, or NotFound.
    pub fn container_mut(&mut self, id: &str) -> Result<&mut Container> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| task_not_found(id))
    }

    /// The process `exec_id` of task `id` (empty: the init), or NotFound.
    pub fn proc_(&self, id: &str, exec_id: &str) -> Result<&Proc> {
        self.container(id)?.proc_(id, exec_id)
    }

    /// The process `exec_id` of task `id` to change, or NotFound.
    pub fn proc_mut(&mut self, id: &str, exec_id: &str) -> Result<&mut Proc> {
        self.container_mut(id)?.proc_mut(id, exec_id)
    }

    /// The exit of `exec_id` of `id` if it is recorded, or why it never will be; None while
    /// the process runs.
    pub fn exit_of(&self, id: &str, exec_id: &str) -> Option<Result<Exit>> {
        match self.proc_(id, exec_id) {
            Ok(p) => p.exit().map(Ok),
            Err(e) => Some(Err(e)),
        }
    }

    /// Refuses a Create of `id` while it exists or is being created; else marks it as
    /// being created.
    pub fn begin_create(&mut self, id: &str) -> Result<()> {
        if self.containers.contains_key(id) || self.creating.contains(id) {
            return Err(ShimError::new(
                Kind::AlreadyExists,
                format!("task {id} already exists"),
            ));
        }
        self.creating.insert(id.to_string());
        self.begin_spawn();
        Ok(())
    }

    /// Ends the Create of `id`, which failed.
    pub fn create_failed(&mut self, id: &str) {
        self.creating.remove(id);
        self.end_spawn();
    }

    /// Ends the Create of `id` with its container: from here on the exits of its init are
    /// its own. Returns (and marks as reaped) the exit of init that the reaper saw before,
    /// if any.
    pub fn insert(&mut self, id: &str, container: Container) -> Option<Exit> {
        let pid = container.init.pid();
        self.creating.remove(id);
        self.end_spawn();
        self.containers.insert(id.to_string(), container);
        self.by_pid.insert(pid, (id.to_string(), String::new()));
        let early = self.claim(pid);
        if let Some(c) = early.and_then(|_| self.containers.get_mut(id)) {
            c.init.reap(pid);
        }
        early
    }

    /// Removes task `id` (Delete) and forgets its pids.
    pub fn remove(&mut self, id: &str) -> Option<Container> {
        let c = self.containers.remove(id)?;
        for p in c.pids() {
            if self.by_pid.get(&p).is_some_and(|(i, _)| i == id) {
                self.by_pid.remove(&p);
            }
        }
        Some(c)
    }

    /// Removes exec `exec_id` of task `id` (its Delete) and forgets its pid.
    pub fn remove_exec(&mut self, id: &str, exec_id: &str) -> Result<ExecProc> {
        let e = self
            .container_mut(id)?
            .execs
            .remove(exec_id)
            .ok_or_else(|| exec_not_found(id, exec_id))?;
        let pid = e.proc_.pid();
        if pid != 0 && self.by_pid.get(&pid).is_some_and(|(_, x)| x == exec_id) {
            self.by_pid.remove(&pid);
        }
        Ok(e)
    }

    /// A create or an exec start begins: exits of unknown pids are kept until it ends.
    pub fn begin_spawn(&mut self) {
        self.spawning += 1;
        if self.spawning == 1 {
            // Nothing that exited before this spawn began can be its process.
            self.unclaimed.clear();
        }
    }

    /// A create or an exec start ended.
    pub fn end_spawn(&mut self) {
        self.spawning = self.spawning.saturating_sub(1);
    }

    /// The exit of `pid` the reaper saw before `pid` was known, if any.
    pub fn claim(&mut self, pid: i32) -> Option<Exit> {
        self.unclaimed.remove(&pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::process::ProcIo;
    use crate::io::StdioPaths;

    fn created(pid: i32) -> Container {
        let init = Proc::new(pid, StdioPaths::default(), false);
        Container::new("/b".into(), init, false)
    }

    fn running(pid: i32) -> Container {
        let mut c = created(pid);
        c.begin_start("t").unwrap();
        c.init.start_succeeded();
        c
    }

    fn exec() -> ExecProc {
        ExecProc {
            proc_: Proc::new(0, StdioPaths::default(), false),
            spec: Default::default(),
        }
    }

    fn kind<T>(r: Result<T>) -> Kind {
        r.err().expect("refused").kind
    }

    #[test]
    fn a_task_starts_once_and_only_while_created() {
        assert!(created(1).begin_start("t").is_ok());
        assert_eq!(kind(running(1).begin_start("t")), Kind::FailedPrecondition);
        let mut stopped = created(1);
        stopped.init.reap(1);
        assert_eq!(kind(stopped.begin_start("t")), Kind::FailedPrecondition);
        let mut deleting = created(1);
        deleting.begin_delete("t").unwrap();
        assert_eq!(kind(deleting.begin_start("t")), Kind::FailedPrecondition);
    }

    #[test]
    fn delete_of_a_running_task_is_refused() {
        let mut c = running(1);
        assert_eq!(kind(c.begin_delete("t")), Kind::FailedPrecondition);
        assert!(!c.deleting);
        c.init.reap(1);
        c.begin_delete("t").unwrap();
        assert_eq!(
            kind(c.begin_delete("t")),
            Kind::FailedPrecondition,
            "a second Delete while one is in progress"
        );
        // A created task is deleted (the delete kills its init).
        assert!(created(1).begin_delete("t").is_ok());
    }

    #[test]
    fn execs_are_added_to_and_started_in_a_live_task_only() {
        let mut c = running(1);
        c.add_exec("t", "e1", exec()).unwrap();
        assert_eq!(kind(c.add_exec("t", "e1", exec())), Kind::AlreadyExists);
        assert_eq!(kind(c.begin_exec_start("t", "nope")), Kind::NotFound);
        c.paused = true;
        assert_eq!(
            kind(c.begin_exec_start("t", "e1")),
            Kind::FailedPrecondition
        );
        c.paused = false;
        c.begin_exec_start("t", "e1").unwrap();
        assert_eq!(
            kind(c.begin_exec_start("t", "e1")),
            Kind::FailedPrecondition,
            "started twice"
        );
        c.init.reap(1);
        assert_eq!(
            kind(c.add_exec("t", "e2", exec())),
            Kind::FailedPrecondition
        );
        let mut deleting = created(1);
        deleting.add_exec("t", "e1", exec()).unwrap();
        deleting.begin_delete("t").unwrap();
        assert_eq!(
            kind(deleting.begin_exec_start("t", "e1")),
            Kind::FailedPrecondition
        );
    }

    #[test]
    fn the_table_finds_processes_by_pid_until_they_are_deleted() {
        let mut t = Table::default();
        t.begin_create("t").unwrap();
        assert_eq!(kind(t.begin_create("t")), Kind::AlreadyExists);
        assert!(t.insert("t", running(1)).is_none());
        assert_eq!(kind(t.begin_create("t")), Kind::AlreadyExists);
        assert_eq!(t.spawning, 0);
        let c = t.container_mut("t").unwrap();
        c.add_exec("t", "e1", exec()).unwrap();
        c.begin_exec_start("t", "e1").unwrap();
        t.proc_mut("t", "e1")
            .unwrap()
            .exec_started(2, ProcIo::none(Default::default()), false);
        t.by_pid.insert(2, ("t".into(), "e1".into()));
        assert_eq!(kind(t.proc_("t", "nope")), Kind::NotFound);
        assert_eq!(kind(t.proc_("nope", "")), Kind::NotFound);
        assert_eq!(t.remove_exec("t", "e1").unwrap().proc_.pid(), 2);
        assert!(!t.by_pid.contains_key(&2));
        assert!(t.remove("t").is_some());
        assert!(t.by_pid.is_empty() && t.containers.is_empty());
    }

    #[test]
    fn an_exit_seen_before_create_returned_is_claimed_by_its_init() {
        let mut t = Table::default();
        t.begin_create("t").unwrap();
        t.unclaimed.insert(
            1,
            Exit {
                status: 137,
                at: std::time::SystemTime::now(),
            },
        );
        assert_eq!(t.insert("t", created(1)).unwrap().status, 137);
        assert!(t.proc_("t", "").unwrap().reaped());
        assert!(t.unclaimed.is_empty());
    }
}
