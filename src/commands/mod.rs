//! Each subcommand: parse flags, call runtime-core, print the result.

pub mod checkpoint;
mod exec;
mod info;
mod resources;

use anyhow::{bail, Context, Result};
use runtime_core::cgroups::Driver;
use runtime_core::container::{self, Container, CreateOptions};
use runtime_core::state::Status;
use runtime_core::state::Store;

use crate::cli::{Cli, Command, CreateArgs, ListFormat};
use crate::logger::rfc3339;

/// Runs the command; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    // For the containers this process creates; the others' driver is in their state (a
    // systemd-form cgroup path), so their commands need no flag.
    let driver = if cli.systemd_cgroup {
        Driver::Systemd
    } else {
        Driver::Cgroupfs
    };
    if crate::rootless::cgroups_rootless(cli.rootless) {
        runtime_core::cgroups::use_rootless_cgroups();
    }
    let store = Store::new(crate::rootless::state_root(cli.root.as_deref())?);
    let Some(command) = cli.command else {
        bail!("no command given; see --help");
    };
    match command {
        Command::Create(args) => {
            container::create(&store, &create_options(&args, driver)?)?;
        }
        Command::Start { id } => Container::load(&store, &id)?.start()?,
        Command::Run {
            create,
            detach,
            keep,
        } => return crate::run::run(&store, create_options(&create, driver)?, detach, keep),
        Command::State { id } => {
            let c = Container::peek(&store, &id)?;
            println!("{}", serde_json::to_string_pretty(&state_json(&c))?);
        }
        Command::Kill { id, signal, all } => {
            let sig = runtime_core::signal::parse(&signal)?;
            Container::load(&store, &id)?.kill(sig, all)?;
        }
        Command::Delete { id, force } => container::delete(&store, &id, force)?,
        Command::List { format, quiet } => list(&store, format, quiet)?,
        Command::Exec(args) => return exec::exec(&store, &args),
        Command::Pause { id } => resources::pause(&store, &id)?,
        Command::Resume { id } => resources::resume(&store, &id)?,
        Command::Ps {
            id,
            format,
            ps_args,
        } => resources::ps(&store, &id, format, &ps_args)?,
        Command::Events {
            id,
            stats,
            interval,
        } => resources::events(&store, &id, stats, &interval)?,
        Command::Update(args) => resources::update(&store, &args)?,
        Command::Features => info::features()?,
        Command::Spec { bundle, rootless } => info::spec(&bundle, rootless)?,
        Command::Checkpoint(args) => checkpoint::checkpoint(&store, &cli.criu, &args)?,
        Command::Restore(args) => return checkpoint::restore(&store, &cli.criu, driver, &args),
    }
    Ok(0)
}

/// A JSON document's deserialization error with the field it concerns in front, as
/// config.json's errors have it: `memory.limit: invalid type: ...`.
pub fn json_error(text: &[u8], e: &serde_json::Error) -> String {
    match runtime_core::spec::json_field_at(text, e) {
        field if field.is_empty() => e.to_string(),
        field => format!("{field}: {e}"),
    }
}

fn create_options(a: &CreateArgs, cgroup_driver: Driver) -> Result<CreateOptions> {
    // runc's --no-new-keyring only skips a session keyring we never create: accepted.
    let _ = a.no_new_keyring;
    Ok(CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: absolute_pid_file(a.pid_file.as_deref())?,
        console: connect_console(a.console_socket.as_deref())?,
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        stdio: None,
        cgroup_driver,
    })
}

/// `--pid-file` as an absolute path: the runtime may write it from another directory.
fn absolute_pid_file(p: Option<&std::path::Path>) -> Result<Option<std::path::PathBuf>> {
    p.map(|p| std::path::absolute(p).context("--pid-file"))
        .transpose()
}

/// `--console-socket` connected, before anything is created.
fn connect_console(p: Option<&std::path::Path>) -> Result<Option<std::os::fd::OwnedFd>> {
    Ok(p.map(runtime_core::os::connect).transpose()?)
}

/// The OCI state plus runc's extra fields (`rootfs`, `created`, `owner`).
fn state_json(c: &Container) -> serde_json::Value {
    let st = c.state();
    let mut v = st.oci_json(c.status());
    v["created"] =
        rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(st.created)).into();
    v["owner"] = owner_name(st.owner).into();
    v
}

fn owner_name(uid: u32) -> String {
    runtime_core::passwd::lookup(std::path::Path::new("/etc/passwd"), uid)
        .map_or_else(|| uid.to_string(), |e| e.name)
}

fn list(store: &Store, format: ListFormat, quiet: bool) -> Result<()> {
    let containers = container::list(store)?;
    if quiet {
        for c in &containers {
            println!("{}", c.id());
        }
        return Ok(());
    }
    match format {
        ListFormat::Json => {
            let all: Vec<_> = containers.iter().map(state_json).collect();
            println!("{}", serde_json::to_string(&all)?);
        }
        ListFormat::Table => {
            let mut rows = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for c in &containers {
                let j = state_json(c);
                let pid = if c.status() == Status::Stopped {
                    0
                } else {
                    c.state().pid
                };
                rows.push([
                    c.id().to_string(),
                    pid.to_string(),
                    c.status().to_string(),
                    c.state().bundle.display().to_string(),
                    j["created"].as_str().unwrap_or_default().to_string(),
                    j["owner"].as_str().unwrap_or_default().to_string(),
                ]);
            }
            let widths: Vec<usize> = (0..6)
                .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in rows {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
    }
    Ok(())
}
