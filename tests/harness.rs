//! Checks of the test harness itself: that the leak checker sees what a
//! container leaves on the host, so that the other tests' clean bill of health
//! means something.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn leak_checker_sees_a_live_container() {
    let env = TestEnv::new("harness");
    let mut b = env.bundle();
    b.args(&["sleep", "100"]);
    b.save();
    let id = env.id();
    // Not through env.create: the guard does not know about this one.
    let o = env.run(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert_ok(&o, "create");
    env.start(&id);
    let pid = env.pid(&id);

    let leaks = env.leaks();
    assert!(
        leaks.state_entries.contains(&id),
        "state entry not seen: {leaks:?}"
    );
    assert!(
        leaks.processes.iter().any(|(p, _)| *p == pid),
        "container process {pid} not seen: {leaks:?}"
    );
    let cg_name = b.cgroups_path.trim_start_matches('/');
    assert!(
        leaks.cgroups.iter().any(|c| c.ends_with(cg_name)),
        "cgroup {cg_name} not seen: {leaks:?}"
    );

    assert_ok(&env.delete_force(&id), "delete --force");
    assert!(wait_pid_gone(pid, Duration::from_secs(10)));
    assert!(
        poll(Duration::from_secs(5), || env.leaks().is_empty()),
        "leaks after delete --force: {:?}",
        env.leaks()
    );
}

#[test]
fn leak_checker_sees_a_mount_in_the_bundle() {
    let env = TestEnv::new("harnessmnt");
    let b = env.bundle();
    let target = b.rootfs().join("tmp");
    let c = std::ffi::CString::new(target.to_str().unwrap()).unwrap();
    let fstype = std::ffi::CString::new("tmpfs").unwrap();
    // SAFETY: mount(2) with valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            c.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "mount tmpfs: {}", std::io::Error::last_os_error());
    let leaks = env.leaks();
    let unmount = || {
        // SAFETY: umount2 of the mount made above.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) }
    };
    if !leaks.mounts.iter().any(|m| m == target.to_str().unwrap()) {
        unmount();
        panic!("mount {} not seen: {leaks:?}", target.display());
    }
    assert_eq!(unmount(), 0);
    assert!(env.leaks().is_empty(), "{:?}", env.leaks());
}
