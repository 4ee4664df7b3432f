//! systemd on a host booted with it (tests/e2e_cri_systemd.rs, tests/systemd.rs).

use std::process::Command;

use crate::output::{assert_ok, stdout_of};

/// `systemctl show UNIT -p NAME --value` (a host booted with systemd).
#[track_caller]
pub fn systemctl_show(unit: &str, property: &str) -> String {
    let o = Command::new("systemctl")
        .args(["show", unit, "-p", property, "--value"])
        .output()
        .expect("run systemctl");
    assert_ok(&o, &format!("systemctl show {unit} -p {property}"));
    stdout_of(&o).trim().to_string()
}

/// The systemd units matching `pattern`, loaded in any state.
#[track_caller]
pub fn systemd_units(pattern: &str) -> Vec<String> {
    let o = Command::new("systemctl")
        .args(["list-units", "--all", "--plain", "--no-legend", pattern])
        .output()
        .expect("run systemctl");
    assert_ok(&o, "systemctl list-units");
    stdout_of(&o)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}
