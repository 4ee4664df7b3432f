//! Output to a fifo whose reader is the client (containerd, ctr, dockerd through
//! containerd), which may go away and come back: a containerd or dockerd restart, Docker's
//! live-restore.
//!
//! As containerd's runc shim does (its process/io.go opens each output fifo `O_WRONLY`
//! and then `O_RDONLY`, and keeps both until the copy ends), the shim holds a read end of
//! every output fifo too, which it never reads: writes never fail with EPIPE while the
//! client is away, and what the container writes meanwhile waits in the fifo for the
//! client's return. When the fifo is full the copy waits, the container's pipe fills, and
//! the container's writes block: nothing it wrote is dropped. Output the fifo still holds
//! at the end of the container's output keeps the fifo open until a client reads it
//! (closing both ends would throw it away), or until the task's end (output.rs).

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use runtime_core::deadline::Deadline;

use crate::error::{Result, ShimError};

/// How long opening an output fifo waits for containerd's reader to appear.
const FIFO_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// An output fifo: the shim's write end, non-blocking so that a copy waiting for room can
/// also wait for its `Stop`, and the read end the shim holds so that the fifo always
/// has a reader (module doc); the shim never reads from it.
#[derive(Debug)]
pub(super) struct FifoSink {
    pub(super) writer: File,
    pub(super) reader: File,
}

/// Opens an output fifo for writing, waiting (bounded) for its reader, and for reading.
pub(super) fn open(path: &Path) -> Result<FifoSink> {
    let open_err = |e: std::io::Error| ShimError::other(format!("opening {}: {e}", path.display()));
    let deadline = Deadline::after(FIFO_OPEN_TIMEOUT);
    let writer = loop {
        // Non-blocking: a blocking open waits forever if no reader ever comes.
        match File::options()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && !deadline.expired() => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(open_err(e)),
        }
    };
    // With our writer there, this opens at once.
    let reader = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(open_err)?;
    Ok(FifoSink { writer, reader })
}

/// The number of bytes a pipe or fifo holds (FIONREAD).
pub(super) fn unread(pipe: &File) -> std::result::Result<usize, Errno> {
    runtime_core::os::fds::unread(pipe.as_fd()).map_err(|e| e.errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    use crate::io::testing::{client_reader, fifo_paths, lines, mkfifo, read_n};
    use crate::io::{setup_for, StdioPaths};

    #[test]
    fn a_fifo_keeps_the_output_while_its_reader_is_away() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        mkfifo(&out);
        let mut reader = client_reader(&out);
        let (io, drain, _stop) = setup_for("c", &fifo_paths(&out), None).unwrap();
        let mut container = File::from(io.stdout);
        container.write_all(lines(0, 10).as_bytes()).unwrap();
        assert_eq!(read_n(&mut reader, lines(0, 10).len()), lines(0, 10));
        // The client goes away: writing neither fails nor loses anything.
        drop(reader);
        container.write_all(lines(10, 20).as_bytes()).unwrap();
        thread::sleep(Duration::from_millis(50));
        let mut reader = client_reader(&out);
        assert_eq!(read_n(&mut reader, lines(10, 20).len()), lines(10, 20));
        // Away again, while the container writes more than the fifo and its pipe hold:
        // the container's writes block until the client is back.
        drop(reader);
        let big = lines(20, 60_000);
        let len = big.len();
        assert!(len > 512 * 1024);
        let writer = thread::spawn(move || {
            container.write_all(big.as_bytes()).unwrap();
            container
        });
        thread::sleep(Duration::from_millis(200));
        assert!(!writer.is_finished(), "the writes did not block");
        let mut reader = client_reader(&out);
        assert_eq!(read_n(&mut reader, len), lines(20, 60_000));
        drop(writer.join().unwrap());
        drop(io.stderr);
        assert!(drain.wait(Duration::from_secs(5)));
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "", "end-of-file once the container's side closed");
    }

    #[test]
    fn output_left_in_the_fifo_waits_for_a_client() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        mkfifo(&out);
        let reader = client_reader(&out);
        let (io, drain, stop) = setup_for("c", &fifo_paths(&out), None).unwrap();
        drop(reader);
        File::from(io.stdout).write_all(b"last words\n").unwrap();
        drop(io.stderr);
        // Everything is in the fifo: the exit may be reported.
        assert!(drain.wait(Duration::from_secs(5)));
        thread::sleep(Duration::from_millis(50));
        // The client comes back after the container's end and gets all of it.
        let mut reader = client_reader(&out);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "last words\n");
        drop(stop);
    }

    #[test]
    fn the_stop_ends_copies_that_wait_for_a_client() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (dir.path().join("out"), dir.path().join("err"));
        mkfifo(&out);
        mkfifo(&err);
        let readers = (client_reader(&out), client_reader(&err));
        let paths = StdioPaths {
            stdout: out.to_str().unwrap().into(),
            stderr: err.to_str().unwrap().into(),
            ..Default::default()
        };
        let (io, drain, stop) = setup_for("c", &paths, None).unwrap();
        drop(readers);
        // stdout: blocked on a full fifo; stderr: ended, its last words unread.
        let mut container = File::from(io.stdout);
        let writer = thread::spawn(move || {
            let chunk = [b'x'; 64 * 1024];
            // Until the copy is stopped and its pipe's read end closed: EPIPE.
            while container.write_all(&chunk).is_ok() {}
        });
        File::from(io.stderr).write_all(b"unread\n").unwrap();
        assert!(!drain.wait(Duration::from_millis(200)));
        drop(stop);
        assert!(
            drain.wait(Duration::from_secs(5)),
            "the stop did not end the copy"
        );
        writer.join().unwrap();
        // Both fifos were closed: a reader now sees no writer (end-of-file).
        for path in [&out, &err] {
            let closed = (0..500).any(|_| {
                let mut f = File::options()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)
                    .unwrap();
                let mut buf = [0u8; 16];
                if matches!(f.read(&mut buf), Ok(0)) {
                    return true;
                }
                thread::sleep(Duration::from_millis(10));
                false
            });
            assert!(closed, "{} still has the shim's writer", path.display());
        }
    }
}
