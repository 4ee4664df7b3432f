//! seccomp, end to end: `linux.seccomp` applied to busybox containers on the real kernel.
//!
//! tests/data/docker-default-seccomp.json is a profile equal in content to Docker's default,
//! written from Docker's documentation of it ("Seccomp security profiles for Docker"): an
//! allowlist with `defaultAction` SCMP_ACT_ERRNO (EPERM) over x86_64, x86 and x32, holding
//! every syscall of the kernel's x86 tables except those the documentation lists as blocked
//! (or gated by a capability outside the default set: acct, add_key, bpf, clock_adjtime,
//! clock_settime, create_module, delete_module, finit_module, init_module, ioperm, iopl,
//! kcmp, kexec_*, keyctl, mount, umount*, pivot_root, reboot, request_key, setns, unshare,
//! swapon/off, userfaultfd, ...), with Docker's argument rules: `personality` only for
//! 0x0, 0x8, 0x20000, 0x20008 and 0xffffffff, `clone` only without namespace flags, `clone3`
//! answering ENOSYS. ptrace and process_vm_* are allowed, as Docker does on kernels >= 4.8.
//!
//! Every attack runs twice where that is safe: under the filter, where it must fail, and
//! without it, where it must succeed, so that each test fails if the filter did nothing.

mod common;
#[path = "data/support.rs"]
mod support;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use support::*;

/// A bundle with `sectest` in it and `profile` as linux.seccomp (None: no filter).
fn bundle(env: &TestEnv, profile: Option<Value>, script: &str) -> Bundle {
    let mut b = env.bundle();
    install_sectest(&b.rootfs(), "sectest", 0o755);
    if let Some(p) = profile {
        b.linux()["seccomp"] = p;
    }
    b.sh(script);
    b
}

/// Runs `script` (whose last status is ignored) and returns its output.
fn run_sh(env: &TestEnv, profile: Option<Value>, script: &str) -> String {
    let b = bundle(env, profile, &format!("{script}\ntrue"));
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run");
    stdout_of(&o)
}

/// Adds a capability to every set of the bundle's process.
fn add_cap(b: &mut Bundle, cap: &str) {
    for set in ["bounding", "effective", "permitted"] {
        b.process()["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!(cap));
    }
}

/// `name: <exit status> <message>` lines for each attack.
const ATTACKS: &str = r#"
t() { name=$1; shift; out=$("$@" 2>&1); echo "$name: $? $out"; }
t unshare unshare -U true
t keyctl sectest keyctl
t add_key sectest add_key
t personality-query sectest personality ffffffff
t personality-linux32 sectest personality 8
t personality-norandom sectest personality 40000
"#;

fn line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
}

#[test]
fn docker_default_profile_blocks_escapes_and_busybox_works() {
    let env = TestEnv::new("scdocker");
    let blocked = run_sh(&env, Some(docker_profile()), ATTACKS);
    let open = run_sh(&env, None, ATTACKS);
    for name in ["unshare", "keyctl", "add_key", "personality-norandom"] {
        let l = line(&blocked, name);
        assert!(
            l.contains("Operation not permitted") || l.contains("errno 1 "),
            "{name} not refused with EPERM under the profile: {l}\n{blocked}"
        );
        assert!(
            line(&open, name).starts_with(&format!("{name}: 0 ")),
            "{name} fails even without seccomp, so this test proves nothing: {open}"
        );
    }
    // The argument rule: the values Docker allows still work.
    for name in ["personality-query", "personality-linux32"] {
        assert!(
            line(&blocked, name).starts_with(&format!("{name}: 0 ok")),
            "{blocked}"
        );
    }

    // Everything a busybox container does still works.
    let everyday = "set -e; ls / >/dev/null; ps >/dev/null; cat /proc/self/status >/dev/null; \
        id; date >/dev/null; echo hi > /tmp/f; cat /tmp/f; wc -l < /etc/passwd; \
        sort /etc/passwd | uniq >/dev/null; find /etc -type f >/dev/null; \
        tar cf /tmp/t.tar /etc 2>/dev/null; gzip /tmp/t.tar; ls /tmp/t.tar.gz >/dev/null; \
        sleep 0.01; uname -a >/dev/null; hostname; df / >/dev/null; \
        (echo sub; true) | cat; sh -c 'exit 3' || echo \"sub exit $?\"; \
        ln -s /etc/passwd /tmp/l; readlink /tmp/l; mkdir /tmp/d; rmdir /tmp/d; \
        kill -0 $$; trap 'echo trapped' USR1; kill -USR1 $$; echo ALL-OK";
    let mut b = bundle(&env, Some(docker_profile()), everyday);
    b.config["root"]["readonly"] = json!(false);
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "busybox under Docker's profile");
    let out = stdout_of(&o);
    for want in [
        "uid=0(root)",
        "hi\n",
        "sub\n",
        "sub exit 3",
        "/etc/passwd",
        "trapped",
        "ALL-OK",
    ] {
        assert!(out.contains(want), "{want:?} missing:\n{}", describe(&o));
    }
}

#[test]
fn docker_profile_blocks_mount_even_with_cap_sys_admin() {
    // Without CAP_SYS_ADMIN, mount fails with or without seccomp; with it, only the filter
    // stands between the container and mount, umount and pivot_root.
    let env = TestEnv::new("scmount");
    let script = "t() { name=$1; shift; out=$(\"$@\" 2>&1); echo \"$name: $? $out\"; }; \
        t mount mount -t tmpfs none /tmp; t umount umount /dev/mqueue; t unshare unshare -m true";
    let mut with = bundle(&env, Some(docker_profile()), script);
    add_cap(&mut with, "CAP_SYS_ADMIN");
    let o = env.run_container(&env.id(), &with);
    assert_ok(&o, "run");
    let blocked = stdout_of(&o);
    let mut without = bundle(&env, None, script);
    add_cap(&mut without, "CAP_SYS_ADMIN");
    let o = env.run_container(&env.id(), &without);
    assert_ok(&o, "run");
    let open = stdout_of(&o);
    for name in ["mount", "umount", "unshare"] {
        let l = line(&blocked, name);
        // busybox mount says EPERM in its own words.
        assert!(
            l.starts_with(&format!("{name}: 1 "))
                && (l.contains("Operation not permitted") || l.contains("permission denied")),
            "{l}\n{blocked}"
        );
        assert!(
            line(&open, name).starts_with(&format!("{name}: 0")),
            "{name} fails even without the filter: {open}"
        );
    }
}

#[test]
fn exec_processes_get_the_filter_too() {
    let env = TestEnv::new("scexec");
    let mut b = bundle(&env, Some(docker_profile()), "sleep 60");
    b.args(&["sleep", "60"]);
    let id = env.id();
    env.create(&id, &b);
    env.start(&id);
    let o = env.run(&["exec", &id, "sh", "-c", ATTACKS]);
    assert_ok(&o, "exec");
    let out = stdout_of(&o);
    assert!(
        line(&out, "unshare").contains("Operation not permitted"),
        "{out}"
    );
    assert!(line(&out, "keyctl").contains("errno 1 "), "{out}");
    assert!(line(&out, "personality-query").contains(" ok "), "{out}");
    // The process runs with the same filter as init (one filter: Seccomp mode 2).
    let o = env.run(&["exec", &id, "grep", "Seccomp:", "/proc/self/status"]);
    assert_ok(&o, "exec");
    assert!(stdout_of(&o).contains('2'), "{}", describe(&o));
    let _ = env.kill(&id, "KILL");
}

#[test]
fn default_errno_ret_and_errno_ret() {
    let env = TestEnv::new("scerrno");
    let mut profile = docker_profile();
    profile["defaultErrnoRet"] = json!(libc::EOPNOTSUPP);
    let out = run_sh(&env, Some(profile), "sectest keyctl; unshare -U true 2>&1");
    assert!(
        out.contains(&format!("errno {} ", libc::EOPNOTSUPP)),
        "defaultErrnoRet not used: {out}"
    );
    assert!(out.contains("Operation not supported"), "{out}");

    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSPC},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}
        ]
    });
    let out = run_sh(
        &env,
        Some(profile),
        "sectest mkdir /tmp/d; mkdir /tmp/e 2>&1; sectest euid",
    );
    assert!(out.contains(&format!("errno {} ", libc::ENOSPC)), "{out}");
    assert!(out.contains("No space left on device"), "{out}");
    assert!(out.ends_with("0\n"), "other syscalls still run: {out}");
}

#[test]
fn kill_actions_end_the_process_with_sigsys() {
    let env = TestEnv::new("sckill");
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["rmdir"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_KILL"},
            {"names": ["rename", "renameat", "renameat2"], "action": "SCMP_ACT_TRAP"}
        ]
    });
    let script = "touch /tmp/a; \
        sectest mkdir /tmp/d; echo \"mkdir $?\"; \
        rmdir /tmp/nothing 2>/dev/null; echo \"rmdir $?\"; \
        ln -s a /tmp/b; echo \"symlink $?\"; \
        mv /tmp/a /tmp/c; echo \"rename $?\"; echo done";
    let mut b = bundle(&env, Some(profile), script);
    b.config["root"]["readonly"] = json!(false);
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run");
    let out = stdout_of(&o);
    // 128 + SIGSYS (31): each child died of the signal, the shell went on.
    for name in ["mkdir", "rmdir", "symlink", "rename"] {
        assert!(
            out.contains(&format!("{name} 159\n")),
            "{name} not killed by SIGSYS:\n{out}"
        );
    }
    assert!(out.ends_with("done\n"), "{out}");

    // The container's own process killed: `run` reports it.
    let mut b = bundle(
        &env,
        Some(json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]})),
        "",
    );
    b.args(&["sectest", "mkdir", "/tmp/x"]);
    let o = env.run_container(&env.id(), &b);
    assert_eq!(o.status.code(), Some(159), "{}", describe(&o));
}

#[test]
fn log_action_allows_and_logs() {
    let env = TestEnv::new("sclog");
    // A name of its own, so that the audit record found is this run's.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let comm = format!("lg{nanos:08x}");
    let mut b = env.bundle();
    install_sectest(&b.rootfs(), &comm, 0o755);
    b.linux()["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_LOG"}]
    });
    b.sh(&format!("{comm} personality ffffffff"));
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run");
    assert!(
        stdout_of(&o).starts_with("ok "),
        "LOG must let the syscall run: {}",
        describe(&o)
    );
    // The kernel logs it (audit type 1326, SECCOMP_RET_LOG) when "log" is among the logged
    // actions, which is the default.
    let logged =
        std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_logged").unwrap_or_default();
    if logged.split_whitespace().any(|a| a == "log") {
        let needle = format!("comm=\"{comm}\"");
        let found = poll(Duration::from_secs(5), || {
            let o = std::process::Command::new("dmesg").output();
            o.map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.contains(&needle) && l.contains("code=0x7ffc0000"))
            })
            .unwrap_or(false)
        });
        assert!(found, "no seccomp LOG audit record with {needle} in dmesg");
    }
}

#[test]
fn notify_reaches_the_listener_with_state_and_fd() {
    let env = TestEnv::new("scnotify");
    let sock = env.path("agent.sock");
    let deliveries = listen(&sock);
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "meta-42",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let b = bundle(&env, Some(profile), "sectest mkdir /tmp/x; sectest fds");
    let id = env.id();
    env.create(&id, &b);
    let d = deliveries
        .recv_timeout(Duration::from_secs(10))
        .expect("nothing reached the listener")
        .expect("a delivery");
    assert_eq!(d.state["fds"], json!(["seccompFd"]), "{}", d.state);
    assert_eq!(d.state["metadata"], "meta-42", "{}", d.state);
    assert_eq!(d.state["ociVersion"], "1.2.0");
    assert_eq!(d.state["state"]["id"], id.as_str(), "{}", d.state);
    assert_eq!(d.state["state"]["status"], "creating", "{}", d.state);
    assert_eq!(d.state["pid"], env.pid(&id), "{}", d.state);
    assert_eq!(
        std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&d.fd)
        ))
        .unwrap()
        .to_string_lossy(),
        "anon_inode:seccomp notify"
    );
    // The agent answers: the container's mkdir fails with the errno the agent chose.
    let agent = answer_all(d.fd, libc::EROFS);
    env.start(&id);
    env.wait_for_status(&id, "stopped", Duration::from_secs(20));
    let seen = agent.join().unwrap();
    assert!(!seen.is_empty(), "no notification");
    let out = env.container_stdout(&id);
    assert!(
        out.contains(&format!("errno {} ", libc::EROFS)),
        "the agent's answer did not reach the container: {out}"
    );
    // The container does not keep a notify descriptor of its own to answer itself with.
    assert!(out.lines().any(|l| l.trim() == "0 1 2"), "{out}");
}

/// An old profile must not break new programs or the runtime itself: syscalls newer than
/// every syscall it names answer ENOSYS (as runc's stub makes them), so that glibc falls
/// back (clone3 -> clone for threads), and the runtime's own close_range falls back too
/// (without noNewPrivileges the filter is loaded before the runtime's last steps).
#[test]
fn a_2019_profile_gives_enosys_for_newer_syscalls() {
    let env = TestEnv::new("sec2019");
    let script = "t close_range sectest close_range\nt thread sectest thread\n";
    for nnp in [false, true] {
        let mut b = bundle(
            &env,
            Some(profile_2019()),
            &format!("t() {{ name=$1; shift; out=$(\"$@\" 2>&1); echo \"$name: $? $out\"; }}\n{script}true"),
        );
        b.process()["noNewPrivileges"] = json!(nnp);
        let o = env.run_container(&env.id(), &b);
        assert_ok(
            &o,
            &format!("run with a 2019 profile, noNewPrivileges {nnp}"),
        );
        let out = stdout_of(&o);
        assert!(
            line(&out, "close_range").contains("errno 38 "),
            "close_range must be ENOSYS, not EPERM:\n{out}"
        );
        assert!(
            line(&out, "thread").contains("ok 42"),
            "a thread must start (clone3 -> clone):\n{out}"
        );
    }
    // Without the filter the same calls work: the test proves the stub, not a broken helper.
    let out = run_sh(&env, None, "sectest close_range; sectest thread");
    assert!(out.contains("ok 0") && out.contains("ok 42"), "{out}");
}

/// `create` with `seccomp` as linux.seccomp: must fail naming `field`, leaving nothing.
#[track_caller]
fn refused(env: &TestEnv, seccomp: Value, field: &str, words: &str) {
    let b = bundle(env, Some(seccomp), "true");
    let id = env.id();
    let o = env.try_create(&id, &b);
    assert_failed_with_message(&o, "create with a bad seccomp profile");
    let err = stderr_of(&o);
    assert!(
        err.contains(&format!("{field}: {words}")),
        "error does not name {field} ({words}):\n{err}"
    );
    assert!(
        env.state_entries().is_empty(),
        "state left behind: {:?}",
        env.state_entries()
    );
    let leaks = env.leaks();
    assert!(leaks.is_empty(), "left behind:\n{leaks}");
}

#[test]
fn bad_profiles_fail_naming_the_field_and_leave_nothing() {
    let env = TestEnv::new("scbad");
    let mut p = docker_profile();
    p["syscalls"][3]["action"] = json!("SCMP_ACT_FOO");
    refused(
        &env,
        p,
        "linux.seccomp.syscalls[3].action",
        "unknown action \"SCMP_ACT_FOO\"",
    );

    let mut p = docker_profile();
    p["architectures"] = json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_PDP11"]);
    refused(
        &env,
        p,
        "linux.seccomp.architectures[1]",
        "unknown architecture \"SCMP_ARCH_PDP11\"",
    );

    let mut p = docker_profile();
    p["syscalls"][1]["args"][0]["op"] = json!("SCMP_CMP_ROUGHLY");
    refused(
        &env,
        p,
        "linux.seccomp.syscalls[1].args[0].op",
        "unknown operator",
    );

    let mut p = docker_profile();
    p["syscalls"][1]["args"][0]["index"] = json!(6);
    refused(
        &env,
        p,
        "linux.seccomp.syscalls[1].args[0].index",
        "syscall arguments are numbered 0 to 5",
    );

    let mut p = docker_profile();
    p["syscalls"][1]["args"][0]["value"] = json!("eight");
    refused(
        &env,
        p,
        "linux.seccomp.syscalls[1].args[0].value",
        "expected an unsigned 64-bit integer",
    );

    let mut p = docker_profile();
    p["flags"] = json!(["SECCOMP_FILTER_FLAG_TURBO"]);
    refused(&env, p, "linux.seccomp.flags[0]", "unknown flag");

    let p = json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]});
    refused(
        &env,
        p,
        "linux.seccomp.syscalls[0].errnoRet",
        "set, but action SCMP_ACT_ALLOW takes no errno",
    );

    let p = json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    refused(&env, p, "linux.seccomp.listenerPath", "required");

    let p = json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"]});
    refused(
        &env,
        p,
        "linux.seccomp.architectures[1]",
        "SCMP_ARCH_S390X cannot be combined",
    );

    // Found only in the container's process: the listener is not there. Still nothing left.
    let p = json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "listenerPath": env.path("nobody-listens"),
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    refused(&env, p, "linux.seccomp.listenerPath", "connecting to");
}

#[test]
fn unknown_syscall_names_are_ignored_with_a_warning() {
    let env = TestEnv::new("scunknown");
    let p = json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["no_such_call", "mkdir", "mkdirat"],
                                 "action": "SCMP_ACT_ERRNO"}]});
    let b = bundle(&env, Some(p), "mkdir /tmp/x 2>&1; echo end");
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run");
    assert!(
        stdout_of(&o).contains("Operation not permitted"),
        "{}",
        describe(&o)
    );
    assert!(
        stderr_of(&o).contains("linux.seccomp.syscalls[0].names[0]: unknown syscall")
            && stderr_of(&o).contains("no_such_call"),
        "no warning:\n{}",
        describe(&o)
    );
}

#[test]
fn features_lists_what_the_filter_compiler_takes() {
    let env = TestEnv::new("scfeat");
    let o = env.run(&["features"]);
    assert_ok(&o, "features");
    let f: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sc = &f["linux"]["seccomp"];
    assert_eq!(sc["enabled"], true, "{sc}");
    let set = |v: &Value| -> std::collections::BTreeSet<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    // What runc 1.1 lists, we list (archs: a superset, as libseccomp knows riscv64 too).
    let runc = std::process::Command::new("runc").arg("features").output();
    if let Some(r) = runc.ok().filter(|r| r.status.success()) {
        let theirs: Value = serde_json::from_slice(&r.stdout).unwrap();
        let theirs = &theirs["linux"]["seccomp"];
        assert_eq!(set(&sc["actions"]), set(&theirs["actions"]));
        assert_eq!(set(&sc["operators"]), set(&theirs["operators"]));
        assert!(
            set(&sc["archs"]).is_superset(&set(&theirs["archs"])),
            "{sc}"
        );
    }
    // Every listed action, operator, flag works in a container.
    for flag in set(&sc["supportedFlags"]) {
        let p = json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": [flag],
                       "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
        let out = run_sh(&env, Some(p), "mkdir /tmp/x 2>&1");
        assert!(out.contains("Operation not permitted"), "{flag}: {out}");
    }
}
