//! `exec`: a new process in a running container, as runc runs it.

mod common;

use std::time::Duration;

use common::*;

/// A created and started container running `sleep 100`, and its id.
fn running(env: &TestEnv) -> (String, Bundle) {
    let mut b = env.bundle();
    b.config["hostname"] = serde_json::json!("exec-host");
    b.sh("sleep 100");
    let id = env.id();
    env.create(&id, &b);
    env.start(&id);
    (id, b)
}

/// `exec FLAGS... ID COMMAND...`: flags before the id, as runc requires and its callers do.
fn exec_with(env: &TestEnv, flags: &[&str], id: &str, command: &[&str]) -> std::process::Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(flags);
    all.push(id);
    all.extend_from_slice(command);
    env.run(&all)
}

fn exec(env: &TestEnv, id: &str, command: &[&str]) -> std::process::Output {
    exec_with(env, &[], id, command)
}

#[test]
fn output_and_exit_code() {
    let env = TestEnv::new("execout");
    let (id, _b) = running(&env);
    let o = exec(&env, &id, &["sh", "-c", "echo hi; echo err >&2; exit 5"]);
    assert_eq!(o.status.code(), Some(5), "{}", describe(&o));
    assert_eq!(stdout_of(&o), "hi\n");
    assert_eq!(stderr_of(&o).trim(), "err");
}

#[test]
fn sees_the_container_namespaces_mounts_and_cgroup() {
    let env = TestEnv::new("execns");
    let (id, b) = running(&env);
    std::fs::write(b.rootfs().join("marker"), "inside\n").unwrap();
    let o = exec(
        &env,
        &id,
        &[
            "sh",
            "-c",
            "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /marker; \
             cat /proc/self/cgroup; echo --; cat /proc/1/cgroup",
        ],
    );
    assert_ok(&o, "exec");
    let out = stdout_of(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "exec-host", "{out}");
    // In the container's pid namespace, but not its init.
    let pid: i32 = lines[1].parse().unwrap();
    assert!(pid > 1, "{out}");
    // (busybox sh -c execs a lone command.)
    assert_eq!(lines[2].trim(), "sleep 100", "{out}");
    assert_eq!(lines[3], "inside", "{out}");
    // In init's cgroup: /proc/self/cgroup as init's.
    let cgroups = lines[4..].join("\n");
    let (own, init) = cgroups
        .split_once("\n--\n")
        .unwrap_or_else(|| panic!("no /proc/1/cgroup: {out}"));
    assert_eq!(own, init, "not in init's cgroup: {out}");
    if is_cgroup_v2_only() {
        // With the cgroup namespace of a v2 default config, the container's cgroup is its
        // root.
        assert_eq!(
            own, "0::/",
            "not in the container's cgroup namespace: {out}"
        );
    } else {
        assert!(
            own.contains(&b.cgroups_path),
            "not in {}: {out}",
            b.cgroups_path
        );
    }
}

#[test]
fn user_env_and_cwd() {
    let env = TestEnv::new("execuser");
    let (id, _b) = running(&env);
    let o = exec_with(
        &env,
        &[
            "--user",
            "1000:1000",
            "--additional-gids",
            "2000",
            "--env",
            "FOO=bar",
            "--cwd",
            "/tmp",
        ],
        &id,
        &["sh", "-c", "id -u; id -g; id -G; echo $FOO; pwd"],
    );
    assert_ok(&o, "exec");
    assert_eq!(stdout_of(&o), "1000\n1000\n1000 2000\nbar\n/tmp\n");
}

#[test]
fn process_file_takes_its_own_env_cwd_and_user() {
    let env = TestEnv::new("execproc");
    let (id, b) = running(&env);
    let p = b.dir.join("process.json");
    std::fs::write(
        &p,
        serde_json::json!({
            "args": ["sh", "-c", "echo $ONLY; pwd; id -u"],
            "env": ["ONLY=mine", "PATH=/bin"],
            "cwd": "/etc",
            "user": {"uid": 1000, "gid": 1000}
        })
        .to_string(),
    )
    .unwrap();
    let o = exec_with(&env, &["--process", p.to_str().unwrap()], &id, &[]);
    assert_ok(&o, "exec --process");
    assert_eq!(stdout_of(&o), "mine\n/etc\n1000\n");
}

#[test]
fn detached_writes_pid_file_and_runs_in_the_cgroup() {
    let env = TestEnv::new("execdetach");
    let (id, b) = running(&env);
    let pid_file = b.dir.join("exec.pid");
    let o = exec_with(
        &env,
        &["--detach", "--pid-file", pid_file.to_str().unwrap()],
        &id,
        &["sleep", "50"],
    );
    assert_ok(&o, "exec --detach");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    let procs = host_cgroup_file(&b.cgroups_path, "pids", "cgroup.procs", "cgroup.procs");
    let members = std::fs::read_to_string(&procs).unwrap();
    assert!(
        members.lines().any(|l| l.trim() == pid.to_string()),
        "{pid} not in {}: {members}",
        procs.display()
    );
    // delete --force takes the exec'd process down with the container.
    assert_ok(&env.delete_force(&id), "delete --force");
    assert!(
        wait_pid_gone(pid, Duration::from_secs(5)),
        "exec'd {pid} survived"
    );
}

#[test]
fn bad_exec_requests_are_clear_errors() {
    let env = TestEnv::new("execbad");
    let o = exec(&env, "nope", &["true"]);
    assert_failed_with_message(&o, "exec into a missing container");
    // NOTE: runc 1.1.5 FAILS this: its message does not name the container.
    assert!(stderr_of(&o).contains("nope"), "{}", describe(&o));

    let (id, _b) = running(&env);
    let o = exec(&env, &id, &["/no/such/program"]);
    assert_failed_with_message(&o, "exec of a missing program");
    assert!(
        stderr_of(&o).contains("/no/such/program"),
        "{}",
        describe(&o)
    );

    let o = exec(&env, &id, &[]);
    assert_failed_with_message(&o, "exec without a command");

    assert_ok(&env.kill(&id, "KILL"), "kill");
    env.wait_for_status(&id, "stopped", Duration::from_secs(5));
    let o = exec(&env, &id, &["true"]);
    assert_failed_with_message(&o, "exec into a stopped container");
    assert!(stderr_of(&o).contains("stopped"), "{}", describe(&o));
}
