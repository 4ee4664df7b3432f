//! Bad input: every case exits non-zero, says why on stderr, and leaves no
//! state dir entry, mount, cgroup or process behind (the guard checks the
//! last three when each test ends).

mod common;

use std::fs;

use common::*;

/// Asserts failure, a message on stderr containing one of `words`
/// (case-insensitive), and an empty state dir.
#[track_caller]
fn assert_clean_failure(env: &TestEnv, o: &std::process::Output, what: &str, words: &[&str]) {
    assert_failed_with_message(o, what);
    let err = stderr_of(o).to_lowercase();
    assert!(
        words.iter().any(|w| err.contains(&w.to_lowercase())),
        "{what}: the message should mention one of {words:?}\n{}",
        describe(o)
    );
    assert!(
        env.state_entries().is_empty(),
        "{what}: state left behind: {:?}",
        env.state_entries()
    );
}

#[test]
fn missing_bundle() {
    let env = TestEnv::new("nobundle");
    let missing = env.work.join("no-such-bundle");
    let id = env.id();
    env.track(&id);
    let o = env.run(&["create", "--bundle", missing.to_str().unwrap(), &id]);
    assert_clean_failure(
        &env,
        &o,
        "create with a missing bundle",
        &["no-such-bundle", "no such file"],
    );
}

#[test]
fn bundle_without_config() {
    let env = TestEnv::new("noconfig");
    let b = env.bundle();
    fs::remove_file(b.config_path()).unwrap();
    let id = env.id();
    env.track(&id);
    let o = env.run(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert_clean_failure(
        &env,
        &o,
        "create without config.json",
        &["config.json", "no such file"],
    );
}

const MALFORMED: [(&str, &str); 3] = [
    ("truncated JSON", "{ \"ociVersion\": \"1.0.2\", \"process\": {"),
    ("not JSON", "this is not json"),
    (
        "wrong type",
        "{ \"ociVersion\": \"1.0.2\", \"process\": { \"args\": 42 }, \"root\": { \"path\": \"rootfs\" } }",
    ),
];

#[test]
fn malformed_config() {
    let env = TestEnv::new("badjson");
    let b = env.bundle();
    let id = env.id();
    env.track(&id);
    for (what, content) in MALFORMED {
        fs::write(b.config_path(), content).unwrap();
        let o = env.run(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        assert_clean_failure(
            &env,
            &o,
            &format!("create with a malformed config.json ({what})"),
            &[""],
        );
    }
}

// NOTE: runc 1.1.5 FAILS this test, by its own behaviour: its messages for a
// malformed config.json are the bare JSON decoder's ("unexpected EOF",
// "invalid character 'h' in literal true") without naming the file.
#[test]
fn malformed_config_message_names_the_file() {
    let env = TestEnv::new("badjsonmsg");
    let b = env.bundle();
    let id = env.id();
    env.track(&id);
    for (what, content) in MALFORMED {
        fs::write(b.config_path(), content).unwrap();
        let o = env.run(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
        assert_clean_failure(
            &env,
            &o,
            &format!("create with a malformed config.json ({what})"),
            &["config.json"],
        );
    }
}

// Wrong-type values name their field, not only a line and column. runc 1.1.5 names the
// field too, through Go's decoder ("Go struct field LinuxMemory.linux.resources.memory.limit
// of type int64"), but without array indices: it FAILS this test only for process.args[1].
#[test]
fn wrong_types_name_the_field() {
    let env = TestEnv::new("wrongtype");
    let id = env.id();
    env.track(&id);
    type Mutation = fn(&mut Bundle);
    let cases: [(Mutation, &str); 4] = [
        (
            |b| b.config["process"]["terminal"] = serde_json::json!("yes"),
            "process.terminal",
        ),
        (
            |b| {
                b.resource("memory", serde_json::json!({ "limit": "1G" }));
            },
            "linux.resources.memory.limit",
        ),
        (
            |b| b.config["root"]["readonly"] = serde_json::json!(1),
            "root.readonly",
        ),
        (
            |b| b.config["process"]["args"] = serde_json::json!(["sh", 42]),
            "process.args[1]",
        ),
    ];
    for (mutate, field) in cases {
        let mut b = env.bundle();
        mutate(&mut b);
        let o = env.try_create(&id, &b);
        assert_clean_failure(
            &env,
            &o,
            &format!("create with a wrong type at {field}"),
            &[field],
        );
    }
}

#[test]
fn program_not_found() {
    let env = TestEnv::new("noexe");
    let mut b = env.bundle();
    b.args(&["/no/such/program"]);
    let id = env.id();
    let o = env.try_create(&id, &b);
    // runc fails at create; a runtime may also fail at start. Either way,
    // no container, no leftovers.
    if o.status.success() {
        let s = env.run(&["start", &id]);
        assert_failed_with_message(&s, "start of a container whose program does not exist");
        let _ = env.delete_force(&id);
    } else {
        assert_clean_failure(
            &env,
            &o,
            "create with a missing program",
            &["/no/such/program", "no such file", "not found"],
        );
    }
}

#[test]
fn duplicate_id() {
    let env = TestEnv::new("dupid");
    let mut b = env.bundle();
    b.args(&["sleep", "100"]);
    let id = env.id();
    env.create(&id, &b);
    let pid = env.pid(&id);

    let mut b2 = env.bundle();
    b2.args(&["sleep", "100"]);
    let o = env.try_create(&id, &b2);
    assert_failed_with_message(&o, "create with an id that exists");
    assert!(
        stderr_of(&o).to_lowercase().contains("exist"),
        "the message should say the container exists\n{}",
        describe(&o)
    );
    // The first container is untouched.
    let st = env.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(pid as i64), "{st}");
    assert_eq!(
        st["bundle"].as_str().map(std::path::PathBuf::from),
        Some(b.dir.canonicalize().unwrap()),
        "{st}"
    );
    assert!(pid_alive(pid));
    assert_ok(&env.delete_force(&id), "delete --force");
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
    // The guard also sees any process or cgroup the second create left.
}

#[test]
fn invalid_ids() {
    let env = TestEnv::new("badid");
    let b = env.bundle();
    for bad in ["a/b", "..", "../escape", "/abs", "a/../b", ".", ""] {
        let o = env.run(&["create", "--bundle", b.dir.to_str().unwrap(), bad]);
        assert_clean_failure(&env, &o, &format!("create with id {bad:?}"), &["id"]);
        assert!(
            !env.work.join("escape").exists(),
            "id {bad:?} escaped the state root"
        );
        for cmd in ["state", "start", "delete"] {
            let o = env.run(&[cmd, bad]);
            assert_failed_with_message(&o, &format!("{cmd} {bad:?}"));
        }
    }
    assert!(!env.work.join("escape").exists());
}

#[test]
fn commands_on_a_missing_container() {
    let env = TestEnv::new("missing");
    for args in [
        &["state", "no-such-container"][..],
        &["start", "no-such-container"],
        &["kill", "no-such-container", "KILL"],
        &["delete", "no-such-container"],
    ] {
        let o = env.run(args);
        assert_clean_failure(
            &env,
            &o,
            &args.join(" "),
            &["no-such-container", "not exist", "not found"],
        );
    }
}

#[test]
fn unknown_signal() {
    let env = TestEnv::new("badsig");
    let mut b = env.bundle();
    b.args(&["sleep", "100"]);
    let id = env.id();
    env.create(&id, &b);
    env.start(&id);
    for sig in ["SIGNOPE", "NOPE", "999"] {
        let o = env.kill(&id, sig);
        assert_failed_with_message(&o, &format!("kill with signal {sig:?}"));
        assert!(
            stderr_of(&o).to_lowercase().contains("signal"),
            "the message should mention the signal\n{}",
            describe(&o)
        );
        assert_eq!(env.status(&id), "running", "after kill {sig:?}");
    }
    assert_ok(&env.delete_force(&id), "delete --force");
}

#[test]
fn json_log_on_failure() {
    let env = TestEnv::new("jsonlog");
    let log = env.path("log.json");
    let missing = env.work.join("no-such-bundle");
    let id = env.id();
    env.track(&id);
    let o = env.run_global(
        &["--log", log.to_str().unwrap(), "--log-format", "json"],
        &["create", "--bundle", missing.to_str().unwrap(), &id],
    );
    assert!(!o.status.success(), "{}", describe(&o));
    let content =
        fs::read_to_string(&log).unwrap_or_else(|e| panic!("log file {}: {e}", log.display()));
    let mut errors = Vec::new();
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line:?}"));
        assert!(
            v["level"].is_string() && v["msg"].is_string(),
            "log line lacks level/msg: {line}"
        );
        if v["level"] == "error" {
            errors.push(v);
        }
    }
    assert!(
        errors
            .iter()
            .any(|v| !v["msg"].as_str().unwrap().is_empty()),
        "no {{\"level\":\"error\",\"msg\":...}} line in the log:\n{content}"
    );
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
}

// A failure after init exists (runc 1.1.5 passes too: its message names its temporary
// `<dir>/.pid`). Before create killed init on this path, the init stayed behind with its
// cgroups, invisible to `list` and `delete`.
#[test]
fn pid_file_in_a_missing_directory() {
    let env = TestEnv::new("pidfiledir");
    let mut b = env.bundle();
    b.args(&["sleep", "100"]);
    let dir = env.work.join("nonexistent-dir").join("x");
    let pid_file = dir.join("pid");
    let id = env.id();
    let o = env.try_create_with(&id, &b, &["--pid-file", pid_file.to_str().unwrap()]);
    assert_clean_failure(
        &env,
        &o,
        "create with --pid-file in a missing directory",
        &[dir.to_str().unwrap()],
    );
    let listed = stdout_of(&env.run(&["list", "-q"]));
    assert!(
        listed.trim().is_empty(),
        "list after the failed create: {listed}"
    );
    // The guard checks that no process, cgroup or mount is left.
    let leaks = env.leaks();
    assert!(leaks.is_empty(), "after the failed create:\n{leaks}");
}

/// The part of `msg` said twice in a row (`A: B: B`, a cause printed again after a message
/// that holds it already), if any.
fn repetition(msg: &str) -> Option<String> {
    let parts: Vec<&str> = msg.split(": ").collect();
    for len in 1..=parts.len() / 2 {
        for i in 0..=parts.len() - 2 * len {
            if parts[i..i + len] == parts[i + len..i + 2 * len] {
                return Some(parts[i..i + len].join(": "));
            }
        }
    }
    None
}

/// Runs `create` of a bundle that `mutate` breaks, returning its result.
fn create_broken(env: &TestEnv, mutate: impl FnOnce(&mut Bundle)) -> std::process::Output {
    let mut b = env.bundle();
    b.args(&["sleep", "100"]);
    mutate(&mut b);
    let id = env.id();
    let o = env.try_create(&id, &b);
    let _ = env.delete_force(&id);
    o
}

// youki repeated the cause of 32 of 133 bad-input messages ("bundle X: No such file or
// directory (os error 2): No such file or directory (os error 2)"): each error type holds its
// cause in its message and also returns it as its source. runc 1.1.5 passes this test.
#[test]
fn messages_do_not_repeat_themselves() {
    let env = TestEnv::new("norepeat");
    let missing = env.work.join("no-such-bundle");
    let mut outputs = vec![
        env.run(&["create", "--bundle", missing.to_str().unwrap(), "x1"]),
        env.run(&["state", "no-such-container"]),
        env.run(&["delete", "no-such-container"]),
        env.run(&["kill", "no-such-container", "NOPE"]),
        create_broken(&env, |b| {
            b.args(&["/no/such/program"]);
        }),
        create_broken(&env, |b| {
            b.process()["cwd"] = serde_json::json!("/bin/busybox");
        }),
        create_broken(&env, |b| {
            let source = b.dir.join("no-such-source");
            b.bind_mount(&source, "/mnt", false);
        }),
        create_broken(&env, |b| {
            b.config["process"]["args"] = serde_json::json!(["sh", 42]);
        }),
    ];
    // try_create writes config.json from the bundle's Value: malformed text goes by `run`.
    let b = env.bundle();
    for (_, content) in MALFORMED {
        fs::write(b.config_path(), content).unwrap();
        outputs.push(env.run(&["create", "--bundle", b.dir.to_str().unwrap(), "x2"]));
    }
    let pid_file = env.work.join("no-such-dir").join("pid");
    let b = env.bundle();
    outputs.push(env.try_create_with(&env.id(), &b, &["--pid-file", pid_file.to_str().unwrap()]));
    for o in &outputs {
        assert!(!o.status.success(), "{}", describe(o));
        for line in stderr_of(o).lines() {
            assert_eq!(
                repetition(line),
                None,
                "the message says this twice:\n{}",
                describe(o)
            );
        }
    }
}

/// The non-empty lines of a command's stderr.
fn stderr_lines(o: &std::process::Output) -> Vec<String> {
    stderr_of(o)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

// youki printed every error twice on stderr: its log line (the log is stderr without --log)
// and the message again. Now the message only, and with --log the JSON line in the log file.
// runc 1.1.5 passes this test: without --log it prints its log line only; with --log the line
// goes to the file and the message to stderr.
#[test]
fn errors_are_printed_once() {
    let env = TestEnv::new("once");
    let missing = env.work.join("no-such-bundle");
    let create = ["create", "--bundle", missing.to_str().unwrap(), "x1"];
    for args in [&["state", "no-such-container"][..], &create] {
        let o = env.run(args);
        assert!(!o.status.success(), "{}", describe(&o));
        assert_eq!(stderr_lines(&o).len(), 1, "{}", describe(&o));
    }
    let log = env.path("log.json");
    let o = env.run_global(
        &["--log", log.to_str().unwrap(), "--log-format", "json"],
        &create,
    );
    assert!(!o.status.success(), "{}", describe(&o));
    assert_eq!(stderr_lines(&o).len(), 1, "{}", describe(&o));
    let content = fs::read_to_string(&log).unwrap_or_default();
    let errors = content
        .lines()
        .filter(|l| l.contains("\"level\":\"error\""))
        .count();
    assert_eq!(errors, 1, "one error line in the log:\n{content}");
}

// linux.intelRdt on a host without resctrl (this one): refused, as runc refuses it, rather
// than run the container without the cache classes it asks for. It was ignored before.
// Passes against runc 1.1.5 ("Intel RDT is not supported or enabled") and 1.3.6.
#[test]
fn intel_rdt_is_refused() {
    let env = TestEnv::new("intelrdt");
    let mut b = env.bundle();
    b.linux()["intelRdt"] = serde_json::json!({"closID": "youki-it", "l3CacheSchema": "L3:0=f"});
    b.args(&["true"]);
    let o = env.try_create(&env.id(), &b);
    assert_clean_failure(&env, &o, "create with linux.intelRdt", &["rdt"]);
}
