//! Where the workspace's scripts and this build's binaries are.

use std::path::{Path, PathBuf};

/// The workspace's root directory (scripts/ is there): this crate's parent.
pub fn workspace_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support lies in the workspace")
}

/// A script of the workspace's scripts/ directory.
pub fn script(name: &str) -> PathBuf {
    workspace_dir().join("scripts").join(name)
}

/// The directory of this build's binaries (`target/<triple>/<profile>`, what cargo's
/// `CARGO_BIN_EXE_*` name for a package's own tests). A library cannot read those
/// variables, but the test binary running it is `<that dir>/deps/<test>-<hash>`.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in a cargo target dir", exe.display()))
        .to_path_buf()
}

/// Builds `binary` of `package` into [`bin_dir`] (release or debug as this build) with
/// `cargo build`; returns its path.
pub fn cargo_build(package: &str, binary: &str) -> PathBuf {
    let dir = bin_dir();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace_dir())
        .args(["build", "-p", package, "--bin", binary]);
    if dir.ends_with("release") {
        cmd.arg("--release");
    }
    let st = cmd
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for {binary}: {e}"));
    assert!(st.success(), "cargo build of {binary} failed");
    let bin = dir.join(binary);
    assert!(bin.is_file(), "{binary} not built in {}", dir.display());
    bin
}
