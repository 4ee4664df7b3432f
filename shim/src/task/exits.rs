//! Exits: what the reaper reports, turned into recorded exits, TaskExit events and answered
//! Waits.
//!
//! The reaper calls [`Tasks::on_exit`]. An exit of a known process starts a short-lived
//! thread that waits for the process's output to drain, then records the exit, wakes the
//! Wait calls and queues TaskExit, exactly once, never before the TaskStart (or
//! TaskExecStarted) of a Start that is in progress, and for an init only after its execs'
//! (containerd#9719). An exit of an unknown pid while a create or an exec start is in
//! flight is kept, so that a process that dies before the zygote's reply reaches the
//! server is still reported (see [`Table::claim`]).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::TaskExit;
use containerd_shim_protos::topics::TASK_EXIT_EVENT_TOPIC;

use crate::error::{Kind, Result, ShimError};
use crate::io::Drain;

use super::process::{Exit, ProcId};
use super::table::Table;
use super::{on_container, timestamp, Tasks};

/// How long an exit waits for the process's output to drain before it is reported.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Exits of unknown pids kept while a create or exec is in flight, at most.
const MAX_UNCLAIMED: usize = 4096;
/// Bound on holding an init's TaskExit back for the exits of its reaped execs (they wait
/// for their output at most [`DRAIN_TIMEOUT`]).
const EXECS_FIRST_TIMEOUT: Duration = Duration::from_secs(6);

/// What a Wait gets: the process's exit, or why there is none.
pub type WaitReply = Box<dyn FnOnce(Result<Exit>) + Send>;

/// A Wait RPC waiting for its process's exit.
pub struct PendingWait {
    id: String,
    exec_id: String,
    reply: WaitReply,
}

impl Tasks {
    /// Called by the reaper for every child that exited.
    pub fn on_exit(self: &Arc<Self>, pid: i32, status: u32) {
        // The zygote's: logged, and a new one started (zygote.rs).
        if matches!(&self.zygote, Ok(z) if z.exited(pid, status)) {
            return;
        }
        let at = SystemTime::now();
        let mut t = self.lock();
        if let Some((id, exec_id)) = t.by_pid.get(&pid).cloned() {
            let drain = t.proc_mut(&id, &exec_id).ok().and_then(|p| p.reap(pid));
            if let Some(drain) = drain {
                drop(t);
                self.report_exit(id, exec_id, pid, Exit { status, at }, drain);
            }
            return;
        }
        if t.spawning > 0 && t.unclaimed.len() < MAX_UNCLAIMED {
            t.unclaimed.insert(pid, Exit { status, at });
        } else {
            log::debug!("reaped {pid} (no task), status {status}");
        }
    }

    /// Records the exit once the output has drained, on a thread of its own so that the
    /// reaper goes on reaping.
    pub(super) fn report_exit(
        self: &Arc<Self>,
        id: String,
        exec_id: String,
        pid: i32,
        exit: Exit,
        drain: Arc<Drain>,
    ) {
        let me = self.clone();
        let run = move || me.finish_exit(&id, &exec_id, pid, exit, &drain);
        let spawned = thread::Builder::new()
            .name("exit".into())
            .stack_size(64 * 1024)
            .spawn(run.clone());
        if spawned.is_err() {
            run();
        }
    }

    /// Records the exit of `pid`, process `exec_id` of `id`, and queues its TaskExit: after
    /// its output drained, its Start's event and (for an init) its execs' exits.
    pub(super) fn finish_exit(&self, id: &str, exec_id: &str, pid: i32, exit: Exit, drain: &Drain) {
        let who = ProcId::new(id, exec_id);
        if who.is_init() {
            self.kill_leftovers(id);
        }
        if !drain.wait(DRAIN_TIMEOUT) {
            log::warn!("{who}: output still open {DRAIN_TIMEOUT:?} after its exit");
        }
        if who.is_init() {
            // An OOM kill of init is counted just after the kernel's notification: look
            // once more, so that TaskOOM comes before TaskExit, and before Delete removes
            // the cgroup.
            let oom = self.lock().containers.get(id).and_then(|c| c.oom.clone());
            if let Some(oom) = oom {
                oom.final_check();
                oom.stop();
            }
        }
        let mut t = self.lock();
        let is_starting = |t: &Table| t.proc_(id, exec_id).is_ok_and(|p| p.starting_as(pid));
        while is_starting(&t) {
            t = self.changed.wait(t).unwrap_or_else(|p| p.into_inner());
        }
        if who.is_init() {
            // containerd takes the init's exit as the end of the task and may delete it at
            // once: the exits of its execs go out first (containerd#9719). Every exec is
            // dead by now (with init's pid namespace, or killed by kill_leftovers); their
            // exits are only waiting for the reaper, their output or the lock.
            let execs_pending = |t: &mut Table| {
                t.containers
                    .get(id)
                    .is_some_and(|c| c.execs.values().any(|e| e.proc_.exit_pending()))
            };
            let waited;
            (t, waited) = self
                .changed
                .wait_timeout_while(t, EXECS_FIRST_TIMEOUT, execs_pending)
                .unwrap_or_else(|p| p.into_inner());
            if waited.timed_out() {
                log::warn!("{id}: exec exits still pending {EXECS_FIRST_TIMEOUT:?} after init's");
            }
        }
        if !t
            .proc_mut(id, exec_id)
            .is_ok_and(|p| p.record_exit(pid, exit))
        {
            return;
        }
        self.events.send(
            TASK_EXIT_EVENT_TOPIC,
            &TaskExit {
                container_id: id.to_string(),
                id: if who.is_init() { id } else { exec_id }.to_string(),
                pid: pid as u32,
                exit_status: exit.status,
                exited_at: timestamp(exit.at),
                ..Default::default()
            },
        );
        self.changed.notify_all();
    }

    /// After init's exit, for a container without a pid namespace of its own (a pod sharing
    /// its process namespace, or the host's): SIGKILL whatever is left in its cgroup, as
    /// runc's shim does; children of init would otherwise keep running, and keep its output
    /// open. (With its own pid namespace the kernel has killed them all already.)
    fn kill_leftovers(&self, id: &str) {
        let (bundle, handle) = match self.lock().containers.get(id) {
            // A Delete in progress kills everything itself (and holds the state's lock).
            Some(c) if c.shares_pid_ns && !c.deleting => (c.bundle.clone(), c.handle.clone()),
            _ => return,
        };
        let sigkill = nix::sys::signal::Signal::SIGKILL as i32;
        match on_container(&handle, &bundle, id, |c| c.kill(sigkill, true)) {
            Ok(()) => {}
            Err(e) if Kind::from(&e) == Kind::NotFound => {}
            Err(e) => log::warn!("{id}: killing what is left after init's exit: {e}"),
        }
    }

    /// Waits until the process's exit is recorded, at most `timeout`.
    pub fn wait_exit(&self, id: &str, exec_id: &str, timeout: Option<Duration>) -> Result<Exit> {
        // Until recorded, or until the process is gone from the table (an error below).
        let unrecorded = |t: &mut Table| t.proc_(id, exec_id).is_ok_and(|p| p.exit().is_none());
        let t = self.lock();
        let t = match timeout {
            None => self
                .changed
                .wait_while(t, unrecorded)
                .unwrap_or_else(|p| p.into_inner()),
            Some(d) => {
                self.changed
                    .wait_timeout_while(t, d, unrecorded)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
        t.proc_(id, exec_id)?.exit().ok_or_else(|| {
            ShimError::new(
                Kind::DeadlineExceeded,
                format!("{}: no exit within {timeout:?}", ProcId::new(id, exec_id)),
            )
        })
    }

    /// Calls `reply` with the exit of `exec_id` of `id` once it is recorded: at once if it
    /// is (or there is no such process), else from the one thread that answers every
    /// pending Wait. containerd (CRI) keeps a Wait open on every task of a pod for the
    /// task's life: a thread each would make a pod's shim grow with its containers.
    pub fn wait_deferred(self: &Arc<Self>, id: &str, exec_id: &str, reply: WaitReply) {
        let mut t = self.lock();
        match t.exit_of(id, exec_id) {
            Some(r) => {
                drop(t);
                reply(r);
            }
            None => {
                if let Err(e) = self.start_waits_thread() {
                    drop(t);
                    reply(Err(ShimError::other(format!(
                        "{}: starting the thread that answers waits: {e}",
                        ProcId::new(id, exec_id)
                    ))));
                    return;
                }
                t.waits.push(PendingWait {
                    id: id.to_string(),
                    exec_id: exec_id.to_string(),
                    reply,
                });
                self.changed.notify_all();
            }
        }
    }

    fn start_waits_thread(self: &Arc<Self>) -> std::result::Result<(), String> {
        self.waits_thread
            .get_or_init(|| {
                let tasks = self.clone();
                thread::Builder::new()
                    .name("waits".into())
                    .stack_size(128 * 1024)
                    .spawn(move || tasks.answer_waits())
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// The waits thread: answers each pending Wait when its process's exit is recorded or
    /// the process goes away, woken by every change of the table.
    fn answer_waits(&self) {
        let mut t = self.lock();
        loop {
            let mut ready = Vec::new();
            for w in std::mem::take(&mut t.waits) {
                match t.exit_of(&w.id, &w.exec_id) {
                    Some(r) => ready.push((w.reply, r)),
                    None => t.waits.push(w),
                }
            }
            if ready.is_empty() {
                t = self.changed.wait(t).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Answered without the lock: writing to containerd may block.
            drop(t);
            for (reply, r) in ready {
                reply(r);
            }
            t = self.lock();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use containerd_shim_protos::events::task::{TaskCreate, TaskStart};
    use containerd_shim_protos::topics::TASK_START_EVENT_TOPIC;

    use super::*;
    use crate::task::testing::{container, exit_of, register, tasks, wait10};

    #[test]
    fn an_exit_is_recorded_and_published_once() {
        let (s, rec) = tasks();
        register(&s, "c1", 100, Arc::default());
        s.on_exit(100, 3);
        s.on_exit(100, 3);
        assert_eq!(wait10(&s, "c1", "").unwrap().status, 3);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(rec.wait_for(2), ["TaskCreate", "TaskExit"]);
    }

    #[test]
    fn an_init_that_dies_before_create_returns_is_still_reported() {
        let (s, rec) = tasks();
        s.lock().begin_create("c2").unwrap();
        // The reaper sees the pid before the zygote's reply made it known.
        s.on_exit(200, 137);
        assert!(s.lock().unclaimed.contains_key(&200));
        s.register("c2", container(200, Arc::default()), TaskCreate::default());
        assert_eq!(exit_of(&s, "c2", ""), Some(137));
        assert!(s.lock().unclaimed.is_empty());
        assert_eq!(rec.wait_for(2), ["TaskCreate", "TaskExit"]);
        // Reaped already: a second exit for the pid is not another TaskExit.
        s.on_exit(200, 137);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(rec.events().len(), 2);
    }

    #[test]
    fn unknown_exits_are_not_kept_when_nothing_is_being_created() {
        let (s, _rec) = tasks();
        s.on_exit(4242, 0);
        assert!(s.lock().unclaimed.is_empty());
    }

    #[test]
    fn an_exit_during_start_comes_after_task_start() {
        let (s, rec) = tasks();
        register(&s, "c3", 300, Arc::default());
        s.lock()
            .container_mut("c3")
            .unwrap()
            .begin_start("c3")
            .unwrap();
        s.on_exit(300, 0);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            exit_of(&s, "c3", ""),
            None,
            "exit recorded while Start is in progress"
        );
        // Start finishes as Tasks::start does.
        {
            let mut t = s.lock();
            t.container_mut("c3").unwrap().init.start_succeeded();
            s.events.send(TASK_START_EVENT_TOPIC, &TaskStart::default());
            s.changed.notify_all();
        }
        assert_eq!(wait10(&s, "c3", "").unwrap().status, 0);
        assert_eq!(rec.wait_for(3), ["TaskCreate", "TaskStart", "TaskExit"]);
    }

    #[test]
    fn wait_before_start_returns_at_the_exit() {
        let (s, _rec) = tasks();
        register(&s, "c4", 400, Arc::default());
        let s2 = s.clone();
        let waiter = thread::spawn(move || s2.wait_exit("c4", "", None));
        thread::sleep(Duration::from_millis(50));
        assert!(!waiter.is_finished());
        s.on_exit(400, 9);
        assert_eq!(waiter.join().unwrap().unwrap().status, 9);
        let e = s.wait_exit("nope", "", None).unwrap_err();
        assert_eq!(e.kind, Kind::NotFound);
        let e = s.wait_exit("c4", "nope", None).unwrap_err();
        assert_eq!(e.kind, Kind::NotFound);
    }

    #[test]
    fn a_deferred_wait_is_answered_at_the_exit_by_one_thread() {
        let (s, _rec) = tasks();
        let (tx, rx) = std::sync::mpsc::channel();
        for (id, pid) in [("c4a", 410), ("c4b", 420)] {
            register(&s, id, pid, Arc::default());
            let tx = tx.clone();
            let key = id.to_string();
            s.wait_deferred(id, "", Box::new(move |r| tx.send((key, r)).unwrap()));
        }
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        assert_eq!(s.lock().waits.len(), 2);
        s.on_exit(420, 7);
        let (id, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((id.as_str(), r.unwrap().status), ("c4b", 7));
        s.on_exit(410, 8);
        let (id, r) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!((id.as_str(), r.unwrap().status), ("c4a", 8));
        assert!(s.lock().waits.is_empty());
        // Known already, or never to be: answered at once, on the caller's thread.
        let answer = |id: &str, exec_id: &str| {
            let got = Arc::new(Mutex::new(None));
            let g = got.clone();
            s.wait_deferred(id, exec_id, Box::new(move |r| *g.lock().unwrap() = Some(r)));
            let r = got.lock().unwrap().take();
            r.expect("answered at once")
        };
        assert_eq!(answer("c4a", "").unwrap().status, 8);
        assert_eq!(answer("nope", "").unwrap_err().kind, Kind::NotFound);
        assert_eq!(answer("c4a", "nope").unwrap_err().kind, Kind::NotFound);
    }

    #[test]
    fn the_exit_waits_for_the_output_to_drain() {
        let (s, rec) = tasks();
        let drain = Arc::new(Drain::default());
        drain.add();
        register(&s, "c5", 500, drain.clone());
        s.on_exit(500, 0);
        thread::sleep(Duration::from_millis(100));
        assert_eq!(
            exit_of(&s, "c5", ""),
            None,
            "exit recorded before the output drained"
        );
        drain.finish();
        assert_eq!(wait10(&s, "c5", "").unwrap().status, 0);
        assert_eq!(rec.wait_for(2), ["TaskCreate", "TaskExit"]);
    }
}
