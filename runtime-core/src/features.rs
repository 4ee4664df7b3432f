//! The runtime's Features structure (runtime-spec features.md, features-linux.md), as
//! `youki features` prints it.
//!
//! Every list is generated from the code that implements it, so that it cannot drift:
//! mount options from the rootfs option parser's table, namespaces from `crate::namespaces`,
//! capabilities from the `caps` crate (the names `crate::capabilities` accepts), hooks from
//! `crate::hooks`, seccomp actions, operators, architectures and flags from
//! `crate::seccomp`'s translation tables. The structure describes what is compiled in, not what this host offers.
//!
//! Fields the spec version we claim (`ociVersionMax`) does not define are never emitted, and
//! `None` ("unknown") fields are left out rather than printed as `null`.

use std::collections::HashMap;

use oci_spec::runtime::{
    Apparmor, Cgroup, Features, IDMap, IntelRdt, LinuxFeature, MountExtensions, Seccomp, Selinux,
};
use serde_json::Value;

/// The oldest runtime-spec version whose configs this runtime accepts.
pub(crate) const OCI_VERSION_MIN: &str = "1.0.0";
/// The newest runtime-spec version this runtime implements.
pub const OCI_VERSION_MAX: &str = "1.2.0";

/// Annotation naming this runtime's version in the Features structure.
pub(crate) const VERSION_ANNOTATION: &str = "org.youki-shim.version";

/// The Features structure of this build.
pub fn features() -> Features {
    let mut capabilities: Vec<caps::Capability> = caps::all().into_iter().collect();
    capabilities.sort_by_key(|c| c.index());

    let mut cgroup = Cgroup::default();
    cgroup.set_v1(Some(true));
    cgroup.set_v2(Some(true));
    // The systemd driver (crate::cgroups), on pure cgroup v2 hosts; no user instance.
    cgroup.set_systemd(Some(true));
    cgroup.set_systemd_user(Some(false));
    // rdma.max is written on cgroup v2 (crate::cgroups).
    cgroup.set_rdma(Some(true));

    // The seccomp lists are the tables crate::seccomp translates with, less what the linked
    // libseccomp lacks (architectures, flags).
    let mut seccomp = Seccomp::default();
    seccomp.set_enabled(Some(true));
    seccomp.set_actions(Some(crate::seccomp::supported_actions()));
    seccomp.set_operators(Some(crate::seccomp::supported_operators()));
    seccomp.set_archs(Some(crate::seccomp::supported_archs()));
    seccomp.set_known_flags(Some(crate::seccomp::known_flags()));
    seccomp.set_supported_flags(Some(crate::seccomp::supported_flags()));
    // process.apparmorProfile is applied (crate::seccomp::lsm) where the host has AppArmor;
    // SELinux labels are refused.
    let mut apparmor = Apparmor::default();
    apparmor.set_enabled(Some(true));
    let mut selinux = Selinux::default();
    selinux.set_enabled(Some(false));
    let mut intel_rdt = IntelRdt::default();
    intel_rdt.set_enabled(Some(false));
    // `idmap`/`ridmap` and per-mount mappings: rootfs::idmap.
    let mut idmap = IDMap::default();
    idmap.set_enabled(Some(true));
    let mut mount_extensions = MountExtensions::default();
    mount_extensions.set_idmap(Some(idmap));

    let mut linux = LinuxFeature::default();
    linux.set_namespaces(Some(crate::namespaces::supported_types()));
    linux.set_capabilities(Some(capabilities.iter().map(ToString::to_string).collect()));
    linux.set_cgroup(Some(cgroup));
    linux.set_seccomp(Some(seccomp));
    linux.set_apparmor(Some(apparmor));
    linux.set_selinux(Some(selinux));
    linux.set_intel_rdt(Some(intel_rdt));
    linux.set_mount_extensions(Some(mount_extensions));

    let mut f = Features::default();
    f.set_oci_version_min(OCI_VERSION_MIN.to_string());
    f.set_oci_version_max(OCI_VERSION_MAX.to_string());
    f.set_hooks(Some(
        crate::hooks::supported_kinds()
            .into_iter()
            .map(String::from)
            .collect(),
    ));
    f.set_mount_options(Some(
        crate::rootfs::supported_options()
            .into_iter()
            .map(String::from)
            .collect(),
    ));
    f.set_linux(Some(linux));
    f.set_annotations(Some(HashMap::from([(
        VERSION_ANNOTATION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    )])));
    // No annotation changes what this runtime does.
    f.set_potentially_unsafe_config_annotations(Some(vec![]));
    f
}

/// The Features structure as JSON, without `null` ("unknown") members.
pub fn features_json() -> Value {
    let mut v = serde_json::to_value(features()).expect("Features serializes");
    drop_nulls(&mut v);
    v
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::str::FromStr;

    fn strings(v: &Value) -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("{v} is not an array"))
            .iter()
            .map(|s| s.as_str().expect("string").to_string())
            .collect()
    }

    #[test]
    fn mount_options_are_the_parser_table() {
        // options.rs checks that this list is exactly what its parser recognizes.
        let listed = strings(&features_json()["mountOptions"]);
        assert_eq!(listed, crate::rootfs::supported_options());
        assert!(listed.iter().any(|o| o == "rbind"));
        assert!(listed.iter().any(|o| o == "idmap") && listed.iter().any(|o| o == "ridmap"));
        assert!(!listed.iter().any(|o| o == "mode=755"));
    }

    #[test]
    fn namespaces_are_the_namespaces_module_types() {
        let f = features();
        let ns = f.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
        let flags: BTreeSet<i32> = ns
            .iter()
            .map(|t| crate::namespaces::flag(*t).bits())
            .collect();
        assert_eq!(flags.len(), ns.len(), "two types with one clone flag");
        let names = strings(&features_json()["linux"]["namespaces"]);
        assert_eq!(
            names,
            ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]
        );
    }

    #[test]
    fn capabilities_are_the_caps_crate_list_in_kernel_order() {
        let names = strings(&features_json()["linux"]["capabilities"]);
        assert_eq!(names.len(), caps::all().len());
        assert_eq!(names[0], "CAP_CHOWN");
        assert!(names.iter().any(|n| n == "CAP_SYS_ADMIN"));
        let mut last = None;
        for n in &names {
            // Every listed name is one the capabilities module accepts.
            let c = caps::Capability::from_str(n).unwrap_or_else(|_| panic!("{n}"));
            assert!(last < Some(c.index()), "{n} out of order");
            last = Some(c.index());
        }
    }

    #[test]
    fn hooks_are_the_spec_names() {
        let names = strings(&features_json()["hooks"]);
        assert_eq!(names, crate::hooks::supported_kinds());
        // Each name is a member of config.json's hooks object.
        let mut obj = serde_json::Map::new();
        for n in &names {
            obj.insert(n.clone(), serde_json::json!([{"path": "/bin/true"}]));
        }
        let hooks: oci_spec::runtime::Hooks =
            serde_json::from_value(Value::Object(obj.clone())).unwrap();
        let back = serde_json::to_value(&hooks).unwrap();
        for n in &names {
            assert!(back[n].is_array(), "{n} is not a hook kind of the spec");
        }
    }

    #[test]
    fn shape_matches_features_md() {
        let v = features_json();
        assert_eq!(v["ociVersionMin"], OCI_VERSION_MIN);
        assert_eq!(v["ociVersionMax"], OCI_VERSION_MAX);
        let cg = &v["linux"]["cgroup"];
        assert_eq!(cg["v1"], true);
        assert_eq!(cg["v2"], true);
        assert_eq!(cg["systemd"], true);
        assert_eq!(cg["systemdUser"], false);
        let sc = &v["linux"]["seccomp"];
        assert_eq!(sc["enabled"], true);
        assert_eq!(sc["actions"].as_array().map(Vec::len), Some(9), "{sc}");
        assert_eq!(sc["operators"].as_array().map(Vec::len), Some(7), "{sc}");
        assert!(strings(&sc["archs"]).contains(&"SCMP_ARCH_X86_64".to_string()));
        assert!(strings(&sc["knownFlags"]).contains(&"SECCOMP_FILTER_FLAG_LOG".to_string()));
        assert!(strings(&sc["supportedFlags"]).contains(&"SECCOMP_FILTER_FLAG_LOG".to_string()));
        assert_eq!(v["linux"]["apparmor"], serde_json::json!({"enabled": true}));
        assert_eq!(v["linux"]["selinux"], serde_json::json!({"enabled": false}));
        assert_eq!(
            v["linux"]["intelRdt"],
            serde_json::json!({"enabled": false})
        );
        assert_eq!(
            v["linux"]["mountExtensions"],
            serde_json::json!({"idmap": {"enabled": true}})
        );
        assert_eq!(
            v["annotations"][VERSION_ANNOTATION],
            env!("CARGO_PKG_VERSION")
        );
        // Only members runtime-spec 1.2 defines; no nulls.
        let top: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let allowed: BTreeSet<&str> = [
            "ociVersionMin",
            "ociVersionMax",
            "hooks",
            "mountOptions",
            "linux",
            "annotations",
            "potentiallyUnsafeConfigAnnotations",
        ]
        .into();
        assert!(top.is_subset(&allowed), "{top:?}");
        let linux: BTreeSet<&str> = v["linux"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let allowed: BTreeSet<&str> = [
            "namespaces",
            "capabilities",
            "cgroup",
            "seccomp",
            "apparmor",
            "selinux",
            "intelRdt",
            "mountExtensions",
        ]
        .into();
        assert!(linux.is_subset(&allowed), "{linux:?}");
        assert!(!v.to_string().contains("null"));
        // And it reads back as the oci-spec type.
        let back: Features = serde_json::from_value(v).unwrap();
        assert_eq!(back.oci_version_max(), OCI_VERSION_MAX);
    }
}
