//! The server's ttrpc listener: one thread (the server's main thread, [`Server::run`])
//! polls the listening socket and every connection until it is told to stop, and each
//! request runs on a thread of its own that ends with it (a Create
//! lasts as long as the container's start). A [`Deferred`] method (Wait, which lasts as
//! long as its process) holds no thread: the polling thread hands it a [`Reply`] that
//! answers later, from whichever thread sees the answer.
//!
//! ttrpc's synchronous server keeps six threads per connection for its whole life (the
//! connection's, a reader, a writer and three idle handlers), and containerd opens one
//! connection per task: a pod's shim grew by six threads per container. Here an idle
//! shim has one thread for all its connections. The wire format is ttrpc's (its message
//! header, [`Request`] and [`Response`]), the handlers are the ones containerd-shim-protos
//! generates, called as ttrpc's server calls them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::ttrpc::proto::{
    MessageHeader, MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX, MESSAGE_TYPE_REQUEST,
};
use containerd_shim_protos::ttrpc::{get_status, Code, MethodHandler, Request, Response};
use containerd_shim_protos::ttrpc::{response_to_channel, TtrpcContext};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// The generated handlers by path (`/containerd.task.v2.Task/Create`).
pub type Methods = HashMap<String, Box<dyn MethodHandler + Send + Sync>>;

/// A method answered later, without a thread of its own while it waits.
pub trait Deferred: Send + Sync {
    /// Starts handling `req`, to be answered through `reply`. Called by the polling
    /// thread: it must not block.
    fn start(&self, req: Request, reply: Reply);
}

/// The deferred methods by path; they take precedence over [`Methods`].
pub type DeferredMethods = HashMap<String, Box<dyn Deferred>>;

/// The answer to one request, to be sent once, from any thread.
pub struct Reply {
    stream_id: u32,
    writer: Arc<Mutex<UnixStream>>,
}

impl Reply {
    /// Answers with `r`, as a generated handler answers what its service returned.
    pub fn answer(self, r: containerd_shim_protos::ttrpc::Result<impl Message>) {
        let mut res = Response::new();
        match r.and_then(|m| {
            m.write_to_bytes()
                .map_err(|e| containerd_shim_protos::ttrpc::Error::Others(e.to_string()))
        }) {
            Ok(payload) => {
                res.set_status(get_status(Code::OK, String::new()));
                res.payload = payload;
            }
            Err(containerd_shim_protos::ttrpc::Error::RpcStatus(s)) => res.set_status(s),
            Err(e) => res.set_status(get_status(Code::UNKNOWN, format!("{e:?}"))),
        }
        let (tx, rx) = std::sync::mpsc::channel();
        if let Err(e) = response_to_channel(self.stream_id, res, tx) {
            log::warn!("ttrpc: encoding an answer: {e}");
        }
        for (mh, body) in rx.try_iter() {
            write_frame(&self.writer, mh, &body);
        }
    }
}

/// How long the rest of a message may take once its first byte arrived: a client that
/// stops mid-message loses its connection rather than stalling every other one.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server.
pub struct Server {
    handlers: Handlers,
}

/// One client connection: read by the polling thread, written by the request threads.
struct Connection {
    reader: UnixStream,
    writer: Arc<Mutex<UnixStream>>,
}

impl Server {
    /// A server of `methods` and `deferred`; [`Server::run`] serves them.
    pub fn new(methods: Methods, deferred: DeferredMethods) -> Server {
        Server {
            handlers: Handlers {
                methods: Arc::new(methods),
                deferred,
                in_flight: Arc::new((Mutex::new(0), Condvar::new())),
            },
        }
    }

    /// Serves on `listener` from the calling thread until `stop` is readable. Answers still
    /// being written go on ([`Server::drain`] waits for them).
    pub fn run(&self, listener: &UnixListener, stop: BorrowedFd<'_>) {
        serve(listener, stop, &self.handlers)
    }

    /// Waits (at most `timeout`) until no request is being handled: Shutdown's answer
    /// goes out before the process ends.
    pub fn drain(&self, timeout: Duration) {
        let (count, idle) = &*self.handlers.in_flight;
        let n = count.lock().unwrap_or_else(|p| p.into_inner());
        let (n, _) = idle
            .wait_timeout_while(n, timeout, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        if *n > 0 {
            log::warn!("{} request(s) still in flight at exit", *n);
        }
    }
}

/// What the polling thread dispatches requests to.
struct Handlers {
    methods: Arc<Methods>,
    deferred: DeferredMethods,
    /// Requests on threads of their own (see [`Server::drain`]).
    in_flight: Arc<(Mutex<usize>, Condvar)>,
}

/// Index of the listener among the polled descriptors (then `stop`, then connections).
const LISTENER: usize = 0;
/// Index of `stop`.
const STOP: usize = 1;

fn serve(listener: &UnixListener, stop: BorrowedFd<'_>, handlers: &Handlers) {
    let mut conns: Vec<Connection> = Vec::new();
    loop {
        let ready: Vec<PollFlags> = {
            let mut fds = vec![
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop, PollFlags::POLLIN),
            ];
            fds.extend(
                conns
                    .iter()
                    .map(|c| PollFd::new(c.reader.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => fds
                    .iter()
                    .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                    .collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("ttrpc server: poll: {e}");
                    thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
        };
        if !ready[STOP].is_empty() {
            return;
        }
        // Connections first, newest last: indexes stay valid while some are dropped.
        for i in (0..conns.len()).rev() {
            if ready[i + 2].is_empty() {
                continue;
            }
            if let Err(e) = read_request(&conns[i], handlers) {
                log::debug!("ttrpc connection closed: {e}");
                conns.swap_remove(i);
            }
        }
        if !ready[LISTENER].is_empty() {
            match accept(listener) {
                Ok(c) => conns.push(c),
                Err(e) => {
                    log::warn!("ttrpc server: accepting a connection: {e}");
                    // EMFILE and the like: give the handlers time to close something.
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

fn accept(listener: &UnixListener) -> std::io::Result<Connection> {
    let (stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let writer = stream.try_clone()?;
    Ok(Connection {
        reader: stream,
        writer: Arc::new(Mutex::new(writer)),
    })
}

/// Reads one message from `conn` (readable) and starts handling it; an error means the
/// connection is over.
fn read_request(conn: &Connection, handlers: &Handlers) -> std::io::Result<()> {
    let mut header = [0u8; MESSAGE_HEADER_LENGTH];
    (&conn.reader).read_exact(&mut header)?;
    let mh = MessageHeader::from(header);
    let len = mh.length as usize;
    if len > MESSAGE_LENGTH_MAX {
        return Err(std::io::Error::other(format!(
            "a message of {len} bytes (at most {MESSAGE_LENGTH_MAX})"
        )));
    }
    let mut payload = vec![0u8; len];
    (&conn.reader).read_exact(&mut payload)?;
    if mh.type_ != MESSAGE_TYPE_REQUEST {
        return Ok(());
    }
    let req = match Request::parse_from_bytes(&payload) {
        Ok(r) => match handlers.deferred.get(&path(&r)) {
            Some(d) => {
                let reply = Reply {
                    stream_id: mh.stream_id,
                    writer: conn.writer.clone(),
                };
                d.start(r, reply);
                return Ok(());
            }
            None => Ok(r),
        },
        Err(e) => Err(e.to_string()),
    };
    let writer = conn.writer.clone();
    let methods = handlers.methods.clone();
    let in_flight = &handlers.in_flight;
    let counter = in_flight.clone();
    *in_flight.0.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    let spawned = thread::Builder::new()
        .name("ttrpc-request".into())
        .spawn(move || {
            handle(&methods, mh, req, &writer);
            let (count, idle) = &*counter;
            *count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
            idle.notify_all();
        });
    if let Err(e) = spawned {
        *in_flight.0.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        return Err(std::io::Error::other(format!(
            "starting a request thread: {e}"
        )));
    }
    Ok(())
}

/// A request's method path, as the handlers are keyed.
fn path(req: &Request) -> String {
    format!("/{}/{}", req.service, req.method)
}

/// Runs the handler of one request (`req`, or why it could not be decoded) and writes its
/// answer, as ttrpc's server does.
fn handle(
    methods: &Methods,
    mh: MessageHeader,
    req: Result<Request, String>,
    writer: &Mutex<UnixStream>,
) {
    let (res_tx, res_rx) = std::sync::mpsc::channel();
    let stream_id = mh.stream_id;
    let answered = match req {
        Err(e) => answer_status(stream_id, Code::INVALID_ARGUMENT, e, res_tx.clone()),
        Ok(req) => {
            let path = path(&req);
            match methods.get(&path) {
                None => answer_status(
                    stream_id,
                    Code::INVALID_ARGUMENT,
                    format!("{path} does not exist"),
                    res_tx.clone(),
                ),
                Some(method) => {
                    let ctx = TtrpcContext {
                        fd: -1,
                        cancel_rx: crossbeam_channel::never(),
                        mh,
                        res_tx: res_tx.clone(),
                        metadata: containerd_shim_protos::ttrpc::context::from_pb(&req.metadata),
                        timeout_nano: req.timeout_nano,
                    };
                    method.handler(ctx, req).map_err(|e| format!("{path}: {e}"))
                }
            }
        }
    };
    // The handler queued its answer before it returned. One that failed without (a
    // request it could not decode) still gets one: ttrpc's server would close the
    // connection, and with it every other request on it.
    let mut answers: Vec<_> = res_rx.try_iter().collect();
    if let Err(e) = answered {
        log::warn!("ttrpc request: {e}");
        if answers.is_empty() && answer_status(stream_id, Code::INTERNAL, e, res_tx).is_ok() {
            answers.extend(res_rx.try_iter());
        }
    }
    for (mh, body) in answers {
        write_frame(writer, mh, &body);
    }
}

/// Writes one message (header and body) in one piece: answers of several threads share
/// the connection.
fn write_frame(writer: &Mutex<UnixStream>, mh: MessageHeader, body: &[u8]) {
    let mut frame: Vec<u8> = mh.into();
    frame.extend_from_slice(body);
    let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = w.write_all(&frame) {
        log::debug!("ttrpc: writing an answer: {e}");
    }
}

fn answer_status(
    stream_id: u32,
    code: Code,
    msg: String,
    res_tx: std::sync::mpsc::Sender<(MessageHeader, Vec<u8>)>,
) -> Result<(), String> {
    let mut res = Response::new();
    res.set_status(get_status(code, msg));
    response_to_channel(stream_id, res, res_tx).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::ttrpc::{Client, Result as TtrpcResult};

    /// Answers with the request's payload.
    struct Echo;

    impl MethodHandler for Echo {
        fn handler(&self, ctx: TtrpcContext, req: Request) -> TtrpcResult<()> {
            let mut res = Response::new();
            res.payload = req.payload;
            response_to_channel(ctx.mh.stream_id, res, ctx.res_tx)
        }
    }

    /// Fails without answering, as a generated handler does with a payload it cannot decode.
    struct Fail;

    impl MethodHandler for Fail {
        fn handler(&self, _: TtrpcContext, _: Request) -> TtrpcResult<()> {
            Err(containerd_shim_protos::ttrpc::Error::Others("bad".into()))
        }
    }

    /// Keeps its replies for the test to send.
    #[derive(Clone, Default)]
    struct Later(Arc<Mutex<Vec<(Request, Reply)>>>);

    impl Deferred for Later {
        fn start(&self, req: Request, reply: Reply) {
            self.0.lock().unwrap().push((req, reply));
        }
    }

    fn request(client: &Client, method: &str, payload: &[u8]) -> TtrpcResult<Response> {
        let mut req = Request::new();
        req.service = "test.Svc".into();
        req.method = method.into();
        req.payload = payload.to_vec();
        client.request(req)
    }

    /// Threads of this process named `name`.
    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name)
            })
            .count()
    }

    #[test]
    fn one_thread_serves_every_connection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).expect("bind");
        let mut methods = Methods::new();
        methods.insert(
            "/test.Svc/Echo".into(),
            Box::new(Echo) as Box<dyn MethodHandler + Send + Sync>,
        );
        methods.insert(
            "/test.Svc/Fail".into(),
            Box::new(Fail) as Box<dyn MethodHandler + Send + Sync>,
        );
        let later = Later::default();
        let deferred = DeferredMethods::from([(
            "/test.Svc/Later".to_string(),
            Box::new(later.clone()) as Box<dyn Deferred>,
        )]);
        let server = Arc::new(Server::new(methods, deferred));
        let (stop, stop_peer) = UnixStream::pair().expect("socketpair");
        let serving = {
            let server = server.clone();
            thread::Builder::new()
                .name("ttrpc".into())
                .spawn(move || server.run(&listener, stop_peer.as_fd()))
                .expect("server thread")
        };
        let address = format!("unix://{}", path.display());
        let clients: Vec<Client> = (0..3)
            .map(|_| Client::connect(&address).expect("connect"))
            .collect();
        for (i, c) in clients.iter().enumerate() {
            let res = request(c, "Echo", &[i as u8; 3]).expect("Echo");
            assert_eq!(res.payload, [i as u8; 3]);
            match request(c, "Nope", b"") {
                Err(containerd_shim_protos::ttrpc::Error::RpcStatus(s)) => {
                    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
                    assert_eq!(s.message, "/test.Svc/Nope does not exist");
                }
                other => panic!("an unknown method answered {other:?}"),
            }
            match request(c, "Fail", b"") {
                Err(containerd_shim_protos::ttrpc::Error::RpcStatus(s)) => {
                    assert_eq!(s.code(), Code::INTERNAL, "{s:?}");
                    assert!(s.message.contains("/test.Svc/Fail"), "{s:?}");
                }
                other => panic!("a failed handler answered {other:?}"),
            }
        }
        // Only this test starts a server in this process.
        assert_eq!(threads_named("ttrpc"), 1);
        // A deferred request is answered when its reply is sent, by any thread; the
        // connection serves other requests meanwhile.
        let client = Arc::new(Client::connect(&address).expect("connect"));
        let c2 = client.clone();
        let waiting = thread::spawn(move || request(&c2, "Later", b"w"));
        let deadline = runtime_core::deadline::Deadline::after(Duration::from_secs(10));
        while later.0.lock().unwrap().is_empty() && !deadline.expired() {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(request(&client, "Echo", b"e").expect("Echo").payload, b"e");
        let (req, reply) = later.0.lock().unwrap().pop().expect("the deferred request");
        assert_eq!(req.payload, b"w");
        // Any message will do as the answer: a Response.
        let mut answer = Response::new();
        answer.payload = b"done".to_vec();
        let encoded = answer.write_to_bytes().unwrap();
        reply.answer(Ok(answer));
        let res = waiting.join().unwrap().expect("Later");
        assert_eq!(res.payload, encoded);
        server.drain(Duration::from_secs(10));
        assert_eq!(*server.handlers.in_flight.0.lock().unwrap(), 0);
        // Told to stop, the loop returns.
        (&stop).write_all(b"x").expect("stop");
        serving.join().expect("the serving thread");
    }
}
