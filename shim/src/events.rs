//! Events to containerd (TaskCreate, TaskStart, TaskExit, TaskDelete, TaskExecAdded,
//! TaskExecStarted, TaskPaused, TaskResumed, TaskOOM), published in the
//! order they were queued by one thread, so that a slow containerd never blocks an RPC or
//! the reaper, and a TaskExit can never overtake the TaskStart queued before it. The
//! thread lives only while there are events: it ends [`LINGER`] after the last one, with
//! its connection, and the next event starts another (an idle shim has no events thread;
//! issue 14). A thread ends only with its queue empty, under the lock senders take, so
//! two never publish at once.
//!
//! Events are encoded when queued, with their type name given explicitly: the generated
//! encoders need no protobuf reflection, whose descriptor tables (built on first use by
//! the crate's own publisher) would cost the shim a few hundred kB of heap for good.

use std::os::fd::RawFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::ttrpc::context::Context;
use containerd_shim_protos::ttrpc::Client;
use containerd_shim_protos::EventsClient;
use runtime_core::deadline::Deadline;

/// How long one event is retried before it is given up (and logged): long enough for
/// containerd to restart (an upgrade), so that an exit while it was away still reaches
/// it. The Go shim retries for about 15 s.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// First pause between attempts; it doubles up to [`MAX_RETRY_PAUSE`].
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest pause between attempts.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Bound on one forward call to containerd.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the publishing thread waits for another event before it ends: the events of
/// one operation (TaskExit, then TaskDelete) share a thread and a connection.
const LINGER: Duration = Duration::from_millis(500);

/// An event message and the name containerd knows its type by.
pub trait Event: Message {
    /// The protobuf full name, which containerd's typeurl uses as the Any's type URL.
    const TYPE_NAME: &'static str;
}

impl Event for TaskCreate {
    const TYPE_NAME: &'static str = "containerd.events.TaskCreate";
}
impl Event for TaskStart {
    const TYPE_NAME: &'static str = "containerd.events.TaskStart";
}
impl Event for TaskExit {
    const TYPE_NAME: &'static str = "containerd.events.TaskExit";
}
impl Event for TaskDelete {
    const TYPE_NAME: &'static str = "containerd.events.TaskDelete";
}
impl Event for TaskExecAdded {
    const TYPE_NAME: &'static str = "containerd.events.TaskExecAdded";
}
impl Event for TaskExecStarted {
    const TYPE_NAME: &'static str = "containerd.events.TaskExecStarted";
}
impl Event for TaskPaused {
    const TYPE_NAME: &'static str = "containerd.events.TaskPaused";
}
impl Event for TaskResumed {
    const TYPE_NAME: &'static str = "containerd.events.TaskResumed";
}
impl Event for TaskOOM {
    const TYPE_NAME: &'static str = "containerd.events.TaskOOM";
}

/// One encoded event, ready to go.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// `/tasks/exit`, ...
    pub topic: &'static str,
    /// When it happened.
    pub at: SystemTime,
    /// The event as an Any.
    pub event: Any,
}

/// Why an event did not go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// containerd could not be reached (down, restarting): worth retrying for a while.
    Unreachable(String),
    /// containerd answered with an error: a few more tries only, so that the events queued
    /// behind it are not held up.
    Refused(String),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Unreachable(e) => write!(f, "containerd unreachable: {e}"),
            PublishError::Refused(e) => write!(f, "refused by containerd: {e}"),
        }
    }
}

/// Something that delivers an event to containerd.
pub trait Publish: Send + Sync + 'static {
    /// Delivers one event.
    fn publish(&self, namespace: &str, item: &Item) -> Result<(), PublishError>;

    /// Told when the publishing thread ends, its queue empty: resources held between
    /// events can go.
    fn idle(&self) {}
}

/// Forwards events to containerd's ttrpc events service (`TTRPC_ADDRESS`). It dials on
/// first use, again after a failed connection (a restarted containerd listens anew), and
/// again after each idle time (its publishing thread ended): a ttrpc client holds two
/// threads while connected, and a shim spends nearly all its life with no event to send.
pub struct Publisher {
    address: String,
    client: Mutex<Option<EventsClient>>,
}

impl Publisher {
    /// A publisher to containerd's ttrpc address (not dialled yet).
    pub fn new(address: &str) -> Publisher {
        Publisher {
            address: address.to_string(),
            client: Mutex::new(None),
        }
    }
}

fn dial(address: &str) -> Result<EventsClient, PublishError> {
    let unreachable = |e: String| PublishError::Unreachable(e);
    let fd: RawFd = containerd_shim::util::connect(address)
        .map_err(|e| unreachable(format!("connecting to {address:?}: {e}")))?;
    let client =
        Client::new(fd).map_err(|e| unreachable(format!("ttrpc client for {address:?}: {e}")))?;
    Ok(EventsClient::new(client))
}

impl Publish for Publisher {
    fn publish(&self, namespace: &str, item: &Item) -> Result<(), PublishError> {
        let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let client = match slot.take() {
            Some(c) => c,
            None => dial(&self.address)?,
        };
        let req = ForwardRequest {
            envelope: MessageField::some(Envelope {
                timestamp: MessageField::some(Timestamp::from(item.at)),
                namespace: namespace.to_string(),
                topic: item.topic.to_string(),
                event: MessageField::some(item.event.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ctx = Context {
            timeout_nano: FORWARD_TIMEOUT.as_nanos() as i64,
            ..Default::default()
        };
        match client.forward(ctx, &req) {
            Ok(_) => {
                *slot = Some(client);
                Ok(())
            }
            // containerd answered: the connection is fine.
            Err(containerd_shim_protos::ttrpc::Error::RpcStatus(status)) => {
                *slot = Some(client);
                Err(PublishError::Refused(format!("{status:?}")))
            }
            // A failed connection is dropped (its threads end with it), dialled anew next
            // time.
            Err(e) => Err(PublishError::Unreachable(e.to_string())),
        }
    }

    fn idle(&self) {
        self.client.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Encodes an event for the queue.
pub fn encode<E: Event>(topic: &'static str, event: &E) -> Result<Item, String> {
    let value = event
        .write_to_bytes()
        .map_err(|e| format!("encoding {}: {e}", E::TYPE_NAME))?;
    Ok(Item {
        topic,
        at: SystemTime::now(),
        event: Any {
            type_url: E::TYPE_NAME.to_string(),
            value,
            ..Default::default()
        },
    })
}

/// The queue and its publishing thread, started by the first event after an idle time.
pub struct Events {
    shared: Arc<Shared>,
}

struct Shared {
    publisher: Box<dyn Publish>,
    namespace: String,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// The running thread's queue; None while no thread runs.
    tx: Option<Sender<Item>>,
    /// The running (or last) thread.
    thread: Option<JoinHandle<()>>,
    /// Flushed: no more events.
    closed: bool,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Events {
    /// Events for `namespace`, published through `publisher`.
    pub fn start(publisher: impl Publish, namespace: String) -> Events {
        Events {
            shared: Arc::new(Shared {
                publisher: Box::new(publisher),
                namespace,
                queue: Mutex::new(Queue::default()),
            }),
        }
    }

    /// Queues an event, starting the publishing thread if none runs.
    pub fn send<E: Event>(&self, topic: &'static str, event: &E) {
        let item = match encode(topic, event) {
            Ok(i) => i,
            Err(e) => {
                log::error!("event {topic} lost: {e}");
                return;
            }
        };
        let mut q = self.shared.queue();
        if q.closed {
            log::warn!("event {topic} dropped: the shim is shutting down");
            return;
        }
        // A thread that is gone (it panicked) gives the item back: start another.
        let item = match &q.tx {
            Some(tx) => match tx.send(item) {
                Ok(()) => return,
                Err(mpsc::SendError(item)) => item,
            },
            None => item,
        };
        let (tx, rx) = mpsc::channel::<Item>();
        let shared = self.shared.clone();
        let spawned = thread::Builder::new()
            .name("events".into())
            .stack_size(128 * 1024)
            .spawn(move || run(&shared, rx));
        match spawned {
            Ok(handle) => {
                // Cannot fail: the thread holds the receiver.
                let _ = tx.send(item);
                q.tx = Some(tx);
                q.thread = Some(handle);
            }
            Err(e) => {
                // Published here rather than lost; under the lock, so still in order.
                log::warn!("starting the events thread: {e}; publishing {topic} inline");
                publish_with_retries(
                    &*self.shared.publisher,
                    &self.shared.namespace,
                    &item,
                    RETRY_FOR,
                );
            }
        }
    }

    /// Stops taking events and waits (at most `timeout`) until the queued ones are out.
    pub fn flush(&self, timeout: Duration) {
        let handle = {
            let mut q = self.shared.queue();
            q.closed = true;
            q.tx.take();
            q.thread.take()
        };
        let Some(handle) = handle else {
            return;
        };
        let (done_tx, done_rx) = mpsc::channel();
        let joiner = thread::Builder::new().stack_size(64 * 1024).spawn(move || {
            let _ = handle.join();
            let _ = done_tx.send(());
        });
        if joiner.is_ok() && done_rx.recv_timeout(timeout).is_err() {
            log::warn!("events still queued after {timeout:?}: giving up on them");
        }
    }
}

/// The publishing thread: publishes what comes on `rx` until none came for [`LINGER`] (or
/// the queue is closed), then ends.
fn run(shared: &Shared, rx: Receiver<Item>) {
    loop {
        let item = match rx.recv_timeout(LINGER) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => {
                let mut q = shared.queue();
                // Senders hold the lock: what is not queued now goes to a new thread.
                match rx.try_recv() {
                    Ok(item) => item,
                    Err(_) => {
                        q.tx = None;
                        drop(q);
                        shared.publisher.idle();
                        return;
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                shared.publisher.idle();
                return;
            }
        };
        publish_with_retries(&*shared.publisher, &shared.namespace, &item, RETRY_FOR);
    }
}

/// Attempts for an event containerd refused.
const REFUSED_ATTEMPTS: u32 = 3;

/// Publishes `item`, retrying with growing pauses for at most `retry_for` while containerd
/// is unreachable, [`REFUSED_ATTEMPTS`] times if it refuses it. Later events wait behind
/// it: they must not overtake it.
fn publish_with_retries(
    publisher: &dyn Publish,
    namespace: &str,
    item: &Item,
    retry_for: Duration,
) {
    let deadline = Deadline::after(retry_for);
    let mut pause = RETRY_PAUSE;
    let mut attempt = 1;
    loop {
        match publisher.publish(namespace, item) {
            Ok(()) => {
                if attempt > 1 {
                    log::info!("event {} delivered at attempt {attempt}", item.topic);
                }
                return;
            }
            Err(e)
                if deadline.remaining().is_none_or(|left| pause < left)
                    && !matches!(e, PublishError::Refused(_) if attempt >= REFUSED_ATTEMPTS) =>
            {
                log::debug!("publishing {} (attempt {attempt}): {e}", item.topic);
                thread::sleep(pause);
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
                attempt += 1;
            }
            Err(e) => {
                log::error!(
                    "publishing {} ({attempt} attempts): {e}; event lost",
                    item.topic
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// topic, namespace, type, pid.
    type Seen = (String, String, String, u32);

    #[derive(Clone, Default)]
    struct Recorder {
        got: Arc<Mutex<Vec<Seen>>>,
        fail_first: Arc<Mutex<u32>>,
        /// Failures are refusals rather than an unreachable containerd.
        refuse: Arc<Mutex<bool>>,
        /// Events delivered when the queue was last found empty, once per time.
        idle_after: Arc<Mutex<Vec<usize>>>,
    }

    impl Publish for Recorder {
        fn publish(&self, ns: &str, item: &Item) -> Result<(), PublishError> {
            let mut f = self.fail_first.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(if *self.refuse.lock().unwrap() {
                    PublishError::Refused("bad event".into())
                } else {
                    PublishError::Unreachable("containerd busy".into())
                });
            }
            let pid = match item.event.type_url.as_str() {
                "containerd.events.TaskExit" => {
                    TaskExit::parse_from_bytes(&item.event.value).unwrap().pid
                }
                _ => TaskStart::parse_from_bytes(&item.event.value).unwrap().pid,
            };
            self.got.lock().unwrap().push((
                item.topic.to_string(),
                ns.to_string(),
                item.event.type_url.clone(),
                pid,
            ));
            Ok(())
        }

        fn idle(&self) {
            let n = self.got.lock().unwrap().len();
            self.idle_after.lock().unwrap().push(n);
        }
    }

    #[test]
    fn the_thread_ends_when_idle_and_the_next_event_starts_another() {
        let rec = Recorder::default();
        let events = Events::start(rec.clone(), "ns".into());
        let idle_after = || rec.idle_after.lock().unwrap().clone();
        let wait_for = |n: usize| {
            let deadline = Deadline::after(Duration::from_secs(10));
            while idle_after().len() < n && !deadline.expired() {
                thread::sleep(Duration::from_millis(5));
            }
        };
        let thread_ended = || {
            let q = events.shared.queue();
            q.tx.is_none() && q.thread.as_ref().is_some_and(|t| t.is_finished())
        };
        // No thread before the first event.
        assert!(events.shared.queue().thread.is_none());
        events.send("/tasks/start", &TaskStart::default());
        wait_for(1);
        // It delivered the event, told the publisher, and ended.
        assert_eq!(idle_after(), [1]);
        let deadline = Deadline::after(Duration::from_secs(10));
        while !thread_ended() && !deadline.expired() {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(thread_ended(), "the events thread is still there");
        // The next event has a thread of its own.
        events.send("/tasks/exit", &TaskExit::default());
        wait_for(2);
        assert_eq!(idle_after(), [1, 2]);
        events.flush(Duration::from_secs(10));
    }

    #[test]
    fn events_go_out_in_order_and_flush_waits_for_them() {
        let rec = Recorder::default();
        *rec.fail_first.lock().unwrap() = 2;
        let events = Events::start(rec.clone(), "ns1".into());
        for pid in 1..=3 {
            let start = TaskStart {
                pid,
                ..Default::default()
            };
            events.send("/tasks/start", &start);
            let exit = TaskExit {
                pid,
                ..Default::default()
            };
            events.send("/tasks/exit", &exit);
        }
        events.flush(Duration::from_secs(10));
        let got = rec.got.lock().unwrap().clone();
        let want: Vec<Seen> = (1..=3)
            .flat_map(|p| {
                [
                    (
                        "/tasks/start".to_string(),
                        "ns1".to_string(),
                        "containerd.events.TaskStart".to_string(),
                        p,
                    ),
                    (
                        "/tasks/exit".to_string(),
                        "ns1".to_string(),
                        "containerd.events.TaskExit".to_string(),
                        p,
                    ),
                ]
            })
            .collect();
        assert_eq!(got, want);
        // After flush nothing more is taken.
        events.send("/tasks/start", &TaskStart::default());
        assert_eq!(rec.got.lock().unwrap().len(), 6);
    }

    #[test]
    fn a_failing_event_is_retried_with_growing_pauses_then_given_up() {
        let rec = Recorder::default();
        *rec.fail_first.lock().unwrap() = 3;
        let item = encode("/tasks/exit", &TaskExit::default()).unwrap();
        publish_with_retries(&rec, "ns", &item, Duration::from_secs(10));
        assert_eq!(
            rec.got.lock().unwrap().len(),
            1,
            "delivered at the fourth attempt"
        );
        // Still failing when the time is up: given up, not retried forever. Within 500 ms
        // the pauses (100, 200, then 400 ms) leave room for three attempts at most.
        *rec.fail_first.lock().unwrap() = 1000;
        publish_with_retries(&rec, "ns", &item, Duration::from_millis(500));
        let attempts = 1000 - *rec.fail_first.lock().unwrap();
        assert!((2..=3).contains(&attempts), "{attempts} attempts");
        assert_eq!(rec.got.lock().unwrap().len(), 1);
        // A refusal is tried a few times only, however long the retry time.
        *rec.fail_first.lock().unwrap() = 1000;
        *rec.refuse.lock().unwrap() = true;
        publish_with_retries(&rec, "ns", &item, Duration::from_secs(600));
        let attempts = 1000 - *rec.fail_first.lock().unwrap();
        assert_eq!(attempts, REFUSED_ATTEMPTS);
    }

    #[test]
    fn type_names_are_the_protobuf_full_names() {
        use containerd_shim_protos::protobuf::MessageFull;
        assert_eq!(TaskCreate::TYPE_NAME, TaskCreate::descriptor().full_name());
        assert_eq!(TaskStart::TYPE_NAME, TaskStart::descriptor().full_name());
        assert_eq!(TaskExit::TYPE_NAME, TaskExit::descriptor().full_name());
        assert_eq!(TaskDelete::TYPE_NAME, TaskDelete::descriptor().full_name());
        assert_eq!(
            TaskExecAdded::TYPE_NAME,
            TaskExecAdded::descriptor().full_name()
        );
        assert_eq!(
            TaskExecStarted::TYPE_NAME,
            TaskExecStarted::descriptor().full_name()
        );
        assert_eq!(TaskPaused::TYPE_NAME, TaskPaused::descriptor().full_name());
        assert_eq!(
            TaskResumed::TYPE_NAME,
            TaskResumed::descriptor().full_name()
        );
        assert_eq!(TaskOOM::TYPE_NAME, TaskOOM::descriptor().full_name());
    }
}
