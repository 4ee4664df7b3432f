//! An output copy: from the container's stdout or stderr pipe to its fifo or file, run by
//! the copy thread (copier.rs). It reads the pipe only while nothing read is pending, so
//! that a full fifo holds the container's writes back.
//!
//! Each copy ends at the end of its pipe (every writer gone: the process and whatever
//! inherited its stdio). Output the fifo still holds then keeps the fifo open until a
//! client reads it (fifo.rs). A copy that waits for a client (a full fifo, unread output)
//! also ends at the task's end: dropping the [`Stop`] that [`setup_for`] returns (the
//! service drops it with the process, at Delete) ends it and drops what is left, as
//! nobody can read it any more.
//!
//! [`Stop`]: super::Stop
//! [`setup_for`]: super::setup_for

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags};

use super::copier::{run_job, write_some, Job};
use super::fifo::{self, unread, FifoSink};
use super::file;
use super::uri::Target;
use super::{null, pipe, Drain, Stopped};
use crate::error::Result;

/// The longest pause between two looks at an output fifo that still holds unread data
/// after the container's output ended (the pauses start at 1 ms and double).
const LINGER_POLL_MAX: Duration = Duration::from_millis(100);

/// Where an output copy writes.
#[derive(Debug)]
pub(super) enum Sink {
    /// A fifo (fifo.rs).
    Fifo(FifoSink),
    /// A file, appended to.
    File(File),
}

/// Opens an output: a fifo, or a file (file.rs).
pub(super) fn open_sink(target: &Target) -> Result<Sink> {
    match target {
        Target::File(path) => file::open_uri(path).map(Sink::File),
        Target::Fifo(path) if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_fifo()) => {
            file::open_plain(path).map(Sink::File)
        }
        Target::Fifo(path) => fifo::open(path).map(Sink::Fifo),
        Target::Binary(_) => unreachable!("logging binaries have no sink"),
    }
}

/// Starts the copy of a new pipe to `sink` (none: the process gets /dev/null); the
/// pipe's end for the process.
pub(super) fn start(
    sink: Option<Sink>,
    name: &'static str,
    drain: &Arc<Drain>,
    stopped: &Stopped,
) -> Result<OwnedFd> {
    match sink {
        None => null(),
        Some(sink) => {
            let (r, w) = pipe()?;
            drain.add();
            let added = run_job(Box::new(Copy {
                name,
                pipe: r.into(),
                sink: Some(sink),
                pending: Vec::new(),
                drain: drain.clone(),
                stopped: stopped.clone(),
                lingering: None,
            }));
            if let Err(e) = added {
                drain.finish();
                return Err(e);
            }
            Ok(w)
        }
    }
}

/// One output copy (module doc): from the container's pipe to its sink, then, for a
/// fifo, lingering while the fifo holds what no client has read.
struct Copy {
    /// stdout or stderr, for the log.
    name: &'static str,
    pipe: File,
    /// None once writing failed: the rest is read and dropped, so that the container never
    /// blocks on it for good.
    sink: Option<Sink>,
    /// Read from the pipe, not yet written: the fifo is full (the client is away or slow).
    /// The pipe is not read meanwhile, so the container's writes wait: nothing is dropped.
    pending: Vec<u8>,
    drain: Arc<Drain>,
    stopped: Stopped,
    /// After the pipe's end, for a fifo sink: when to look at the fifo again and the pause
    /// after that (no poll event says "empty").
    lingering: Option<(Instant, Duration)>,
}

/// What a copy waits for.
enum Want {
    Read,
    Write,
    /// Nothing but its stop and the time of its next look.
    Linger(Instant),
}

impl Copy {
    fn want(&self) -> Want {
        match self.lingering {
            Some((at, _)) => Want::Linger(at),
            None if self.pending.is_empty() => Want::Read,
            None => Want::Write,
        }
    }

    /// One step once its pipe or sink is `ready` (or its time to look came).
    fn advance(&mut self, ready: bool, buf: &mut [u8]) -> bool {
        match self.want() {
            Want::Read if ready => match self.pipe.read(buf) {
                Ok(0) => self.ended(),
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    self.write();
                    true
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => true,
                Err(e) => {
                    log::warn!("stdio copy: reading the container's {}: {e}", self.name);
                    self.ended()
                }
            },
            Want::Write if ready => {
                self.write();
                true
            }
            Want::Linger(at) if Instant::now() >= at => self.linger(),
            _ => true,
        }
    }

    /// Writes what is pending, as much as the sink takes now.
    fn write(&mut self) {
        let result = match self.sink.as_mut() {
            None => Ok(self.pending.len()),
            Some(Sink::File(f)) => f.write_all(&self.pending).map(|()| self.pending.len()),
            Some(Sink::Fifo(f)) => write_some(&mut f.writer, &self.pending),
        };
        match result {
            Ok(n) => {
                self.pending.drain(..n);
            }
            Err(e) => {
                log::warn!(
                    "stdio copy: writing the {}: {e}; dropping further output",
                    self.name
                );
                self.sink = None;
                self.pending.clear();
            }
        }
    }

    /// The pipe's end-of-file: everything is in the sink. A fifo still holding unread
    /// output lingers; anything else is over.
    fn ended(&mut self) -> bool {
        self.drain.finish();
        if !matches!(self.sink, Some(Sink::Fifo(_))) {
            return false;
        }
        self.lingering = Some((Instant::now(), Duration::from_millis(1)));
        self.linger()
    }

    /// Keeps the fifo open while it holds bytes no client has read (closing both ends
    /// would throw them away, and a client that comes back would miss the end of the
    /// output); false once they are read.
    fn linger(&mut self) -> bool {
        let (Some(Sink::Fifo(fifo)), Some((_, pause))) = (&self.sink, self.lingering) else {
            return false;
        };
        match unread(&fifo.reader) {
            Ok(0) => false,
            Ok(_) => {
                self.lingering = Some((Instant::now() + pause, (pause * 2).min(LINGER_POLL_MAX)));
                true
            }
            Err(e) => {
                log::warn!("stdio copy: FIONREAD on the fifo: {e}");
                false
            }
        }
    }

    /// Its `Stop` was dropped (the task's end): what is left is dropped.
    fn stop(&self) {
        if self.lingering.is_none() {
            self.drain.finish();
        }
    }
}

impl Job for Copy {
    /// Its stop, then its pipe (reading) or its fifo (writing), nothing while it lingers.
    fn interest<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) -> Option<Instant> {
        fds.push(PollFd::new(self.stopped.as_fd(), PollFlags::POLLIN));
        match (self.want(), &self.sink) {
            (Want::Read, _) => fds.push(PollFd::new(self.pipe.as_fd(), PollFlags::POLLIN)),
            (Want::Write, Some(Sink::Fifo(f))) => {
                fds.push(PollFd::new(f.writer.as_fd(), PollFlags::POLLOUT))
            }
            (Want::Linger(at), _) => return Some(at),
            // A file takes everything at once: nothing is ever pending for it.
            (Want::Write, _) => {}
        }
        None
    }

    fn step(&mut self, revents: &[PollFlags], buf: &mut [u8]) -> bool {
        if revents.first().is_some_and(|r| !r.is_empty()) {
            self.stop();
            return false;
        }
        let ready = revents.get(1).is_some_and(|r| !r.is_empty());
        self.advance(ready, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    use crate::io::testing::pipe_files;
    use crate::io::Stop;

    /// A copy of `r` to `sink` by the copier; its drain, and its stop (to keep).
    fn copy(r: File, sink: Sink) -> (Arc<Drain>, Stop) {
        let (stop, stopped) = Stop::new().unwrap();
        let drain = Arc::new(Drain::default());
        drain.add();
        run_job(Box::new(Copy {
            name: "test",
            pipe: r,
            sink: Some(sink),
            pending: Vec::new(),
            drain: drain.clone(),
            stopped,
            lingering: None,
        }))
        .unwrap();
        (drain, stop)
    }

    #[test]
    fn output_is_complete_after_the_writer_exits() {
        let (r, mut w) = pipe_files();
        let (sink_r, sink_w) = pipe_files();
        let (drain, _stop) = copy(r, Sink::File(sink_w));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let reader = thread::spawn(move || {
            let mut got = vec![];
            let mut sink_r = sink_r;
            sink_r.read_to_end(&mut got).unwrap();
            got
        });
        w.write_all(&data).unwrap();
        drop(w);
        assert!(drain.wait(Duration::from_secs(10)), "the copy did not end");
        assert_eq!(reader.join().unwrap(), data);
    }

    #[test]
    fn a_failing_sink_neither_blocks_nor_breaks_the_writer() {
        let (r, mut w) = pipe_files();
        let (sink_r, sink_w) = pipe_files();
        drop(sink_r);
        let (drain, _stop) = copy(r, Sink::File(sink_w));
        // Far more than a pipe holds: the copy keeps draining after the sink failed.
        for _ in 0..64 {
            w.write_all(&[b'x'; 16 * 1024]).unwrap();
        }
        drop(w);
        assert!(drain.wait(Duration::from_secs(10)), "the copy did not end");
    }
}
