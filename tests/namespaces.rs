//! Namespaces: new ones by default, joining another container's by path.

mod common;

use std::time::Duration;

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
