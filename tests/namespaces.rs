//! Namespaces: new ones by default, joining another container's by path, and the view of
//! the container's own cgroup a cgroup namespace gives (on cgroup v1 and v2 alike).

mod common;

use std::time::Duration;

use serde_json::json;

use common::*;

fn host_ns(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/ns/{ns}: {e}"))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn container_gets_its_own_namespaces() {
    let env = TestEnv::new("nsown");
    let mut b = env.bundle();
    b.sh("for n in pid net ipc uts mnt; do echo $n $(readlink /proc/self/ns/$n); done");
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run");
    let out = stdout_of(&o);
    for (ns, link) in out.lines().filter_map(|l| l.split_once(' ')) {
        assert_ne!(
            link,
            host_ns("self", ns),
            "{ns} namespace shared with the host: {out}"
        );
        assert!(link.starts_with(&format!("{ns}:[")), "{out}");
    }
    assert_eq!(out.lines().count(), 5, "{out}");
}

#[test]
fn join_network_namespace_of_another_container() {
    let env = TestEnv::new("nsjoin");
    let mut a = env.bundle();
    a.args(&["sleep", "100"]);
    let a_id = env.id();
    env.create(&a_id, &a);
    env.start(&a_id);
    let a_pid = env.pid(&a_id).to_string();
    let a_net = host_ns(&a_pid, "net");
    assert_ne!(a_net, host_ns("self", "net"));

    let mut b = env.bundle();
    b.namespace("network", Some(&format!("/proc/{a_pid}/ns/net")));
    b.sh("readlink /proc/self/ns/net; readlink /proc/self/ns/uts");
    let o = env.run_container(&env.id(), &b);
    assert_ok(&o, "run joining a network namespace");
    let out = stdout_of(&o);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some(a_net.as_str()),
        "network namespace not joined: {out}"
    );
    // Only the network namespace is shared.
    assert_ne!(lines.next(), Some(host_ns(&a_pid, "uts").as_str()), "{out}");

    assert_ok(&env.kill(&a_id, "KILL"), "kill");
    env.wait_for_status(&a_id, "stopped", Duration::from_secs(10));
    assert_ok(&env.delete(&a_id), "delete");
}

#[test]
fn join_a_nonexistent_namespace_path_fails_cleanly() {
    let env = TestEnv::new("nsbad");
    let mut b = env.bundle();
    b.namespace("network", Some("/proc/999999999/ns/net"));
    b.args(&["true"]);
    let id = env.id();
    let o = env.try_create(&id, &b);
    assert_failed_with_message(&o, "create joining a nonexistent namespace");
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
}

#[test]
fn cgroup_namespace_makes_the_container_cgroup_its_root() {
    let env = TestEnv::new("nscgroup");
    let v2 = is_cgroup_v2_only();
    // What the container sees of its cgroup: its /proc/self/cgroup, its cgroup namespace,
    // and its pids limit through its own /sys/fs/cgroup.
    let script = "cat /proc/self/cgroup; echo ns $(readlink /proc/self/ns/cgroup); \
                  echo max $(cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max)";
    let view = |cgroupns: bool| {
        let mut b = env.bundle();
        if cgroupns {
            b.namespace("cgroup", None);
        } else {
            b.linux()["namespaces"]
                .as_array_mut()
                .expect("linux.namespaces")
                .retain(|n| n["type"] != "cgroup");
        }
        b.resource("pids", json!({ "limit": 42 }));
        b.sh(script);
        let o = env.run_container(&env.id(), &b);
        assert_ok(&o, "run");
        (stdout_of(&o), b.cgroups_path.clone())
    };

    let (out, cgroups_path) = view(true);
    let line = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {out}"))
            .to_string()
    };
    assert_ne!(
        line("ns "),
        host_ns("self", "cgroup"),
        "cgroup namespace shared with the host: {out}"
    );
    assert_eq!(
        line("max "),
        "42",
        "/sys/fs/cgroup is not the container's: {out}"
    );
    let cgroup_lines: Vec<&str> = out.lines().filter(|l| !l.contains(' ')).collect();
    if v2 {
        // One unified hierarchy, rooted at the container's cgroup.
        assert_eq!(cgroup_lines, ["0::/"], "{out}");
    } else {
        // The pids hierarchy (the runtime put the container there) is rooted at its cgroup.
        let pids = cgroup_lines
            .iter()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|c| c == "pids"))
            })
            .unwrap_or_else(|| panic!("no pids line: {out}"));
        assert!(pids.ends_with(":/"), "{out}");
    }
    assert!(!out.contains(&cgroups_path), "the host's path shows: {out}");

    // Without one, the container sees where it is in the host's hierarchy.
    let (out, cgroups_path) = view(false);
    assert!(
        out.lines()
            .any(|l| l.starts_with("0::") || l.contains(":pids:"))
            && out.contains(&cgroups_path),
        "/proc/self/cgroup without a cgroup namespace should show {cgroups_path}: {out}"
    );
}
