//! Shared pieces of the end-to-end tests with real clients (podman, containerd + ctr,
//! dockerd): youki-test-support's [`World`] and private containerd.
//!
//! Each test owns a [`World`]: a temp directory holding everything the client and the
//! runtime write, a marker naming its cgroups, and a leak check when it is dropped. The
//! runtime under test is `$RUNTIME_BIN` (default: this package's youki):
//! `RUNTIME_BIN=/usr/sbin/runc cargo test --test e2e_podman` checks the tests themselves
//! against runc.
//!
//! cri.rs (containerd with CRI, CNI and local images) is included by the CRI tests alone
//! (`#[path]`).

// Each test binary uses a part of it (as `#![allow(dead_code)]` in a module of its own).
#![allow(unused_imports)]

pub use youki_test_support::output::status_text;
pub use youki_test_support::process::wait_child;
pub use youki_test_support::world::*;

/// A private containerd for the tests with containerd and a shim.
pub mod containerd {
    pub use youki_test_support::containerd::*;
}
