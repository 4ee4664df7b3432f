//! The few messages of CRIU's RPC protocol (`images/rpc.proto` in CRIU's sources, proto2)
//! that checkpoint and restore exchange, encoded and decoded by hand: `criu_req` with its
//! `criu_opts`, and `criu_resp`. runtime-core has no protobuf code generator, and these are
//! a handful of scalar, string and nested fields.
//!
//! Fields are written in field-number order, as protoc writes them, so that an encoding
//! can be compared byte for byte with `protoc --encode` (see the tests). Decoding skips
//! fields it does not know, as any protobuf reader must.

use std::fmt;

/// Field numbers of `criu_opts` (rpc.proto).
mod opt {
    pub const IMAGES_DIR_FD: u32 = 1;
    pub const PID: u32 = 2;
    pub const LEAVE_RUNNING: u32 = 3;
    pub const EXT_UNIX_SK: u32 = 4;
    pub const TCP_ESTABLISHED: u32 = 5;
    pub const EVASIVE_DEVICES: u32 = 6;
    pub const SHELL_JOB: u32 = 7;
    pub const FILE_LOCKS: u32 = 8;
    pub const LOG_LEVEL: u32 = 9;
    pub const LOG_FILE: u32 = 10;
    pub const NOTIFY_SCRIPTS: u32 = 12;
    pub const ROOT: u32 = 13;
    pub const PARENT_IMG: u32 = 14;
    pub const TRACK_MEM: u32 = 15;
    pub const AUTO_DEDUP: u32 = 16;
    pub const WORK_DIR_FD: u32 = 17;
    pub const EXT_MNT: u32 = 23;
    pub const MANAGE_CGROUPS: u32 = 24;
    pub const CG_ROOT: u32 = 25;
    pub const RST_SIBLING: u32 = 26;
    pub const INHERIT_FD: u32 = 27;
    pub const MANAGE_CGROUPS_MODE: u32 = 34;
    pub const EXTERNAL: u32 = 37;
    pub const EMPTY_NS: u32 = 38;
    pub const JOIN_NS: u32 = 39;
    pub const FREEZE_CGROUP: u32 = 44;
    pub const LAZY_PAGES: u32 = 48;
    pub const ORPHAN_PTS_MASTER: u32 = 50;
    pub const CONFIG_FILE: u32 = 51;
}

/// `criu_req_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqType {
    /// Dump the process tree (checkpoint).
    Dump,
    /// Restore a process tree.
    Restore,
    /// Dump memory only, leaving the tree running (a pre-dump).
    PreDump,
    /// A callback from CRIU ("notify script") that must be answered.
    Notify,
    /// Which optional features CRIU and the kernel support.
    FeatureCheck,
    /// Any other value, as received.
    Other(u64),
}

impl ReqType {
    fn number(self) -> u64 {
        match self {
            ReqType::Dump => 1,
            ReqType::Restore => 2,
            ReqType::PreDump => 4,
            ReqType::Notify => 6,
            ReqType::FeatureCheck => 9,
            ReqType::Other(n) => n,
        }
    }

    fn from_number(n: u64) -> Self {
        match n {
            1 => ReqType::Dump,
            2 => ReqType::Restore,
            4 => ReqType::PreDump,
            6 => ReqType::Notify,
            9 => ReqType::FeatureCheck,
            n => ReqType::Other(n),
        }
    }
}

impl fmt::Display for ReqType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReqType::Dump => f.write_str("dump"),
            ReqType::Restore => f.write_str("restore"),
            ReqType::PreDump => f.write_str("pre-dump"),
            ReqType::Notify => f.write_str("notify"),
            ReqType::FeatureCheck => f.write_str("feature check"),
            ReqType::Other(n) => write!(f, "request type {n}"),
        }
    }
}

/// `criu_cg_mode`: how CRIU dumps and restores cgroups (runc's `--manage-cgroups-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgMode {
    /// Leave cgroups alone.
    Ignore,
    /// Restore properties of the cgroups CRIU creates only.
    Soft,
    /// Restore properties of every cgroup.
    Full,
    /// Fail if a cgroup exists with other properties.
    Strict,
    /// CRIU's default (soft).
    #[default]
    Default,
}

impl CgMode {
    /// The mode named as runc names it (`soft`, `full`, `strict`, `ignore`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "soft" => Some(CgMode::Soft),
            "full" => Some(CgMode::Full),
            "strict" => Some(CgMode::Strict),
            "ignore" => Some(CgMode::Ignore),
            _ => None,
        }
    }

    fn number(self) -> u64 {
        match self {
            CgMode::Ignore => 0,
            CgMode::Soft => 3,
            CgMode::Full => 4,
            CgMode::Strict => 5,
            CgMode::Default => 6,
        }
    }
}

/// `criu_opts`: only the fields this runtime sets. `None`, `false` and empty lists are not
/// sent, so CRIU applies its own defaults to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CriuOpts {
    /// Descriptor of the images directory (required by the protocol).
    pub images_dir_fd: i32,
    /// Root of the tree to dump.
    pub pid: Option<i32>,
    /// Keep the tree running after the dump.
    pub leave_running: bool,
    /// Allow connected unix sockets to peers outside the tree.
    pub ext_unix_sk: bool,
    /// Dump and restore established TCP connections.
    pub tcp_established: bool,
    /// Let CRIU find devices that moved (their paths are given as external mounts).
    pub evasive_devices: bool,
    /// The tree is a shell job: its session and group may lead outside.
    pub shell_job: bool,
    /// Dump and restore file locks.
    pub file_locks: bool,
    /// CRIU's log verbosity (0-4).
    pub log_level: Option<i32>,
    /// The log file's name, in the work (else images) directory.
    pub log_file: Option<String>,
    /// Send the notify callbacks ("setup-namespaces", "post-restore", ...).
    pub notify_scripts: bool,
    /// The root directory of the tree.
    pub root: Option<String>,
    /// The parent images directory (relative to the images directory) of a pre-dump chain.
    pub parent_img: Option<String>,
    /// Track memory changes (soft-dirty bits) for a later incremental dump.
    pub track_mem: bool,
    /// Punch holes into parent images as pages are written anew.
    pub auto_dedup: bool,
    /// Descriptor of the work directory (logs, temporary files).
    pub work_dir_fd: Option<i32>,
    /// External mounts: mount point -> key on dump, key -> host path on restore.
    pub ext_mnt: Vec<(String, String)>,
    /// Manage cgroups (older CRIU; `manage_cgroups_mode` says how).
    pub manage_cgroups: bool,
    /// Where each controller's (`None`: every controller's) cgroups are restored.
    pub cg_root: Vec<(Option<String>, String)>,
    /// Restore the tree as a sibling of CRIU, that is as our child.
    pub rst_sibling: bool,
    /// Descriptors of ours that stand for a dumped file's key on restore.
    pub inherit_fd: Vec<(String, i32)>,
    /// How cgroups are handled.
    pub manage_cgroups_mode: Option<CgMode>,
    /// External resources (`net[inode]:key` namespaces, ...).
    pub external: Vec<String>,
    /// Namespaces (CLONE_NEW* mask) created empty on restore.
    pub empty_ns: Option<u32>,
    /// Namespaces to join on restore: (kind, path).
    pub join_ns: Vec<(String, String)>,
    /// The freezer cgroup to freeze the tree with (instead of ptrace).
    pub freeze_cgroup: Option<String>,
    /// Restore memory lazily with userfaultfd.
    pub lazy_pages: bool,
    /// Send a restored terminal's master to us ("orphan-pts-master" notify).
    pub orphan_pts_master: bool,
    /// A CRIU configuration file (its settings win over these).
    pub config_file: Option<String>,
}

/// `criu_features`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Memory change tracking (needed by pre-dump).
    pub mem_track: Option<bool>,
    /// Lazy restore of memory pages.
    pub lazy_pages: Option<bool>,
}

/// `criu_req`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriuReq {
    /// What is asked.
    pub kind: ReqType,
    /// Options of a dump or restore.
    pub opts: Option<CriuOpts>,
    /// The answer to a notify callback.
    pub notify_success: Option<bool>,
    /// Features asked about by a feature check.
    pub features: Option<Features>,
}

impl CriuReq {
    /// A request of `kind` with `opts`.
    pub fn new(kind: ReqType, opts: CriuOpts) -> Self {
        Self {
            kind,
            opts: Some(opts),
            notify_success: None,
            features: None,
        }
    }

    /// The answer to a notify callback.
    pub fn notify_ok() -> Self {
        Self {
            kind: ReqType::Notify,
            opts: None,
            notify_success: Some(true),
            features: None,
        }
    }

    /// A feature check for `features`.
    pub fn feature_check(features: Features) -> Self {
        Self {
            kind: ReqType::FeatureCheck,
            opts: None,
            notify_success: None,
            features: Some(features),
        }
    }

    /// The message's wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.varint_field(1, self.kind.number());
        if let Some(o) = &self.opts {
            w.message(2, &encode_opts(o));
        }
        if let Some(b) = self.notify_success {
            w.bool(3, b);
        }
        if let Some(f) = &self.features {
            w.message(5, &encode_features(f));
        }
        w.buf
    }
}

fn encode_opts(o: &CriuOpts) -> Vec<u8> {
    let mut w = Writer::default();
    w.int32(opt::IMAGES_DIR_FD, o.images_dir_fd);
    if let Some(p) = o.pid {
        w.int32(opt::PID, p);
    }
    w.flag(opt::LEAVE_RUNNING, o.leave_running);
    w.flag(opt::EXT_UNIX_SK, o.ext_unix_sk);
    w.flag(opt::TCP_ESTABLISHED, o.tcp_established);
    w.flag(opt::EVASIVE_DEVICES, o.evasive_devices);
    w.flag(opt::SHELL_JOB, o.shell_job);
    w.flag(opt::FILE_LOCKS, o.file_locks);
    if let Some(l) = o.log_level {
        w.int32(opt::LOG_LEVEL, l);
    }
    w.opt_string(opt::LOG_FILE, &o.log_file);
    w.flag(opt::NOTIFY_SCRIPTS, o.notify_scripts);
    w.opt_string(opt::ROOT, &o.root);
    w.opt_string(opt::PARENT_IMG, &o.parent_img);
    w.flag(opt::TRACK_MEM, o.track_mem);
    w.flag(opt::AUTO_DEDUP, o.auto_dedup);
    if let Some(fd) = o.work_dir_fd {
        w.int32(opt::WORK_DIR_FD, fd);
    }
    for (key, val) in &o.ext_mnt {
        let mut m = Writer::default();
        m.string(1, key);
        m.string(2, val);
        w.message(opt::EXT_MNT, &m.buf);
    }
    w.flag(opt::MANAGE_CGROUPS, o.manage_cgroups);
    for (ctrl, path) in &o.cg_root {
        let mut m = Writer::default();
        m.opt_string(1, ctrl);
        m.string(2, path);
        w.message(opt::CG_ROOT, &m.buf);
    }
    w.flag(opt::RST_SIBLING, o.rst_sibling);
    for (key, fd) in &o.inherit_fd {
        let mut m = Writer::default();
        m.string(1, key);
        m.int32(2, *fd);
        w.message(opt::INHERIT_FD, &m.buf);
    }
    if let Some(mode) = o.manage_cgroups_mode {
        w.varint_field(opt::MANAGE_CGROUPS_MODE, mode.number());
    }
    for e in &o.external {
        w.string(opt::EXTERNAL, e);
    }
    if let Some(mask) = o.empty_ns {
        w.varint_field(opt::EMPTY_NS, u64::from(mask));
    }
    for (ns, file) in &o.join_ns {
        let mut m = Writer::default();
        m.string(1, ns);
        m.string(2, file);
        w.message(opt::JOIN_NS, &m.buf);
    }
    w.opt_string(opt::FREEZE_CGROUP, &o.freeze_cgroup);
    w.flag(opt::LAZY_PAGES, o.lazy_pages);
    w.flag(opt::ORPHAN_PTS_MASTER, o.orphan_pts_master);
    w.opt_string(opt::CONFIG_FILE, &o.config_file);
    w.buf
}

fn encode_features(f: &Features) -> Vec<u8> {
    let mut w = Writer::default();
    if let Some(b) = f.mem_track {
        w.bool(1, b);
    }
    if let Some(b) = f.lazy_pages {
        w.bool(2, b);
    }
    w.buf
}

/// `criu_resp`, the fields this runtime reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CriuResp {
    /// The request type answered (or `Notify` for a callback).
    pub kind: Option<ReqType>,
    /// Whether the request succeeded.
    pub success: bool,
    /// `restore.pid`: the restored tree's root, in our pid namespace.
    pub restored_pid: Option<i32>,
    /// `notify.script`: which callback this is.
    pub notify_script: Option<String>,
    /// `notify.pid`: the tree's root, for callbacks that have one.
    pub notify_pid: Option<i32>,
    /// `cr_errno`: the errno of a failure.
    pub cr_errno: Option<i32>,
    /// `cr_errmsg`: a failure's message.
    pub cr_errmsg: Option<String>,
    /// `features`: the answer to a feature check.
    pub features: Option<Features>,
}

/// A message that is not valid protobuf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed CRIU response: {0}")]
pub struct DecodeError(&'static str);

impl CriuResp {
    /// Decodes a response.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = CriuResp::default();
        for field in Fields(bytes) {
            match field? {
                (1, Value::Varint(v)) => r.kind = Some(ReqType::from_number(v)),
                (2, Value::Varint(v)) => r.success = v != 0,
                (4, Value::Bytes(b)) => {
                    for f in Fields(b) {
                        if let (1, Value::Varint(v)) = f? {
                            r.restored_pid = Some(v as i32);
                        }
                    }
                }
                (5, Value::Bytes(b)) => {
                    for f in Fields(b) {
                        match f? {
                            (1, Value::Bytes(s)) => {
                                r.notify_script = Some(String::from_utf8_lossy(s).into_owned())
                            }
                            (2, Value::Varint(v)) => r.notify_pid = Some(v as i32),
                            _ => {}
                        }
                    }
                }
                (7, Value::Varint(v)) => r.cr_errno = Some(v as i32),
                (8, Value::Bytes(b)) => {
                    let mut f = Features::default();
                    for field in Fields(b) {
                        match field? {
                            (1, Value::Varint(v)) => f.mem_track = Some(v != 0),
                            (2, Value::Varint(v)) => f.lazy_pages = Some(v != 0),
                            _ => {}
                        }
                    }
                    r.features = Some(f);
                }
                (9, Value::Bytes(s)) => r.cr_errmsg = Some(String::from_utf8_lossy(s).into_owned()),
                _ => {}
            }
        }
        Ok(r)
    }
}

/// Builds a message's bytes.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn varint_field(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }

    /// An int32 is sign-extended to 64 bits on the wire: a negative one takes 10 bytes.
    fn int32(&mut self, field: u32, v: i32) {
        self.varint_field(field, i64::from(v) as u64);
    }

    fn bool(&mut self, field: u32, v: bool) {
        self.varint_field(field, u64::from(v));
    }

    /// A bool option sent only when set.
    fn flag(&mut self, field: u32, v: bool) {
        if v {
            self.bool(field, true);
        }
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn opt_string(&mut self, field: u32, s: &Option<String>) {
        if let Some(s) = s {
            self.string(field, s);
        }
    }

    fn message(&mut self, field: u32, encoded: &[u8]) {
        self.bytes(field, encoded);
    }
}

/// A field's value as read from the wire.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// A fixed32 or fixed64, which none of the fields read here is.
    Fixed,
}

/// The fields of an encoded message, in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self
                .0
                .split_first()
                .ok_or(DecodeError("truncated varint"))?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.0.len() {
            return Err(DecodeError("field longer than the message"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), DecodeError> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| DecodeError("field number too large"))?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let n =
                    usize::try_from(self.varint()?).map_err(|_| DecodeError("length too large"))?;
                Value::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            _ => return Err(DecodeError("unknown wire type")),
        };
        Ok((field, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let r = self.field();
        if r.is_err() {
            // One error ends the iteration.
            self.0 = &[];
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `od -An -tx1` output into bytes.
    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    // Each expected byte string below is `protoc --encode=criu_req rpc.proto` (or
    // `criu_resp`) of the text format message in the comment above it, with CRIU's
    // images/rpc.proto, piped through `od -An -tx1`.

    /// type: DUMP opts { images_dir_fd: 7 pid: 1234 leave_running: true
    /// tcp_established: true shell_job: true log_level: 4 log_file: "dump.log"
    /// notify_scripts: true root: "/r" work_dir_fd: 8 ext_mnt { key: "/data" val: "/data" }
    /// manage_cgroups: true manage_cgroups_mode: DEFAULT
    /// external: "net[4026532008]:extRootNetNS" empty_ns: 1073741824
    /// freeze_cgroup: "/sys/fs/cgroup/freezer/c" orphan_pts_master: true }
    #[test]
    fn dump_request_is_byte_for_byte_protocs() {
        let req = CriuReq::new(
            ReqType::Dump,
            CriuOpts {
                images_dir_fd: 7,
                pid: Some(1234),
                leave_running: true,
                tcp_established: true,
                shell_job: true,
                log_level: Some(4),
                log_file: Some("dump.log".into()),
                notify_scripts: true,
                root: Some("/r".into()),
                work_dir_fd: Some(8),
                ext_mnt: vec![("/data".into(), "/data".into())],
                manage_cgroups: true,
                manage_cgroups_mode: Some(CgMode::Default),
                external: vec!["net[4026532008]:extRootNetNS".into()],
                empty_ns: Some(libc::CLONE_NEWNET as u32),
                freeze_cgroup: Some("/sys/fs/cgroup/freezer/c".into()),
                orphan_pts_master: true,
                ..CriuOpts::default()
            },
        );
        let want = hex(
            "08 01 12 7b 08 07 10 d2 09 18 01 28 01 38 01 48 04 52 08 64 75 6d 70 2e 6c 6f 67 \
             60 01 6a 02 2f 72 88 01 08 ba 01 0e 0a 05 2f 64 61 74 61 12 05 2f 64 61 74 61 \
             c0 01 01 90 02 06 aa 02 1c 6e 65 74 5b 34 30 32 36 35 33 32 30 30 38 5d 3a 65 78 \
             74 52 6f 6f 74 4e 65 74 4e 53 b0 02 80 80 80 80 04 e2 02 18 2f 73 79 73 2f 66 73 \
             2f 63 67 72 6f 75 70 2f 66 72 65 65 7a 65 72 2f 63 90 03 01",
        );
        assert_eq!(req.encode(), want);
    }

    /// type: RESTORE opts { images_dir_fd: -1 evasive_devices: true rst_sibling: true
    /// cg_root { path: "/c" } cg_root { ctrl: "memory" path: "/c" }
    /// inherit_fd { key: "pipe:[5]" fd: 1 } join_ns { ns: "ipc" ns_file: "/proc/1/ns/ipc" }
    /// config_file: "/etc/criu/runc.conf" }
    #[test]
    fn restore_request_with_negative_fd_and_nested_lists() {
        let req = CriuReq::new(
            ReqType::Restore,
            CriuOpts {
                images_dir_fd: -1,
                evasive_devices: true,
                rst_sibling: true,
                cg_root: vec![(None, "/c".into()), (Some("memory".into()), "/c".into())],
                inherit_fd: vec![("pipe:[5]".into(), 1)],
                join_ns: vec![("ipc".into(), "/proc/1/ns/ipc".into())],
                config_file: Some("/etc/criu/runc.conf".into()),
                ..CriuOpts::default()
            },
        );
        let want = hex(
            "08 02 12 63 08 ff ff ff ff ff ff ff ff ff 01 30 01 ca 01 04 12 02 2f 63 ca 01 0c \
             0a 06 6d 65 6d 6f 72 79 12 02 2f 63 d0 01 01 da 01 0c 0a 08 70 69 70 65 3a 5b 35 \
             5d 10 01 ba 02 15 0a 03 69 70 63 12 0e 2f 70 72 6f 63 2f 31 2f 6e 73 2f 69 70 63 \
             9a 03 13 2f 65 74 63 2f 63 72 69 75 2f 72 75 6e 63 2e 63 6f 6e 66",
        );
        assert_eq!(req.encode(), want);
    }

    /// type: NOTIFY notify_success: true; type: FEATURE_CHECK features { mem_track: true }
    #[test]
    fn notify_answer_and_feature_check() {
        assert_eq!(CriuReq::notify_ok().encode(), hex("08 06 18 01"));
        let req = CriuReq::feature_check(Features {
            mem_track: Some(true),
            lazy_pages: None,
        });
        assert_eq!(req.encode(), hex("08 09 2a 02 08 01"));
    }

    /// criu_resp: type: NOTIFY success: true notify { script: "post-restore" pid: 4321 }
    #[test]
    fn decodes_a_notify() {
        let r = CriuResp::decode(&hex(
            "08 06 10 01 2a 11 0a 0c 70 6f 73 74 2d 72 65 73 74 6f 72 65 10 e1 21",
        ))
        .unwrap();
        assert_eq!(r.kind, Some(ReqType::Notify));
        assert!(r.success);
        assert_eq!(r.notify_script.as_deref(), Some("post-restore"));
        assert_eq!(r.notify_pid, Some(4321));
    }

    /// criu_resp: type: RESTORE success: false restore { pid: 77 } cr_errno: 2
    /// cr_errmsg: "boom" version { major_number: 4 minor_number: 2 }
    /// features { mem_track: true lazy_pages: false }: the unknown `version` is skipped.
    #[test]
    fn decodes_a_failure_and_skips_unknown_fields() {
        let r = CriuResp::decode(&hex(
            "08 02 10 00 22 02 08 4d 38 02 42 04 08 01 10 00 4a 04 62 6f 6f 6d 52 04 08 04 10 02",
        ))
        .unwrap();
        assert_eq!(
            r,
            CriuResp {
                kind: Some(ReqType::Restore),
                success: false,
                restored_pid: Some(77),
                cr_errno: Some(2),
                cr_errmsg: Some("boom".into()),
                features: Some(Features {
                    mem_track: Some(true),
                    lazy_pages: Some(false),
                }),
                ..CriuResp::default()
            }
        );
    }

    #[test]
    fn truncated_messages_are_errors_not_panics() {
        // A string field claiming 17 bytes with 3 left; a varint that never ends.
        assert!(CriuResp::decode(&hex("08 06 2a 11 0a 0c 70")).is_err());
        assert!(CriuResp::decode(&hex("08 ff ff")).is_err());
        assert!(CriuResp::decode(&hex("0f")).is_err(), "wire type 7");
    }
}
