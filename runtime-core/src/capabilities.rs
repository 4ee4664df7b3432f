//! Process capabilities: the five sets of `process.capabilities`.

use std::collections::HashSet;
use std::str::FromStr;

use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::syscall::{Syscall, SyscallError};

/// Errors applying capabilities, naming the set and capability.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// The name is not a capability this runtime knows.
    #[error("process.capabilities: unknown capability {0}")]
    Unknown(String),
    /// The capability cannot be granted: it is not in this runtime's bounding set.
    #[error("process.capabilities.{set}: {cap} is not in the runtime's bounding set, so it cannot be granted on this host")]
    NotAvailable {
        /// Which set asked for it.
        set: &'static str,
        /// The capability.
        cap: String,
    },
    /// The kernel refused a change (or a read of the bounding set).
    #[error("setting capability set {set}: {source}")]
    Apply {
        /// Which set.
        set: &'static str,
        /// The call and its errno.
        source: SyscallError,
    },
}

/// Converts an OCI capability set into the caps crate's.
fn convert(set: &Option<Capabilities>) -> Result<CapsHashSet, CapabilityError> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        out.insert(to_cap(c)?);
    }
    Ok(out)
}

fn to_cap(c: &Capability) -> Result<Cap, CapabilityError> {
    let name = format!("CAP_{c}");
    Cap::from_str(&name).map_err(|_| CapabilityError::Unknown(name))
}

/// The five sets, resolved and checked against what this process can grant.
#[derive(Debug, Default, Clone)]
pub struct CapabilitySets {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

impl CapabilitySets {
    /// Resolves the spec's sets (absent means empty) and checks that each requested
    /// capability is in the calling process's bounding set: the kernel could not grant more.
    pub fn from_spec(
        sys: &impl Syscall,
        spec: Option<&LinuxCapabilities>,
    ) -> Result<Self, CapabilityError> {
        let Some(c) = spec else {
            return Ok(Self::default());
        };
        let sets = Self {
            bounding: convert(c.bounding())?,
            effective: convert(c.effective())?,
            permitted: convert(c.permitted())?,
            inheritable: convert(c.inheritable())?,
            ambient: convert(c.ambient())?,
        };
        let available = sys
            .bounding_set()
            .map_err(|source| CapabilityError::Apply {
                set: "bounding",
                source,
            })?;
        for (name, set) in [
            ("permitted", &sets.permitted),
            ("effective", &sets.effective),
            ("ambient", &sets.ambient),
        ] {
            let mut missing: Vec<String> =
                set.difference(&available).map(|c| c.to_string()).collect();
            missing.sort();
            if let Some(cap) = missing.into_iter().next() {
                return Err(CapabilityError::NotAvailable { set: name, cap });
            }
        }
        Ok(sets)
    }

    /// Drops from the bounding set everything not asked for; needs CAP_SETPCAP, so it runs
    /// before the process changes user.
    pub fn drop_bounding(&self, sys: &impl Syscall) -> Result<(), CapabilityError> {
        let err = |source| CapabilityError::Apply {
            set: "bounding",
            source,
        };
        let held = sys.bounding_set().map_err(err)?;
        // In the kernel's order, so that a failure names the same capability every time.
        let mut drop: Vec<Cap> = held.difference(&self.bounding).copied().collect();
        drop.sort_by_key(|c| c.index());
        for cap in drop {
            sys.drop_bounding(cap).map_err(err)?;
        }
        Ok(())
    }

    /// Sets permitted, inheritable, effective and ambient, after the user change.
    pub fn apply(&self, sys: &impl Syscall) -> Result<(), CapabilityError> {
        // capset(2) requires effective to stay within permitted at every step, and new
        // inheritable caps to come from permitted: so narrow inheritable and effective
        // while permitted is still full, and permitted last.
        for (name, set, value) in [
            ("inheritable", CapSet::Inheritable, &self.inheritable),
            ("effective", CapSet::Effective, &self.effective),
            ("permitted", CapSet::Permitted, &self.permitted),
        ] {
            sys.set_capabilities(set, value)
                .map_err(|source| CapabilityError::Apply { set: name, source })?;
        }
        // Ambient capabilities are raised one by one, and only where the kernel allows
        // (present in both permitted and inheritable), as runc does.
        let ambient = |source| CapabilityError::Apply {
            set: "ambient",
            source,
        };
        sys.clear_ambient().map_err(ambient)?;
        let mut raise: Vec<Cap> = self
            .ambient
            .iter()
            .filter(|cap| self.permitted.contains(cap) && self.inheritable.contains(cap))
            .copied()
            .collect();
        raise.sort_by_key(|c| c.index());
        for cap in raise {
            sys.raise_ambient(cap).map_err(ambient)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_oci_names() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_NET_BIND_SERVICE"],"effective":["CAP_CHOWN"]}"#,
        )
        .unwrap();
        let b = convert(c.bounding()).unwrap();
        assert!(b.contains(&Cap::CAP_CHOWN) && b.contains(&Cap::CAP_NET_BIND_SERVICE));
        assert_eq!(b.len(), 2);
        assert!(convert(c.inheritable()).unwrap().is_empty());
    }

    #[test]
    fn absent_capabilities_mean_none() {
        let s = CapabilitySets::from_spec(&crate::syscall::LinuxSyscall, None).unwrap();
        assert!(s.permitted.is_empty() && s.bounding.is_empty());
    }
}
