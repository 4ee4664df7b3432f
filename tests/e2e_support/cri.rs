//! A private containerd with its CRI plugin, driven as kubelet drives it: youki-test-support's
//! CRI harness and config (test-support/src/cri.rs, cri_config.rs). The CRI tests include
//! this file with `#[path]`, beside tests/e2e_support.

// Each test binary uses a part of it (as `#![allow(dead_code)]` in a module of its own).
#![allow(unused_imports)]

pub use youki_test_support::containerd::{containerd_major, containerd_version};
pub use youki_test_support::cri::*;
pub use youki_test_support::cri_config::*;
pub use youki_test_support::process::ns_of;
