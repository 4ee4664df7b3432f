//! `youki exec`: run a new process in a running container.

use std::os::unix::net::UnixStream;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capabilities, Capability, Process};
use runtime_core::container::{Container, ExecOptions};
use runtime_core::state::Store;

use crate::cli::ExecArgs;
use crate::foreground::Foreground;

/// Runs `exec`; returns the exit code (the process's, unless detached).
pub fn exec(store: &Store, args: &ExecArgs) -> Result<i32> {
    if args.apparmor.is_some() || args.process_label.is_some() {
        bail!("--apparmor and --process-label are not supported on this host");
    }
    let process = match &args.process {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--process {}", path.display()))?;
            serde_json::from_str::<Process>(&text)
                .or_else(|e| {
                    // Scheduler flags spelled as the spec spells them (which the oci-spec
                    // crate does not take) parse once respelled; any other error stands.
                    let Ok(mut raw) = serde_json::from_str::<serde_json::Value>(&text) else {
                        return Err(e);
                    };
                    if !runtime_core::spec::scheduler_flag_names(Some(&mut raw)) {
                        return Err(e);
                    }
                    serde_json::from_value::<Process>(raw)
                })
                .map_err(|e| {
                    anyhow::anyhow!(
                        "--process {}: not an OCI process: {}",
                        path.display(),
                        super::json_error(text.as_bytes(), &e)
                    )
                })?
        }
        None => process_from_flags(store, args)?,
    };
    let terminal = process.terminal().unwrap_or(false);
    let mut opts = ExecOptions {
        process,
        pid_file: args
            .pid_file
            .as_ref()
            .map(|p| std::path::absolute(p).context("--pid-file"))
            .transpose()?,
        preserve_fds: args.preserve_fds,
        ..Default::default()
    };
    let mut relay_end = None;
    match (&args.console_socket, terminal, args.detach) {
        (Some(path), _, _) => opts.console = Some(runtime_core::os::connect(path)?),
        (None, true, false) => {
            // Interactive: the terminal's master comes back to us and we relay it.
            let (ours, theirs) = UnixStream::pair().context("console socketpair")?;
            opts.console = Some(theirs.into());
            relay_end = Some(ours);
        }
        (None, true, true) => {
            bail!("--tty with --detach needs --console-socket to receive the terminal")
        }
        (None, false, _) => {}
    }
    let mut c = Container::load(store, &args.id)?;
    if args.detach {
        c.exec(&opts)?;
        return Ok(0);
    }
    let fg = Foreground::prepare()?;
    let pid = c.exec(&opts)?;
    // The process runs: other commands may act on the container while we wait.
    c.unlock();
    fg.wait(pid, relay_end)
}

/// The process from flags, on top of the container's own process as runc builds it.
fn process_from_flags(store: &Store, args: &ExecArgs) -> Result<Process> {
    if args.command.is_empty() {
        bail!("exec {}: no command given (and no --process)", args.id);
    }
    let c = Container::peek(store, &args.id)?;
    let spec = runtime_core::spec::load(&c.state().bundle)?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(args.command.clone()));
    p.set_terminal(Some(args.tty));
    if let Some(cwd) = &args.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &args.env {
        let Some((key, _)) = kv.split_once('=') else {
            bail!("--env {kv:?}: expected KEY=VALUE");
        };
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(u) = &args.user {
        let (uid, gid) = match u.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (u.as_str(), None),
        };
        let parse = |v: &str| -> Result<u32> {
            v.parse()
                .with_context(|| format!("--user {u:?}: expected uid[:gid] as numbers"))
        };
        let mut user = p.user().clone();
        user.set_uid(parse(uid)?);
        user.set_gid(gid.map(parse).transpose()?.unwrap_or(0));
        p.set_user(user);
    }
    if !args.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(args.additional_gids.clone()));
        p.set_user(user);
    }
    if args.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !args.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            let cap = Capability::from_str(name.trim_start_matches("CAP_"))
                .map_err(|_| anyhow::anyhow!("--cap {name}: unknown capability"))?;
            // runc adds an exec's extra capability to every set.
            let with = |set: &Option<Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            let (b, e, p, i, a) = (
                with(caps.bounding()),
                with(caps.effective()),
                with(caps.permitted()),
                with(caps.inheritable()),
                with(caps.ambient()),
            );
            caps.set_bounding(b)
                .set_effective(e)
                .set_permitted(p)
                .set_inheritable(i)
                .set_ambient(a);
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}
