//! The device controller's rules, evaluated as cgroup v1's `devices` controller evaluates
//! them: the one meaning a list of OCI rules has, whichever cgroup version enforces it.
//!
//! A v1 device cgroup has a default (allow or deny every device) and a list of exceptions
//! to it. A rule for every device (`a`) sets the default and empties the list; any other
//! rule adds an exception when its verdict differs from the default and removes one when
//! it agrees. Removal is exact, as in the kernel: denying `c 1:3` does not narrow an
//! allowed `c 1:*`. The kernel ignores such a request silently; we refuse it (as runc
//! does), since the container would get more than its rules seem to give it.
//!
//! Access is checked as v1 checks it: with a default of deny, one exception must cover
//! every access asked for at once; with a default of allow, an exception that shares any
//! access with the request denies it.

use std::collections::BTreeMap;
use std::fmt;

use super::DeviceError;

/// The device type of a rule that is not about every device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `b`.
    Block,
    /// `c` (and `u`, unbuffered character devices, which the kernel does not tell apart).
    Char,
}

/// Access bits, numbered as the kernel's `BPF_DEVCG_ACC_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Access(pub(crate) u8);

impl Access {
    /// `m`: mknod.
    pub(crate) const MKNOD: Access = Access(1);
    /// `r`: open for reading.
    pub(crate) const READ: Access = Access(2);
    /// `w`: open for writing.
    pub(crate) const WRITE: Access = Access(4);
    /// `rwm`.
    pub(crate) const ALL: Access = Access(7);

    /// Parses letters of `rwm`, in any order; empty or other letters are refused.
    pub(crate) fn parse(text: &str) -> Result<Access, String> {
        let mut a = Access::default();
        for c in text.chars() {
            a.0 |= match c {
                'r' => Access::READ.0,
                'w' => Access::WRITE.0,
                'm' => Access::MKNOD.0,
                _ => return Err(format!("access {text:?}: {c:?} is not one of r, w, m")),
            };
        }
        if a.is_empty() {
            return Err("access is empty: expected letters of rwm".into());
        }
        Ok(a)
    }

    /// No access at all.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Every access in `other` is in `self`.
    pub(crate) fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` and `other` share an access.
    pub(crate) fn intersects(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }

    fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    fn without(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.contains(bit) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The devices a rule is about: a type, and a major and a minor number, `None` for `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Devices {
    /// Block or character.
    pub(crate) kind: Kind,
    /// The major number; `None` matches every major.
    pub(crate) major: Option<u32>,
    /// The minor number; `None` matches every minor.
    pub(crate) minor: Option<u32>,
}

impl Devices {
    /// Whether the device `kind major:minor` is one of these.
    #[cfg(test)]
    pub(crate) fn matches(&self, kind: Kind, major: u32, minor: u32) -> bool {
        self.kind == kind
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

impl fmt::Display for Devices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let kind = match self.kind {
            Kind::Block => 'b',
            Kind::Char => 'c',
        };
        write!(f, "{kind} {}:{}", num(self.major), num(self.minor))
    }
}

/// One device rule, as the controller takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    /// Allow (true) or deny.
    pub(crate) allow: bool,
    /// The devices concerned; `None` is type `a`, every device.
    pub(crate) devices: Option<Devices>,
    /// The accesses allowed or denied.
    pub(crate) access: Access,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allow { "allow" } else { "deny" };
        match &self.devices {
            Some(d) => write!(f, "{verdict} {d} {}", self.access),
            None => write!(f, "{verdict} a *:* {}", self.access),
        }
    }
}

/// A device cgroup's state: its default and its exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Emulator {
    default_allow: bool,
    /// Sorted, so that the same rules always give the same program.
    exceptions: BTreeMap<Devices, Access>,
}

impl Default for Emulator {
    /// Every device denied: where runc starts, so that a spec without device rules gets
    /// only the default devices, never the host's.
    fn default() -> Self {
        Self {
            default_allow: false,
            exceptions: BTreeMap::new(),
        }
    }
}

impl Emulator {
    /// Applies one rule after those applied before.
    pub(crate) fn apply(&mut self, rule: &Rule) -> Result<(), DeviceError> {
        let Some(devices) = rule.devices else {
            // A rule for every device resets the cgroup, whatever its access letters.
            *self = Self {
                default_allow: rule.allow,
                exceptions: BTreeMap::new(),
            };
            return Ok(());
        };
        if rule.allow == self.default_allow {
            self.remove(rule, devices)
        } else {
            let held = self.exceptions.entry(devices).or_default();
            *held = held.union(rule.access);
            Ok(())
        }
    }

    /// Takes `rule.access` out of the exception for exactly `devices`.
    fn remove(&mut self, rule: &Rule, devices: Devices) -> Result<(), DeviceError> {
        let wider = [
            Devices {
                major: None,
                ..devices
            },
            Devices {
                minor: None,
                ..devices
            },
            Devices {
                major: None,
                minor: None,
                ..devices
            },
        ];
        for w in wider.iter().filter(|w| **w != devices) {
            if let Some(held) = self.exceptions.get(w).filter(|a| a.intersects(rule.access)) {
                return Err(DeviceError::Hole {
                    rule: rule.to_string(),
                    wildcard: format!(
                        "{} {w} {held}",
                        if self.default_allow { "deny" } else { "allow" }
                    ),
                });
            }
        }
        if let Some(held) = self.exceptions.get_mut(&devices) {
            *held = held.without(rule.access);
            if held.is_empty() {
                self.exceptions.remove(&devices);
            }
        }
        Ok(())
    }

    /// The verdict for a device when no exception applies.
    pub(crate) fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// The exceptions to the default, sorted.
    pub(crate) fn exceptions(&self) -> impl Iterator<Item = (&Devices, &Access)> {
        self.exceptions.iter()
    }

    /// Whether `access` to the device `kind major:minor` is allowed: the verdict the
    /// device program must give (its tests compare the two).
    #[cfg(test)]
    pub(crate) fn allows(&self, kind: Kind, major: u32, minor: u32, access: Access) -> bool {
        let mut matching = self
            .exceptions
            .iter()
            .filter(|(d, _)| d.matches(kind, major, minor));
        if self.default_allow {
            !matching.any(|(_, a)| a.intersects(access))
        } else {
            matching.any(|(_, a)| a.contains(access))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        // "allow c 1:3 rw", "deny a"
        let f: Vec<&str> = text.split_whitespace().collect();
        let num = |s: &str| (s != "*").then(|| s.parse::<u32>().expect("number"));
        let devices = match f[1] {
            "a" => None,
            k => {
                let (ma, mi) = f[2].split_once(':').expect("major:minor");
                Some(Devices {
                    kind: if k == "b" { Kind::Block } else { Kind::Char },
                    major: num(ma),
                    minor: num(mi),
                })
            }
        };
        Rule {
            allow: f[0] == "allow",
            devices,
            access: Access::parse(f.last().filter(|_| f.len() > 2).unwrap_or(&"rwm"))
                .expect("access"),
        }
    }

    fn emulate(rules: &[&str]) -> Result<Emulator, DeviceError> {
        let mut e = Emulator::default();
        for r in rules {
            e.apply(&rule(r))?;
        }
        Ok(e)
    }

    const RW: Access = Access(6);

    #[test]
    fn access_letters() {
        assert_eq!(Access::parse("mrw"), Ok(Access::ALL));
        assert_eq!(Access::ALL.to_string(), "rwm");
        assert!(Access::parse("").is_err());
        let e = Access::parse("rx").expect_err("x");
        assert!(e.contains("'x'"), "{e}");
    }

    #[test]
    fn starts_denying_everything() {
        let e = Emulator::default();
        assert!(!e.allows(Kind::Char, 1, 3, Access::READ));
    }

    #[test]
    fn allow_list_needs_one_exception_covering_the_request() {
        let e = emulate(&[
            "deny a",
            "allow c *:* m",
            "allow c 1:3 rwm",
            "allow c 136:* rw",
        ])
        .expect("valid");
        assert!(e.allows(Kind::Char, 1, 3, RW));
        assert!(e.allows(Kind::Char, 1, 11, Access::MKNOD));
        assert!(!e.allows(Kind::Char, 1, 11, Access::READ));
        assert!(!e.allows(Kind::Block, 8, 0, Access::MKNOD));
        assert!(e.allows(Kind::Char, 136, 4, RW));
        assert!(!e.allows(Kind::Char, 136, 4, Access::ALL));
        // Split over two exceptions, r and w of one device do not add up to rw.
        let e = emulate(&["allow c 1:5 r", "allow c 1:* w"]).expect("valid");
        assert!(e.allows(Kind::Char, 1, 5, Access::READ));
        assert!(!e.allows(Kind::Char, 1, 5, RW));
    }

    #[test]
    fn same_devices_merge_and_unmerge() {
        let e = emulate(&["allow c 1:3 r", "allow c 1:3 w", "deny c 1:3 r"]).expect("valid");
        assert_eq!(e.exceptions().collect::<Vec<_>>().len(), 1);
        assert!(e.allows(Kind::Char, 1, 3, Access::WRITE));
        assert!(!e.allows(Kind::Char, 1, 3, Access::READ));
        let e = emulate(&["allow c 1:3 rw", "deny c 1:3 rwm"]).expect("valid");
        assert_eq!(e, Emulator::default());
    }

    #[test]
    fn deny_list_denies_on_any_shared_access() {
        let e = emulate(&["allow a", "deny b 8:* w", "deny c 1:11 rwm"]).expect("valid");
        assert!(e.default_allow());
        assert!(e.allows(Kind::Block, 8, 0, Access::READ));
        assert!(!e.allows(Kind::Block, 8, 0, RW));
        assert!(!e.allows(Kind::Char, 1, 11, Access::MKNOD));
        assert!(e.allows(Kind::Char, 1, 3, Access::ALL));
        // Allowing back a denied device removes the exception.
        let e = emulate(&["allow a", "deny c 1:11 rw", "allow c 1:11 rw"]).expect("valid");
        assert!(e.allows(Kind::Char, 1, 11, RW));
    }

    #[test]
    fn a_rule_for_every_device_resets() {
        let e = emulate(&["allow c 1:3 rwm", "allow a"]).expect("valid");
        assert!(e.default_allow() && e.exceptions().next().is_none());
        let e = emulate(&["allow a", "deny c 1:3 rwm", "deny a r"]).expect("valid");
        assert_eq!(e, Emulator::default());
    }

    #[test]
    fn holes_in_wildcard_exceptions_are_refused() {
        let err = emulate(&["allow c 1:* rw", "deny c 1:3 r"]).expect_err("hole");
        let text = err.to_string();
        assert!(
            text.contains("deny c 1:3 r") && text.contains("allow c 1:* rw"),
            "{text}"
        );
        assert!(emulate(&["allow a", "deny c *:* m", "allow c 1:3 m"]).is_err());
        // No shared access, no hole.
        assert!(emulate(&["allow c 1:* r", "deny c 1:3 w"]).is_ok());
        // The exact wildcard may be removed.
        assert!(emulate(&["allow c 1:* rw", "deny c 1:* rw"]).is_ok());
    }
}
