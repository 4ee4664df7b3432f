//! `youki run`: create, start, wait for the container's init and delete it, as runc does.

use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};
use runtime_core::container::{self, Container, CreateOptions};
use runtime_core::state::Store;

use crate::foreground::Foreground;

/// Runs a container; returns its exit code (128+N if killed by signal N).
pub fn run(store: &Store, mut opts: CreateOptions, detach: bool, keep: bool) -> Result<i32> {
    if detach {
        start_or_destroy(container::create(store, &opts)?)?;
        return Ok(0);
    }
    let fg = Foreground::prepare()?;
    // A terminal without a console socket is ours to relay: the master comes back to us.
    let mut relay_end = None;
    if opts.console.is_none() && wants_terminal(&opts) {
        let (ours, theirs) = UnixStream::pair().context("console socketpair")?;
        opts.console = Some(theirs.into());
        relay_end = Some(ours);
    }
    let c = start_or_destroy(container::create(store, &opts)?)?;
    let code = fg.wait(c.pid(), relay_end)?;
    if !keep {
        c.delete(true)?;
    }
    Ok(code)
}

/// Whether the bundle's process asks for a terminal. Only that field is read: `create`
/// loads and validates the whole config right after (and reports its errors).
fn wants_terminal(opts: &CreateOptions) -> bool {
    let path = opts.bundle.join("config.json");
    // Missing or malformed: false here, and `create` gives the proper error.
    let config: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default();
    config["process"]["terminal"].as_bool().unwrap_or(false)
}

/// Starts the container just created, or deletes it if it cannot start.
fn start_or_destroy(mut c: Container) -> Result<Container> {
    if let Err(e) = c.start() {
        let id = c.id().to_string();
        if let Err(de) = c.delete(true) {
            log::warn!("deleting {id} after failed start: {de}");
        }
        return Err(e.into());
    }
    Ok(c)
}
