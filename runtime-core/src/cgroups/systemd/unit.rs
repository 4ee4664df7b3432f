//! Names: a systemd-form cgroupsPath `<slice>:<prefix>:<name>`, the scope unit it stands
//! for, and the cgroup directory systemd gives that unit (runc's rules).

use std::path::PathBuf;

use super::SystemdError;

/// The slice of a container whose path leaves it empty, as runc.
pub(crate) const DEFAULT_SLICE: &str = "system.slice";

/// The prefix of the default path's scope name (runc uses `runc`).
const DEFAULT_PREFIX: &str = "youki";

/// A container's unit: the slice it goes in and the scope's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// The slice (`system.slice`, `kubepods-burstable-pod1.slice`).
    pub slice: String,
    /// The scope's unit name, `<prefix>-<name>.scope`.
    pub name: String,
    /// The name part (the container's, for the unit's description).
    pub container: String,
}

/// Whether `path` has the systemd form: three parts separated by `:`.
pub(crate) fn is_systemd_form(path: &str) -> bool {
    path.split(':').count() == 3
}

/// The default systemd-form path of container `id` (when `cgroupsPath` is empty).
pub(crate) fn default_path(id: &str) -> String {
    format!("{DEFAULT_SLICE}:{DEFAULT_PREFIX}:{id}")
}

impl Unit {
    /// Parses `<slice>:<prefix>:<name>`; an empty slice is [`DEFAULT_SLICE`].
    pub(crate) fn parse(path: &str) -> Result<Unit, SystemdError> {
        let invalid = |reason: &str| SystemdError::InvalidPath {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(invalid(
                "expected the systemd form \"slice:prefix:name\" (e.g. system.slice:youki:ID)",
            ));
        };
        if name.is_empty() {
            return Err(invalid("the name part is empty"));
        }
        // runc turns a name ending in .slice into a slice unit (kubelet creating its pod
        // slices through runc); a container's processes cannot live in a slice.
        if name.ends_with(".slice") {
            return Err(invalid(
                "a container's unit is a scope: its name cannot end in .slice",
            ));
        }
        for part in [slice, prefix, name] {
            if part.contains('/') {
                return Err(invalid("a part contains \"/\""));
            }
        }
        let slice = if slice.is_empty() {
            DEFAULT_SLICE.to_string()
        } else {
            slice.to_string()
        };
        expand_slice(&slice).map_err(|reason| invalid(&reason))?;
        Ok(Unit {
            slice,
            name: format!("{prefix}-{name}.scope"),
            container: name.to_string(),
        })
    }

    /// The unit's cgroup, from the hierarchy's root: `/a.slice/a-b.slice/<prefix>-<name>.scope`.
    pub(crate) fn cgroup(&self) -> PathBuf {
        // `parse` checked the slice.
        let mut p = expand_slice(&self.slice).unwrap_or_else(|_| PathBuf::from("/"));
        p.push(&self.name);
        p
    }
}

/// The cgroup of a slice, from the hierarchy's root: systemd nests `a-b-c.slice` in
/// `a-b.slice` in `a.slice`; `-.slice` is the root.
pub(crate) fn expand_slice(slice: &str) -> Result<PathBuf, String> {
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err(format!("slice {slice:?} does not end in .slice"));
    };
    if base == "-" {
        return Ok(PathBuf::from("/"));
    }
    let mut path = PathBuf::from("/");
    let mut prefix = String::new();
    for part in base.split('-') {
        // `a--b.slice`, `-a.slice`, `a-.slice` and `.slice` name no slice.
        if part.is_empty() {
            return Err(format!("slice {slice:?} has an empty component"));
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
        prefix.push('-');
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_as_systemd_nests_them() {
        assert_eq!(expand_slice("system.slice"), Ok("/system.slice".into()));
        assert_eq!(
            expand_slice("kubepods-burstable-pod1234.slice"),
            Ok("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice".into())
        );
        assert_eq!(expand_slice("-.slice"), Ok("/".into()));
        for bad in [
            ".slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a.scope",
            "a",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths_parse_into_scopes() {
        let u = Unit::parse("kubepods-besteffort-pod1.slice:cri-containerd:abcd").expect("valid");
        assert_eq!(u.slice, "kubepods-besteffort-pod1.slice");
        assert_eq!(u.name, "cri-containerd-abcd.scope");
        assert_eq!(
            u.cgroup(),
            PathBuf::from(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abcd.scope"
            )
        );
        let d = Unit::parse(&default_path("c1")).expect("default");
        assert_eq!(d.cgroup(), PathBuf::from("/system.slice/youki-c1.scope"));
        // runc: an empty slice is system.slice.
        assert_eq!(
            Unit::parse(":p:n").expect("empty slice").slice,
            "system.slice"
        );
        for bad in [
            "/youki/c1",
            "a.slice:p",
            "a.slice:p:n:x",
            "a.slice:p:",
            "a.slice:p:n.slice",
            "a.slice:p/q:n",
            "a--b.slice:p:n",
            "nota:p:n",
        ] {
            let e = Unit::parse(bad).expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
        assert!(is_systemd_form("a.slice:p:n"));
        assert!(!is_systemd_form("/youki/c1"));
    }
}
