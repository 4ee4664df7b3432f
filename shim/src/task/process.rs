//! One process of a task, its init or an exec, and its life:
//!
//! ```text
//! created --Start--> starting --> running --reaped--> exited --recorded--> stopped
//!              \________(Start failed)__/
//! ```
//!
//! and deleted when its task (or, for an exec, Delete with its exec id) removes it from the
//! table (table.rs). The reaper may see the process exit in any state after it has a pid:
//! an init killed while created, or dying during its Start. The exit is *reaped* when the
//! reaper saw it, *recorded* (the process is stopped) when its TaskExit is queued, after
//! its output drained (exits.rs).
//!
//! Each transition is a method that refuses what the state does not allow, with the kind
//! containerd expects (FailedPrecondition, NotFound), so that the operations ask the
//! process what it may do instead of reading its flags.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use containerd_shim_protos::types::task::Status;

use crate::error::{Result, ShimError};
use crate::io::process::ProcIo;
use crate::io::tty::Console;
use crate::io::{Drain, StdioPaths};

/// Which process: the init of task `id` (no `exec_id`) or one of its execs. Displayed as
/// messages name it: `task ID` or `exec EXEC_ID of task ID`.
#[derive(Debug, Clone, Copy)]
pub struct ProcId<'a> {
    /// The task (container) id.
    pub id: &'a str,
    /// The exec id; empty for the init.
    pub exec_id: &'a str,
}

impl<'a> ProcId<'a> {
    /// The process `exec_id` of task `id`; an empty `exec_id` is the init.
    pub fn new(id: &'a str, exec_id: &'a str) -> ProcId<'a> {
        ProcId { id, exec_id }
    }

    /// The init of task `id`.
    pub fn init(id: &'a str) -> ProcId<'a> {
        ProcId { id, exec_id: "" }
    }

    /// Whether this is a task's init.
    pub fn is_init(&self) -> bool {
        self.exec_id.is_empty()
    }
}

impl fmt::Display for ProcId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_init() {
            write!(f, "task {}", self.id)
        } else {
            write!(f, "exec {} of task {}", self.exec_id, self.id)
        }
    }
}

/// How far a Start has taken the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Running,
}

/// A recorded exit.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// The wait status as containerd wants it (128 + signal for a signalled process).
    pub status: u32,
    /// When the reaper saw it.
    pub at: SystemTime,
}

/// A process of a task: its init, or an exec.
pub struct Proc {
    /// 0 until an exec is started.
    pid: i32,
    phase: Phase,
    /// A Start is in progress: its TaskStart (TaskExecStarted) must go out before any
    /// TaskExit.
    starting: bool,
    /// The reaper has seen the process exit (the exit may still wait for the output).
    reaped: bool,
    /// The recorded exit: TaskExit has been queued.
    exit: Option<Exit>,
    stdio: StdioPaths,
    terminal: bool,
    drain: Arc<Drain>,
    /// The shim's side of the I/O; none for an exec not started.
    io: Option<ProcIo>,
    /// CloseIO came before the process existed.
    stdin_closed: bool,
}

impl Proc {
    /// A created process: an init with its pid, or an exec (pid 0) not started yet.
    pub fn new(pid: i32, stdio: StdioPaths, terminal: bool) -> Proc {
        Proc {
            pid,
            phase: Phase::Created,
            starting: false,
            reaped: false,
            exit: None,
            stdio,
            terminal,
            drain: Arc::default(),
            io: None,
            stdin_closed: false,
        }
    }

    /// The process with the shim's side of its I/O (an init, created with it).
    pub fn with_io(mut self, io: ProcIo) -> Proc {
        self.drain = io.drain.clone();
        self.io = Some(io);
        self
    }

    /// Its pid; 0 for an exec not started.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Its recorded exit, once it is stopped.
    pub fn exit(&self) -> Option<Exit> {
        self.exit
    }

    /// The reaper has seen it exit (its exit may not be recorded yet).
    pub fn reaped(&self) -> bool {
        self.reaped
    }

    /// Exited (the exit may not be recorded yet).
    pub fn gone(&self) -> bool {
        self.reaped || self.exit.is_some()
    }

    /// A Start of it succeeded.
    pub fn started(&self) -> bool {
        self.phase == Phase::Running
    }

    /// A Start of `pid` is in progress: its exit must wait for the Start's event.
    pub fn starting_as(&self, pid: i32) -> bool {
        self.pid == pid && self.starting
    }

    /// Started, and its exit not recorded yet.
    pub fn exit_pending(&self) -> bool {
        self.pid != 0 && self.exit.is_none()
    }

    /// The fifos or files its stdio goes to, as containerd named them.
    pub fn stdio(&self) -> &StdioPaths {
        &self.stdio
    }

    /// It has a terminal.
    pub fn terminal(&self) -> bool {
        self.terminal
    }

    /// CloseIO came before it had any I/O to close.
    pub fn stdin_closed(&self) -> bool {
        self.stdin_closed
    }

    /// What says that its output has drained.
    pub fn drain(&self) -> Arc<Drain> {
        self.drain.clone()
    }

    /// Its terminal, if it has one.
    pub fn console(&self) -> Option<Console> {
        self.io.as_ref().and_then(|io| io.console.clone())
    }

    /// The status containerd's State reports; `paused` is the task's.
    pub fn status(&self, paused: bool) -> Status {
        match (self.exit, self.phase, self.pid) {
            (Some(_), _, _) => Status::STOPPED,
            (None, Phase::Created, _) | (None, _, 0) => Status::CREATED,
            (None, Phase::Running, _) if paused => Status::PAUSED,
            (None, Phase::Running, _) => Status::RUNNING,
        }
    }

    /// created -> starting: a Start begins. Refused for a process that exited, was started
    /// or is being started.
    pub fn begin_start(&mut self, who: ProcId) -> Result<()> {
        if who.is_init() {
            if self.gone() {
                return Err(ShimError::precondition(format!("{who} has exited")));
            }
            if self.phase != Phase::Created || self.starting {
                return Err(not_created(who));
            }
        } else if self.phase != Phase::Created || self.starting || self.gone() {
            return Err(ShimError::precondition(format!(
                "{who} was started already"
            )));
        }
        self.starting = true;
        Ok(())
    }

    /// starting -> running: the init's Start succeeded.
    pub fn start_succeeded(&mut self) {
        self.starting = false;
        self.phase = Phase::Running;
    }

    /// starting -> created: the Start failed.
    pub fn start_failed(&mut self) {
        self.starting = false;
    }

    /// starting -> running: the exec runs as `pid` with `io`; `reaped` if the reaper saw
    /// it exit already (before the zygote's reply).
    pub fn exec_started(&mut self, pid: i32, io: ProcIo, reaped: bool) {
        self.pid = pid;
        self.phase = Phase::Running;
        self.starting = false;
        self.drain = io.drain.clone();
        // A CloseIO that came while the exec was starting found no I/O to close (ctr sends
        // it as soon as its input ends, which can be during Start).
        if self.stdin_closed {
            io.close_stdin();
        }
        self.io = Some(io);
        self.reaped = reaped;
    }

    /// -> exited: the reaper saw `pid` exit. Returns what to wait on before recording the
    /// exit, or None if `pid` is not this process or its exit was seen already.
    pub fn reap(&mut self, pid: i32) -> Option<Arc<Drain>> {
        if self.pid != pid || self.reaped {
            return None;
        }
        self.reaped = true;
        Some(self.drain.clone())
    }

    /// exited -> stopped: records the exit of `pid`; false if `pid` is not this process or
    /// an exit is recorded already (TaskExit goes out once).
    pub fn record_exit(&mut self, pid: i32, exit: Exit) -> bool {
        if self.pid != pid || self.exit.is_some() {
            return false;
        }
        self.exit = Some(exit);
        true
    }

    /// Whether Delete may remove it: refused while it runs, or while a Start of a live
    /// process is in progress.
    pub fn check_deletable(&self, who: ProcId) -> Result<()> {
        let running = self.phase == Phase::Running && !self.gone();
        if running || (self.starting && !self.reaped) {
            return Err(ShimError::precondition(format!(
                "{who} is running: kill it before deleting it"
            )));
        }
        Ok(())
    }

    /// The pid Kill signals: NotFound once it exited, FailedPrecondition before it was
    /// started.
    pub fn signal_target(&self, who: ProcId) -> Result<i32> {
        if self.gone() {
            return Err(finished(who));
        }
        if self.pid == 0 {
            return Err(ShimError::precondition(format!(
                "{who} has not been started"
            )));
        }
        Ok(self.pid)
    }

    /// CloseIO of its stdin: now, or as soon as it has I/O.
    pub fn close_stdin(&mut self) {
        self.stdin_closed = true;
        if let Some(io) = &self.io {
            io.close_stdin();
        }
    }
}

/// An exec process with the OCI process it runs.
pub struct ExecProc {
    /// Its life.
    pub proc_: Proc,
    /// What it runs, as Exec sent it.
    pub spec: oci_spec::runtime::Process,
}

/// FailedPrecondition: a Start of what is not created.
pub fn not_created(who: ProcId) -> ShimError {
    ShimError::precondition(format!("{who} is not in the created state"))
}

/// NotFound, as containerd expects for a signal to a process that exited.
pub fn finished(who: ProcId) -> ShimError {
    ShimError::not_found(format!("{who}: process already finished"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    const INIT: ProcId = ProcId {
        id: "t",
        exec_id: "",
    };
    const EXEC: ProcId = ProcId {
        id: "t",
        exec_id: "e",
    };

    fn exit(status: u32) -> Exit {
        Exit {
            status,
            at: SystemTime::now(),
        }
    }

    fn init(pid: i32) -> Proc {
        Proc::new(pid, StdioPaths::default(), false)
    }

    fn running_init(pid: i32) -> Proc {
        let mut p = init(pid);
        p.begin_start(INIT).unwrap();
        p.start_succeeded();
        p
    }

    fn running_exec(pid: i32) -> Proc {
        let mut p = init(0);
        p.begin_start(EXEC).unwrap();
        p.exec_started(pid, ProcIo::none(Arc::default()), false);
        p
    }

    fn kind<T>(r: Result<T>) -> Kind {
        r.err().expect("refused").kind
    }

    #[test]
    fn names_say_which_process() {
        assert_eq!(INIT.to_string(), "task t");
        assert_eq!(EXEC.to_string(), "exec e of task t");
    }

    #[test]
    fn a_process_goes_from_created_to_stopped() {
        let mut p = init(10);
        assert_eq!(p.status(false), Status::CREATED);
        p.begin_start(INIT).unwrap();
        assert_eq!(p.status(false), Status::CREATED);
        assert!(p.starting_as(10) && !p.starting_as(11));
        p.start_succeeded();
        assert_eq!(p.status(false), Status::RUNNING);
        assert_eq!(p.status(true), Status::PAUSED);
        assert!(p.reap(11).is_none(), "another pid's exit");
        assert!(p.reap(10).is_some());
        assert!(p.reap(10).is_none(), "an exit is seen once");
        assert!(p.gone());
        // Reaped, output draining: still running for State until the exit is recorded.
        assert_eq!(p.status(false), Status::RUNNING);
        assert!(p.record_exit(10, exit(3)));
        assert!(!p.record_exit(10, exit(4)), "an exit is recorded once");
        assert_eq!(p.status(false), Status::STOPPED);
        assert_eq!(p.exit().unwrap().status, 3);
    }

    #[test]
    fn start_is_refused_unless_created() {
        let mut p = running_init(10);
        assert_eq!(kind(p.begin_start(INIT)), Kind::FailedPrecondition);
        let mut p = init(10);
        p.begin_start(INIT).unwrap();
        assert_eq!(
            kind(p.begin_start(INIT)),
            Kind::FailedPrecondition,
            "a second Start while one is in progress"
        );
        // A failed Start leaves it created: it may be started again.
        p.start_failed();
        p.begin_start(INIT).unwrap();
        // A stopped process is not started.
        let mut p = init(10);
        p.reap(10);
        assert_eq!(kind(p.begin_start(INIT)), Kind::FailedPrecondition);
        p.record_exit(10, exit(0));
        assert_eq!(kind(p.begin_start(INIT)), Kind::FailedPrecondition);
        let mut e = running_exec(11);
        assert_eq!(kind(e.begin_start(EXEC)), Kind::FailedPrecondition);
        e.reap(11);
        assert_eq!(kind(e.begin_start(EXEC)), Kind::FailedPrecondition);
    }

    #[test]
    fn delete_is_refused_while_it_runs() {
        assert!(init(10).check_deletable(INIT).is_ok(), "a created init");
        let mut p = running_init(10);
        assert_eq!(kind(p.check_deletable(INIT)), Kind::FailedPrecondition);
        // Reaped: deletable while its output drains (Delete waits for the exit).
        p.reap(10);
        assert!(p.check_deletable(INIT).is_ok());
        // A Start in progress: refused, unless its process died meanwhile.
        let mut p = init(10);
        p.begin_start(INIT).unwrap();
        assert_eq!(kind(p.check_deletable(INIT)), Kind::FailedPrecondition);
        p.reap(10);
        assert!(p.check_deletable(INIT).is_ok());
        let mut e = init(0);
        assert!(e.check_deletable(EXEC).is_ok(), "an exec never started");
        e.begin_start(EXEC).unwrap();
        assert_eq!(kind(e.check_deletable(EXEC)), Kind::FailedPrecondition);
        let mut e = running_exec(11);
        assert_eq!(kind(e.check_deletable(EXEC)), Kind::FailedPrecondition);
        e.reap(11);
        e.record_exit(11, exit(0));
        assert!(e.check_deletable(EXEC).is_ok());
    }

    #[test]
    fn only_a_live_started_process_is_signalled() {
        assert_eq!(kind(init(0).signal_target(EXEC)), Kind::FailedPrecondition);
        assert_eq!(init(10).signal_target(INIT).unwrap(), 10, "a created init");
        let mut e = running_exec(11);
        assert_eq!(e.signal_target(EXEC).unwrap(), 11);
        e.reap(11);
        assert_eq!(kind(e.signal_target(EXEC)), Kind::NotFound);
    }

    #[test]
    fn an_exec_reaped_before_its_start_returned_is_exited() {
        let mut e = init(0);
        e.begin_start(EXEC).unwrap();
        e.exec_started(12, ProcIo::none(Arc::default()), true);
        assert!(e.gone() && e.exit_pending());
        assert!(e.reap(12).is_none(), "reaped already");
        assert!(e.record_exit(12, exit(1)));
        assert!(!e.exit_pending());
    }

    #[test]
    fn close_io_before_the_process_has_io_is_remembered() {
        let mut e = init(0);
        e.close_stdin();
        assert!(e.stdin_closed());
    }
}
