//! The device rules a container's cgroup gets: the spec's, then runc's defaults.

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

/// Devices every container may use, as runc allows them: mknod of any device (creating a
/// node grants no access), and the standard character devices of /dev.
const DEFAULT_ALLOWED: &[(LinuxDeviceType, Option<i64>, Option<i64>, &str)] = &[
    (LinuxDeviceType::C, None, None, "m"),
    (LinuxDeviceType::B, None, None, "m"),
    (LinuxDeviceType::C, Some(1), Some(3), "rwm"), // null
    (LinuxDeviceType::C, Some(1), Some(5), "rwm"), // zero
    (LinuxDeviceType::C, Some(1), Some(7), "rwm"), // full
    (LinuxDeviceType::C, Some(5), Some(0), "rwm"), // tty
    (LinuxDeviceType::C, Some(1), Some(9), "rwm"), // urandom
    (LinuxDeviceType::C, Some(1), Some(8), "rwm"), // random
    (LinuxDeviceType::C, Some(136), None, "rwm"),  // /dev/pts/*
    (LinuxDeviceType::C, Some(5), Some(2), "rwm"), // ptmx
    (LinuxDeviceType::C, Some(10), Some(200), "rwm"), // tun
];

fn rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true)
        .set_typ(Some(typ))
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_string()));
    r
}

/// `resources` with the default devices and every `linux.devices` entry allowed after the
/// spec's own rules, when the spec restricts devices at all; otherwise unchanged.
pub fn with_default_rules(
    resources: Option<&LinuxResources>,
    devices: &[LinuxDevice],
) -> Option<LinuxResources> {
    let mut res = resources?.clone();
    let mut rules = match res.devices() {
        Some(r) if !r.is_empty() => r.clone(),
        _ => return Some(res),
    };
    rules.extend(
        DEFAULT_ALLOWED
            .iter()
            .map(|(t, ma, mi, acc)| rule(*t, *ma, *mi, acc)),
    );
    rules.extend(
        devices
            .iter()
            .map(|d| rule(d.typ(), Some(d.major()), Some(d.minor()), "rwm")),
    );
    res.set_devices(Some(rules));
    Some(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_spec_rules() {
        let res: LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        let dev: Vec<LinuxDevice> =
            serde_json::from_str(r#"[{"path":"/dev/fuse","type":"c","major":10,"minor":229}]"#)
                .unwrap();
        let out = with_default_rules(Some(&res), &dev).unwrap();
        let rules = out.devices().as_ref().unwrap();
        assert!(!rules[0].allow());
        assert_eq!(rules.len(), 1 + DEFAULT_ALLOWED.len() + 1);
        let last = rules.last().unwrap();
        assert!(last.allow() && last.major() == Some(10) && last.minor() == Some(229));
    }

    #[test]
    fn no_rules_means_no_change() {
        let res: LinuxResources = serde_json::from_str(r#"{"pids":{"limit":5}}"#).unwrap();
        let out = with_default_rules(Some(&res), &[]).unwrap();
        assert!(out.devices().is_none());
        assert!(with_default_rules(None, &[]).is_none());
    }
}
