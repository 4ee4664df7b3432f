//! The harness of the root package's integration tests: youki-test-support
//! (test-support/), which the end-to-end tests and the shim's tests share.
//!
//! Every test builds a [`TestEnv`]: its own `--root` state directory, work directory,
//! container ids and cgroup names; when it is dropped (also when the test panicked) it
//! force-deletes every container the test created and fails the test if anything leaked
//! (mounts, cgroups, processes, state entries).
//!
//! The runtime under test is `$RUNTIME_BIN`, by default the `youki` binary of this
//! package. To check the tests themselves against runc:
//! `RUNTIME_BIN=/usr/sbin/runc cargo test --test lifecycle`.
//!
//! The tests must run as root; they fail (never silently pass) otherwise.

// Each test binary uses a part of it (as `#![allow(dead_code)]` in a module of its own).
#![allow(unused_imports)]

pub use youki_test_support::bundle::*;
pub use youki_test_support::cgroups::{
    cgroup_hierarchies, host_cgroup_file, is_cgroup_v2_only, Hierarchy,
};
pub use youki_test_support::criu::*;
pub use youki_test_support::env::*;
pub use youki_test_support::leaks::Leaks;
pub use youki_test_support::mounts::mount_points;
pub use youki_test_support::output::*;
pub use youki_test_support::process::{
    own_namespace, pid_alive, poll, require_root, wait_child, wait_pid_gone,
};
pub use youki_test_support::rootfs::*;
pub use youki_test_support::systemd::*;
