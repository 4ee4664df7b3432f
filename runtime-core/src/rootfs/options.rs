//! Mount options of the OCI spec (fstab style strings) to mount(2) flags and data.

use nix::mount::MsFlags;

use crate::syscall::{
    MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY, MOUNT_ATTR_RELATIME,
    MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME,
};

/// MS_NOSYMFOLLOW (Linux 5.10); nix does not name it.
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

/// A mount entry's options, split by how they are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags for the mount(2) call itself (MS_BIND and MS_REC included for bind/rbind).
    pub flags: MsFlags,
    /// Flags that an option explicitly turned off (`rw`, `suid`, ...); never added back
    /// when retrying a remount with the flags the kernel has locked.
    pub cleared: MsFlags,
    /// Propagation changes, each applied by its own mount(2) call after the mount.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (`rro`, `rnosuid`, ...) for mount_setattr(2) after the mount.
    pub attr: Option<MountAttrChange>,
    /// Filesystem-specific options, joined with commas as mount(2)'s data.
    pub data: Vec<String>,
    /// `tmpcopyup` was given.
    pub tmpcopyup: bool,
    /// `idmap` or `ridmap` was given (the later one counts).
    pub idmap: Option<Idmap>,
}

/// Which mounts of an id-mapped bind get the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idmap {
    /// `idmap`: the top mount only (submounts of an `rbind` keep their ids), as runc.
    Top,
    /// `ridmap`: every mount of the tree.
    Recursive,
}

/// Attributes that mount_setattr(2) sets and clears, recursively.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttrChange {
    /// `MOUNT_ATTR_*` bits to set.
    pub set: u64,
    /// `MOUNT_ATTR_*` bits to clear.
    pub clear: u64,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            attr: None,
            data: Vec::new(),
            tmpcopyup: false,
            idmap: None,
        }
    }
}

impl MountOptions {
    /// Whether the options ask for a bind mount.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// The data string for mount(2), if there is any.
    pub fn data(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }

    /// Flags a bind mount needs a second, MS_REMOUNT call for: the kernel ignores every
    /// flag but MS_REC on the first MS_BIND call.
    pub fn remount_flags(&self) -> Option<MsFlags> {
        let extra = self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        (!extra.is_empty()).then_some(extra)
    }
}

/// What one plain flag option does.
enum Flag {
    Set(MsFlags),
    Clear(MsFlags),
}

fn flag_option(opt: &str) -> Option<Flag> {
    use Flag::{Clear, Set};
    Some(match opt {
        "defaults" => Set(MsFlags::empty()),
        "ro" => Set(MsFlags::MS_RDONLY),
        "rw" => Clear(MsFlags::MS_RDONLY),
        "nosuid" => Set(MsFlags::MS_NOSUID),
        "suid" => Clear(MsFlags::MS_NOSUID),
        "nodev" => Set(MsFlags::MS_NODEV),
        "dev" => Clear(MsFlags::MS_NODEV),
        "noexec" => Set(MsFlags::MS_NOEXEC),
        "exec" => Clear(MsFlags::MS_NOEXEC),
        "sync" => Set(MsFlags::MS_SYNCHRONOUS),
        "async" => Clear(MsFlags::MS_SYNCHRONOUS),
        "dirsync" => Set(MsFlags::MS_DIRSYNC),
        "remount" => Set(MsFlags::MS_REMOUNT),
        "mand" => Set(MsFlags::MS_MANDLOCK),
        "nomand" => Clear(MsFlags::MS_MANDLOCK),
        "noatime" => Set(MsFlags::MS_NOATIME),
        "atime" => Clear(MsFlags::MS_NOATIME),
        "nodiratime" => Set(MsFlags::MS_NODIRATIME),
        "diratime" => Clear(MsFlags::MS_NODIRATIME),
        "relatime" => Set(MsFlags::MS_RELATIME),
        "norelatime" => Clear(MsFlags::MS_RELATIME),
        "strictatime" => Set(MsFlags::MS_STRICTATIME),
        "nostrictatime" => Clear(MsFlags::MS_STRICTATIME),
        "iversion" => Set(MsFlags::MS_I_VERSION),
        "noiversion" => Clear(MsFlags::MS_I_VERSION),
        "lazytime" => Set(MsFlags::MS_LAZYTIME),
        "nolazytime" => Clear(MsFlags::MS_LAZYTIME),
        "silent" => Set(MsFlags::MS_SILENT),
        "loud" => Clear(MsFlags::MS_SILENT),
        "nosymfollow" => Set(MS_NOSYMFOLLOW),
        "symfollow" => Clear(MS_NOSYMFOLLOW),
        "bind" => Set(MsFlags::MS_BIND),
        "rbind" => Set(MsFlags::MS_BIND | MsFlags::MS_REC),
        _ => return None,
    })
}

/// The propagation flags a propagation option names (`rslave` = MS_SLAVE|MS_REC, ...).
pub fn propagation(opt: &str) -> Option<MsFlags> {
    let rec = MsFlags::MS_REC;
    Some(match opt {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | rec,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | rec,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | rec,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | rec,
        _ => return None,
    })
}

/// What a recursive option (`rro`, `rnoexec`, ...) does to mount_setattr(2)'s attributes:
/// set one `MOUNT_ATTR_*` value, or clear it.
enum RecAttr {
    Set(u64),
    Clear(u64),
}

fn recursive_attr(opt: &str) -> Option<RecAttr> {
    use RecAttr::{Clear, Set};
    Some(match opt {
        "rro" => Set(MOUNT_ATTR_RDONLY),
        "rrw" => Clear(MOUNT_ATTR_RDONLY),
        "rnosuid" => Set(MOUNT_ATTR_NOSUID),
        "rsuid" => Clear(MOUNT_ATTR_NOSUID),
        "rnodev" => Set(MOUNT_ATTR_NODEV),
        "rdev" => Clear(MOUNT_ATTR_NODEV),
        "rnoexec" => Set(MOUNT_ATTR_NOEXEC),
        "rexec" => Clear(MOUNT_ATTR_NOEXEC),
        "rnodiratime" => Set(MOUNT_ATTR_NODIRATIME),
        "rdiratime" => Clear(MOUNT_ATTR_NODIRATIME),
        "rnosymfollow" => Set(MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => Clear(MOUNT_ATTR_NOSYMFOLLOW),
        "rrelatime" => Set(MOUNT_ATTR_RELATIME),
        "rnorelatime" => Clear(MOUNT_ATTR_RELATIME),
        "rnoatime" => Set(MOUNT_ATTR_NOATIME),
        "ratime" => Clear(MOUNT_ATTR_NOATIME),
        "rstrictatime" => Set(MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => Clear(MOUNT_ATTR_STRICTATIME),
        _ => return None,
    })
}

impl MountAttrChange {
    /// Adds one recursive option, the later winning for the bits it names, with runc
    /// 1.2+'s rule for the access-time mode: the atime values are an enum, not bits
    /// (relatime is 0), and mount_setattr(2) takes a new mode only with the whole
    /// MOUNT_ATTR__ATIME mask cleared, so every atime option clears the mask and the
    /// mode is whatever atime value is left set. Hence `rnorelatime` (clearing the value
    /// 0) and `ratime`/`rnostrictatime` alone all give relatime, not strictatime.
    fn add(&mut self, attr: RecAttr) {
        let (RecAttr::Set(bits) | RecAttr::Clear(bits)) = attr;
        let atime = bits & MOUNT_ATTR__ATIME == bits;
        match attr {
            RecAttr::Set(_) => {
                // A second mode replaces the first (runc 1.3 ORs both in, which the
                // kernel refuses with EINVAL).
                if atime {
                    self.set &= !MOUNT_ATTR__ATIME;
                }
                self.set |= bits;
                self.clear &= !bits;
            }
            RecAttr::Clear(_) => {
                self.clear |= bits;
                self.set &= !bits;
            }
        }
        if atime {
            self.clear |= MOUNT_ATTR__ATIME;
        }
    }
}

/// Every option name [`parse`] recognizes itself: flags, propagation, recursive attributes,
/// `tmpcopyup`, `idmap` and `ridmap`. Anything else is filesystem data.
/// This is what `features` reports as `mountOptions`.
pub fn supported_options() -> Vec<&'static str> {
    // Flags, then propagation, then recursive attributes, as the parser's tables have them.
    const NAMES: &str = "defaults ro rw nosuid suid nodev dev noexec exec sync async dirsync \
        remount mand nomand noatime atime nodiratime diratime relatime norelatime strictatime \
        nostrictatime iversion noiversion lazytime nolazytime silent loud nosymfollow symfollow \
        bind rbind \
        private rprivate shared rshared slave rslave unbindable runbindable \
        rro rrw rnosuid rsuid rnodev rdev rnoexec rexec rnodiratime rdiratime rnosymfollow \
        rsymfollow rnoatime rstrictatime rrelatime ratime rnostrictatime rnorelatime \
        tmpcopyup idmap ridmap";
    let mut all: Vec<&'static str> = NAMES.split_whitespace().collect();
    all.sort_unstable();
    all
}

/// Parses a mount entry's options in order (a later option overrides an earlier one).
/// Unknown options are filesystem-specific and go to the data string, as runc does.
pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in options {
        let opt = opt.as_str();
        if let Some(flag) = flag_option(opt) {
            match flag {
                Flag::Set(f) => {
                    out.flags |= f;
                    out.cleared -= f;
                }
                Flag::Clear(f) => {
                    out.flags -= f;
                    out.cleared |= f;
                }
            }
        } else if let Some(p) = propagation(opt) {
            out.propagation.push(p);
        } else if let Some(a) = recursive_attr(opt) {
            out.attr.get_or_insert_with(MountAttrChange::default).add(a);
        } else if opt == "tmpcopyup" {
            out.tmpcopyup = true;
        } else if opt == "idmap" {
            out.idmap = Some(Idmap::Top);
        } else if opt == "ridmap" {
            out.idmap = Some(Idmap::Recursive);
        } else if !opt.is_empty() {
            out.data.push(opt.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> MountOptions {
        let v: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        parse(&v)
    }

    #[test]
    fn flag_table() {
        let cases: &[(&[&str], MsFlags)] = &[
            (&[], MsFlags::empty()),
            (&["defaults"], MsFlags::empty()),
            (&["ro"], MsFlags::MS_RDONLY),
            (&["rw"], MsFlags::empty()),
            (&["ro", "rw"], MsFlags::empty()),
            (&["rw", "ro"], MsFlags::MS_RDONLY),
            (
                &["nosuid", "nodev", "noexec"],
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            ),
            (&["nosuid", "suid"], MsFlags::empty()),
            (&["nodev", "dev"], MsFlags::empty()),
            (&["noexec", "exec"], MsFlags::empty()),
            (&["sync"], MsFlags::MS_SYNCHRONOUS),
            (&["sync", "async"], MsFlags::empty()),
            (&["dirsync"], MsFlags::MS_DIRSYNC),
            (&["remount"], MsFlags::MS_REMOUNT),
            (&["mand"], MsFlags::MS_MANDLOCK),
            (&["mand", "nomand"], MsFlags::empty()),
            (&["noatime"], MsFlags::MS_NOATIME),
            (&["noatime", "atime"], MsFlags::empty()),
            (&["nodiratime"], MsFlags::MS_NODIRATIME),
            (&["nodiratime", "diratime"], MsFlags::empty()),
            (&["relatime"], MsFlags::MS_RELATIME),
            (&["relatime", "norelatime"], MsFlags::empty()),
            (&["strictatime"], MsFlags::MS_STRICTATIME),
            (&["strictatime", "nostrictatime"], MsFlags::empty()),
            (&["iversion"], MsFlags::MS_I_VERSION),
            (&["lazytime"], MsFlags::MS_LAZYTIME),
            (&["silent"], MsFlags::MS_SILENT),
            (&["silent", "loud"], MsFlags::empty()),
            (&["nosymfollow"], MS_NOSYMFOLLOW),
            (&["bind"], MsFlags::MS_BIND),
            (&["rbind"], MsFlags::MS_BIND | MsFlags::MS_REC),
            (
                &["rbind", "ro", "nosuid"],
                MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
            ),
        ];
        for (opts, want) in cases {
            assert_eq!(p(opts).flags, *want, "options {opts:?}");
        }
    }

    #[test]
    fn cleared_flags_are_remembered() {
        let o = p(&["ro", "rw", "suid"]);
        assert_eq!(o.cleared, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        let o = p(&["rw", "ro"]);
        assert_eq!(o.cleared, MsFlags::empty());
    }

    #[test]
    fn propagation_is_kept_apart_in_order() {
        let o = p(&["rbind", "rprivate", "shared", "rslave", "unbindable"]);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(
            o.propagation,
            vec![
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
                MsFlags::MS_SHARED,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                MsFlags::MS_UNBINDABLE,
            ]
        );
        for (name, want) in [
            ("private", MsFlags::MS_PRIVATE),
            ("rshared", MsFlags::MS_SHARED | MsFlags::MS_REC),
            ("slave", MsFlags::MS_SLAVE),
            ("runbindable", MsFlags::MS_UNBINDABLE | MsFlags::MS_REC),
        ] {
            assert_eq!(propagation(name), Some(want), "{name}");
        }
        assert_eq!(propagation("bogus"), None);
    }

    #[test]
    fn data_passes_through_in_order() {
        let o = p(&[
            "nosuid",
            "mode=755",
            "size=65536k",
            "newinstance",
            "ptmxmode=0666",
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
        assert_eq!(
            o.data().as_deref(),
            Some("mode=755,size=65536k,newinstance,ptmxmode=0666")
        );
        assert_eq!(p(&["ro"]).data(), None);
        assert_eq!(p(&[""]).data(), None);
    }

    #[test]
    fn recursive_attributes() {
        let o = p(&["rbind", "rro", "rnosuid", "rnoexec"]);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert_eq!(
            o.attr,
            Some(MountAttrChange {
                set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
                clear: 0
            })
        );
        // A later option undoes an earlier one.
        let o = p(&["rro", "rrw"]);
        assert_eq!(
            o.attr,
            Some(MountAttrChange {
                set: 0,
                clear: MOUNT_ATTR_RDONLY
            })
        );
        let o = p(&["rnoatime"]);
        assert_eq!(
            o.attr,
            Some(MountAttrChange {
                set: MOUNT_ATTR_NOATIME,
                clear: MOUNT_ATTR__ATIME
            })
        );
        let o = p(&["rnodev", "rdev", "rnosymfollow"]);
        assert_eq!(
            o.attr,
            Some(MountAttrChange {
                set: MOUNT_ATTR_NOSYMFOLLOW,
                clear: MOUNT_ATTR_NODEV
            })
        );
        assert_eq!(p(&["ro"]).attr, None);
    }

    /// The access-time options as runc 1.2+ turns them into mount_setattr(2) arguments
    /// (libcontainer/specconv: every atime option clears MOUNT_ATTR__ATIME).
    #[test]
    fn recursive_atime_options_follow_runc() {
        let change = |set, clear| {
            Some(MountAttrChange {
                set,
                clear: clear | MOUNT_ATTR__ATIME,
            })
        };
        let cases: &[(&[&str], Option<MountAttrChange>)] = &[
            (&["rnoatime"], change(MOUNT_ATTR_NOATIME, 0)),
            (&["rstrictatime"], change(MOUNT_ATTR_STRICTATIME, 0)),
            (&["rrelatime"], change(MOUNT_ATTR_RELATIME, 0)),
            // Clearing relatime (the value 0) names no mode: relatime, not strictatime.
            (&["rnorelatime"], change(0, 0)),
            (&["ratime"], change(0, MOUNT_ATTR_NOATIME)),
            (&["rnostrictatime"], change(0, MOUNT_ATTR_STRICTATIME)),
            (&["rnoatime", "ratime"], change(0, MOUNT_ATTR_NOATIME)),
            // A mode set earlier stays unless the later option clears that very mode.
            (&["rnoatime", "rnorelatime"], change(MOUNT_ATTR_NOATIME, 0)),
            (
                &["rnoatime", "rnostrictatime"],
                change(MOUNT_ATTR_NOATIME, MOUNT_ATTR_STRICTATIME),
            ),
            // The later mode wins (runc 1.3 sets both and mount_setattr fails).
            (&["rstrictatime", "rnoatime"], change(MOUNT_ATTR_NOATIME, 0)),
            (
                &["rnodiratime", "rnorelatime"],
                change(MOUNT_ATTR_NODIRATIME, 0),
            ),
        ];
        for (opts, want) in cases {
            assert_eq!(p(opts).attr, *want, "{opts:?}");
        }
    }

    #[test]
    fn remount_needed_only_for_extra_flags() {
        assert_eq!(p(&["rbind"]).remount_flags(), None);
        assert_eq!(p(&["bind", "rw"]).remount_flags(), None);
        assert_eq!(
            p(&["rbind", "ro", "nodev"]).remount_flags(),
            Some(MsFlags::MS_RDONLY | MsFlags::MS_NODEV)
        );
        assert!(p(&["bind"]).is_bind());
        assert!(!p(&["ro"]).is_bind());
    }

    /// Does the parser handle `opt` itself (rather than passing it to the filesystem as
    /// data, or refusing it)?
    fn recognized(opt: &str) -> bool {
        parse(&[opt.to_string()]).data().is_none()
    }

    #[test]
    fn supported_options_are_exactly_what_parse_recognizes() {
        let listed = supported_options();
        let set: std::collections::BTreeSet<&str> = listed.iter().copied().collect();
        assert_eq!(listed.len(), set.len(), "duplicates in {listed:?}");
        for opt in &listed {
            assert!(recognized(opt), "{opt:?} is listed but parse passes it on");
        }
        // Names other runtimes and the spec know, filesystem data, and every prefix
        // variant of those: whatever parse recognizes must be listed, and only that.
        let known = "acl noacl idmap ridmap mode=755 size=65536k newinstance ptmxmode=0666 \
            gid=5 uid=0 context=x lowerdir=/a upperdir=/b workdir=/c userxattr nr_inodes=1";
        let mut candidates = std::collections::BTreeSet::new();
        for base in known.split_whitespace().chain(listed.iter().copied()) {
            let stem = base.strip_prefix('r').unwrap_or(base);
            let stem = stem.strip_prefix("no").unwrap_or(stem);
            for v in [
                base.to_string(),
                stem.to_string(),
                format!("no{stem}"),
                format!("r{stem}"),
                format!("rno{stem}"),
            ] {
                candidates.insert(v);
            }
        }
        for c in &candidates {
            assert_eq!(
                recognized(c),
                set.contains(c.as_str()),
                "option {c:?}: parse and supported_options disagree"
            );
        }
    }

    #[test]
    fn special_options() {
        assert!(p(&["tmpcopyup"]).tmpcopyup);
        assert_eq!(p(&["tmpcopyup"]).data(), None);
        assert_eq!(p(&["idmap"]).idmap, Some(Idmap::Top));
        assert_eq!(p(&["rbind", "ridmap"]).idmap, Some(Idmap::Recursive));
        assert_eq!(p(&["ridmap", "idmap"]).idmap, Some(Idmap::Top));
        assert_eq!(p(&["rbind"]).idmap, None);
    }
}
