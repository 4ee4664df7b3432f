//! What the workspace's integration tests share, written once: the root package's
//! runtime tests (tests/common), its end-to-end tests with real clients
//! (tests/e2e_support) and the shim's ttrpc tests (shim/tests/support) reach it through
//! thin modules of their own, scripts/bench.sh through the `youki-cri-config` binary.
//!
//! - [`leaks`]: what a test left on the host (processes, mounts, cgroups, runtime
//!   state), found by the test's temp dir and marker, and its removal;
//! - [`process`], [`mounts`], [`cgroups`]: the host as those checks and the tests see it;
//! - [`rootfs`], [`bundle`]: busybox root filesystems and OCI bundles;
//! - [`env`](mod@env): [`env::TestEnv`], one runtime test's state root, bundles and leak check;
//! - [`world`]: [`world::World`], one end-to-end test's temp dir and leak check, and its
//!   clients' commands;
//! - [`containerd`]: a private containerd (own config, root, state and sockets in the
//!   world, no TCP listener, stopped by its pid);
//! - [`cri_config`]: that containerd's CRI config, for the tests and for the benchmark;
//! - `cri` (feature `cri`): containerd with CRI, CNI and local images, driven as kubelet
//!   drives it.
//! - [`output`], [`criu`], [`systemd`], [`paths`]: commands' results, CRIU, systemd, and
//!   where the scripts and the build's binaries are.
//!
//! Everything here runs as root on the real host and panics with a clear message when
//! something is wrong: it is test code.

#![warn(missing_docs)]

pub mod bundle;
pub mod cgroups;
pub mod containerd;
#[cfg(feature = "cri")]
pub mod cri;
pub mod cri_config;
pub mod criu;
pub mod env;
pub mod leaks;
pub mod mounts;
pub mod output;
pub mod paths;
pub mod process;
pub mod rootfs;
pub mod systemd;
pub mod world;
