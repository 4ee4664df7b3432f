//! What containerd learns about a runtime handler, and what it then lets pods do
//! (issue 17):
//!
//! - `containerd-shim-youki-v2 -info` answers containerd's RuntimeInfo as
//!   containerd-shim-runc-v2 2.x does (same fields, in the same order), carrying the
//!   document `youki features` prints; runc's shim, checked with the same decoder, carries
//!   `runc features` (runc 1.1.5 and 1.3.6).
//! - Through containerd 2.x's CRI, Status lists the `youki-runc-type` handler (runc's
//!   runtime type, `runtime_path` naming our shim) with recursive read-only mounts
//!   supported, as the `runc` handler; the plain `io.containerd.youki.v2` entry is not
//!   introspected by containerd before 2.4.
//! - A volume with a submount, mounted recursive read-only through CRI: writes to the
//!   mount and to the submount fail, through that handler and through runc's.
//! - The `youki-runc-type` handler runs pods on containerd 1.7 and 2.x with our shim,
//!   which says once in its log which of runc's options it ignores (1.6 ignores
//!   `runtime_path` and would run containerd-shim-runc-v2: that test says so and passes).
//! - examples/containerd-cri-runc-type-v{2,3}.toml parse with the containerd under test.
//!
//! containerd 1.x has no runtime handler features and ignores a mount's
//! recursive_read_only: the tests that need them print why and pass there.

mod common;
// Shared with tests/e2e_cri.rs, which uses more of it.
#[allow(dead_code)]
#[path = "e2e_support/cri.rs"]
mod cri;
mod e2e_support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{describe, poll, stderr_of};
use cri::*;
use e2e_support::containerd::{shim_dir, SHIM};
use youki_cri::api;

/// containerd-shim-runc-v2 of containerd 2.x (unpacked by scripts/setup.sh, as
/// scripts/test.sh expects it): the reference for `-info`. 1.x's has no `-info`.
const RUNC_SHIM_2X: &str = "/var/cache/youki-shim/containerd-sid/usr/bin/containerd-shim-runc-v2";
/// runc 1.3.6 (ENVIRONMENT.md); runc 1.1.5 is Debian's /usr/sbin/runc.
const RUNC_1_3: &str = "/var/cache/youki-shim/runc-sid/runc";
/// The type URL of the Features document in RuntimeInfo (containerd's typeurl registers
/// the runtime-spec type as JSON).
const FEATURES_TYPE_URL: &str =
    "types.containerd.io/opencontainers/runtime-spec/1/features/Features";
/// The type URL containerd gives runc's options.
const RUNC_OPTIONS_TYPE_URL: &str = "containerd.runc.v1.Options";

/// The pod's main container: sleeps until SIGTERM, on which it exits 0.
const SLEEPER: &[&str] = &["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

// ---- protobuf, as far as RuntimeInfo needs it ----

/// A field's value on the wire: RuntimeInfo has only strings, messages and maps (all
/// length-delimited); a varint is accepted so that a bool in an Options message decodes.
#[derive(Debug, Clone, PartialEq)]
enum Wire {
    Varint(u64),
    Bytes(Vec<u8>),
}

fn varint(buf: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf
            .get(*at)
            .unwrap_or_else(|| panic!("protobuf: varint runs past the end at {at}"));
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
    }
    panic!("protobuf: varint longer than 10 bytes");
}

/// The fields of a message, in wire order; panics on anything malformed or left over.
fn fields(buf: &[u8]) -> Vec<(u64, Wire)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let key = varint(buf, &mut at);
        let value = match key & 7 {
            0 => Wire::Varint(varint(buf, &mut at)),
            2 => {
                let len = varint(buf, &mut at) as usize;
                let bytes = buf
                    .get(at..at + len)
                    .unwrap_or_else(|| panic!("protobuf: field {} runs past the end", key >> 3));
                at += len;
                Wire::Bytes(bytes.to_vec())
            }
            t => panic!(
                "protobuf: wire type {t} (field {}) not in RuntimeInfo",
                key >> 3
            ),
        };
        out.push((key >> 3, value));
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field.
fn put_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// What CRI writes to a shim's stdin for a runtime entry with runc's options table:
/// google.protobuf.Any{containerd.runc.v1.Options{BinaryName, SystemdCgroup: true}}.
fn runc_options_any(binary_name: &str) -> Vec<u8> {
    let mut options = Vec::new();
    put_bytes(&mut options, 6, binary_name.as_bytes());
    put_varint(&mut options, 9 << 3);
    put_varint(&mut options, 1);
    let mut any = Vec::new();
    put_bytes(&mut any, 1, RUNC_OPTIONS_TYPE_URL.as_bytes());
    put_bytes(&mut any, 2, &options);
    any
}

/// The field numbers of a RuntimeInfo in wire order, each message field (version,
/// options, features) followed by its own in braces: its structure, without the values.
/// The version's revision (2) is left out: it is there only when the build names one
/// (Debian's runc shim names none; ours names `YOUKI_COMMIT` when it is set).
fn shape(info: &[u8]) -> String {
    let numbers = |buf: &[u8], skip: Option<u64>| {
        fields(buf)
            .iter()
            .filter(|(n, _)| Some(*n) != skip)
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    fields(info)
        .iter()
        .map(|(n, v)| match v {
            Wire::Bytes(b) if *n == 2 => format!("2{{{}}}", numbers(b, Some(2))),
            // name (1) is a string, annotations (5) map entries.
            Wire::Bytes(b) if (3..=4).contains(n) => format!("{n}{{{}}}", numbers(b, None)),
            _ => n.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A decoded google.protobuf.Any.
#[derive(Debug, PartialEq)]
struct AnyValue {
    type_url: String,
    value: Vec<u8>,
}

/// containerd.types.RuntimeInfo.
#[derive(Debug, Default)]
struct RuntimeInfo {
    name: String,
    version: String,
    options: Option<AnyValue>,
    features: Option<AnyValue>,
    annotations: usize,
}

fn bytes(v: &Wire, what: &str) -> Vec<u8> {
    match v {
        Wire::Bytes(b) => b.clone(),
        Wire::Varint(_) => panic!("{what}: a varint where bytes belong"),
    }
}

fn text(v: &Wire, what: &str) -> String {
    String::from_utf8(bytes(v, what)).unwrap_or_else(|e| panic!("{what}: not UTF-8: {e}"))
}

fn any(v: &Wire, what: &str) -> AnyValue {
    let mut a = AnyValue {
        type_url: String::new(),
        value: vec![],
    };
    for (n, f) in fields(&bytes(v, what)) {
        match n {
            1 => a.type_url = text(&f, "Any.type_url"),
            2 => a.value = bytes(&f, "Any.value"),
            n => panic!("{what}: Any has no field {n}"),
        }
    }
    a
}

fn decode_runtime_info(buf: &[u8]) -> RuntimeInfo {
    let mut info = RuntimeInfo::default();
    for (n, v) in fields(buf) {
        match n {
            1 => info.name = text(&v, "name"),
            2 => {
                for (m, f) in fields(&bytes(&v, "version")) {
                    if m == 1 {
                        info.version = text(&f, "version.version");
                    }
                }
            }
            3 => info.options = Some(any(&v, "options")),
            4 => info.features = Some(any(&v, "features")),
            5 => info.annotations += 1,
            n => panic!("RuntimeInfo has no field {n}"),
        }
    }
    info
}

// ---- -info ----

/// Runs `shim FLAG` with `stdin` (as containerd does) and returns its output, which must
/// be a success with nothing on stderr.
fn run_info(shim: &Path, flag: &str, stdin: &[u8]) -> Output {
    let mut child = Command::new(shim)
        .arg(flag)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {} {flag}: {e}", shim.display()));
    let mut input = child.stdin.take().expect("stdin pipe");
    input.write_all(stdin).expect("write the options");
    drop(input);
    let o = child.wait_with_output().expect("wait for the shim");
    assert!(
        o.status.success(),
        "{} {flag}: {}",
        shim.display(),
        describe(&o)
    );
    assert_eq!(
        stderr_of(&o),
        "",
        "{} {flag} wrote to stderr",
        shim.display()
    );
    o
}

/// `BIN features`, parsed.
fn features_of(bin: &Path) -> serde_json::Value {
    let o = Command::new(bin)
        .arg("features")
        .output()
        .unwrap_or_else(|e| panic!("run {} features: {e}", bin.display()));
    assert!(
        o.status.success(),
        "{} features: {}",
        bin.display(),
        describe(&o)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{} features: not JSON: {e}", bin.display()))
}

/// Checks a RuntimeInfo: its name, a version, the options given back as they were
/// given, and `runtime features` as the JSON Features document.
#[track_caller]
fn assert_runtime_info(out: &[u8], name: &str, given: &[u8], runtime: &Path) -> RuntimeInfo {
    let info = decode_runtime_info(out);
    assert_eq!(info.name, name);
    assert!(!info.version.is_empty(), "{info:?}");
    assert_eq!(info.annotations, 0, "{info:?}");
    let expected_options = (!given.is_empty()).then(|| any(&Wire::Bytes(given.to_vec()), "given"));
    assert_eq!(info.options, expected_options);
    let features = info
        .features
        .as_ref()
        .expect("RuntimeInfo without features");
    assert_eq!(features.type_url, FEATURES_TYPE_URL);
    let doc: serde_json::Value = serde_json::from_slice(&features.value)
        .unwrap_or_else(|e| panic!("features: not JSON: {e}"));
    assert_eq!(
        doc,
        features_of(runtime),
        "features of {}",
        runtime.display()
    );
    info
}

/// The runc shim of containerd 2.x; fails, as scripts/test.sh does, when it was not
/// unpacked.
fn runc_shim_2x() -> PathBuf {
    let p = PathBuf::from(RUNC_SHIM_2X);
    assert!(
        p.is_file(),
        "{RUNC_SHIM_2X} missing: run scripts/setup.sh (scripts/fetch-containerd.sh)"
    );
    p
}

/// Our shim's `-info` and `--info`, with and without options on stdin: RuntimeInfo with
/// `youki features`' document, nothing else on stdout or stderr, exit 0; and the same
/// structure as containerd-shim-runc-v2 2.x answers for the same stdin.
#[test]
fn shim_info_is_runtime_info_with_youki_features() {
    let shim = shim_dir().join(SHIM);
    let youki = PathBuf::from(env!("CARGO_BIN_EXE_youki"));
    let runc_shim = runc_shim_2x();
    let with_options = runc_options_any("runc");
    for stdin in [&b""[..], &with_options[..]] {
        for flag in ["-info", "--info"] {
            let o = run_info(&shim, flag, stdin);
            let info = assert_runtime_info(&o.stdout, "io.containerd.youki.v2", stdin, &youki);
            assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
            // runc's shim fills the same fields in the same order.
            let theirs = run_info(&runc_shim, flag, stdin);
            assert_eq!(
                shape(&o.stdout),
                shape(&theirs.stdout),
                "our RuntimeInfo vs containerd-shim-runc-v2's, stdin of {} bytes",
                stdin.len()
            );
        }
    }
}

/// The test's decoder and expectations against containerd-shim-runc-v2 2.x with runc
/// 1.1.5 and 1.3.6 (BinaryName in the options, as CRI passes it): `runc features`.
#[test]
fn runc_shim_info_is_runtime_info_with_runc_features() {
    let runc_shim = runc_shim_2x();
    for runc in ["/usr/sbin/runc", RUNC_1_3] {
        let runc = Path::new(runc);
        assert!(
            runc.is_file(),
            "{} missing: run scripts/setup.sh",
            runc.display()
        );
        let stdin = runc_options_any(&runc.to_string_lossy());
        let o = run_info(&runc_shim, "-info", &stdin);
        assert_runtime_info(&o.stdout, "io.containerd.runc.v2", &stdin, runc);
    }
}

// ---- through CRI ----

/// containerd's version on PATH, (major, minor).
fn containerd_version() -> (u32, u32) {
    cri::containerd_version(&e2e_support::client("containerd", "containerd"))
}

/// Whether the containerd under test has runtime handler features in CRI; says why a
/// test does nothing when not.
fn has_handler_features(test: &str) -> bool {
    let (major, minor) = containerd_version();
    if major < 2 {
        eprintln!(
            "{test}: skipped on containerd {major}.{minor}: runtime handler features and \
             recursive read-only mounts came to CRI with containerd 2.0 (1.x lists no \
             handlers and ignores a mount's recursive_read_only)"
        );
        return false;
    }
    true
}

/// CRI's rule for user namespaces (containerd's supportsCRIUserns): the runtime lists
/// the `user` namespace and idmapped mounts (mountExtensions.idmap.enabled).
fn cri_userns(features: &serde_json::Value) -> bool {
    let linux = &features["linux"];
    linux["namespaces"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n == "user"))
        && linux["mountExtensions"]["idmap"]["enabled"] == true
}

/// CRI Status through containerd 2.x: what each handler is said to support.
#[test]
fn cri_status_lists_handler_features() {
    if !has_handler_features("cri_status_lists_handler_features") {
        return;
    }
    let cri = Cri::start("status", true);
    let features = |name: &str| {
        cri.handler_features(name)
            .unwrap_or_else(|| panic!("Status lists no features for handler {name:?}"))
    };
    // Both handlers' runtimes list `rro` (runc since 1.1; the kernel has mount_setattr).
    // User namespaces follow CRI's rule from each runtime's features: false for runc
    // 1.1.5 (no mountExtensions); for ours false until idmapped mounts land in
    // runtime-core (issue 13), true from then on.
    let runc = features(RUNC);
    let runc_doc = features_of(&e2e_support::client("runc", "runc"));
    assert!(runc.recursive_read_only_mounts, "{runc:?}");
    assert_eq!(runc.user_namespaces, cri_userns(&runc_doc), "{runc:?}");
    let ours = features(YOUKI_RUNC_TYPE);
    assert!(
        ours.recursive_read_only_mounts,
        "{ours:?}\n{}",
        cri.ctd.log_tail()
    );
    let doc = features_of(Path::new(env!("CARGO_BIN_EXE_youki")));
    eprintln!(
        "youki features: user namespaces for CRI: {}",
        cri_userns(&doc)
    );
    assert_eq!(ours.user_namespaces, cri_userns(&doc), "{ours:?}");
    // containerd before 2.4 introspects only handlers of runc's runtime type (its debug
    // log says "needs the runtime type to be io.containerd.runc.v2"): the plain entry
    // gets nothing, which is why the runtime_path registration exists.
    let plain = cri.handler_features(YOUKI).unwrap_or_default();
    let (major, minor) = containerd_version();
    assert_eq!(
        plain.recursive_read_only_mounts,
        (major, minor) >= (2, 4),
        "{plain:?} on containerd {major}.{minor}"
    );
}

/// A tmpfs mounted on a directory for the test, unmounted when dropped.
struct Submount(PathBuf);

impl Submount {
    fn new(dir: &Path) -> Submount {
        fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            o.status.success(),
            "mount tmpfs on {}: {}",
            dir.display(),
            describe(&o)
        );
        Submount(dir.to_path_buf())
    }
}

impl Drop for Submount {
    fn drop(&mut self) {
        match Command::new("umount").arg(&self.0).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!("umount {}: {}", self.0.display(), describe(&o)),
            Err(e) => eprintln!("umount {}: {e}", self.0.display()),
        }
    }
}

/// A bind mount of `host` at `container`, read-only, recursively or not, with private
/// propagation (which CRI requires for recursive read-only).
fn volume(host: &Path, container: &str, recursive: bool) -> api::Mount {
    api::Mount {
        container_path: container.into(),
        host_path: host.to_string_lossy().into_owned(),
        readonly: true,
        recursive_read_only: recursive,
        propagation: api::MountPropagation::PropagationPrivate as i32,
        ..Default::default()
    }
}

/// ExecSync; returns (exit code, stdout, stderr).
fn exec(cri: &Cri, id: &str, cmd: &[&str]) -> (i32, String, String) {
    let r = cri
        .client
        .exec_sync(id, cmd, EXEC_TIMEOUT)
        .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}\n{}", cri.ctd.log_tail()));
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (r.exit_code, s(&r.stdout), s(&r.stderr))
}

/// A directory with a submount, mounted into a container recursive read-only (`/rro`)
/// and, for contrast, read-only alone (`/ro`): every write under `/rro` fails, the
/// submount included; under `/ro` only the top mount is read-only (runc's `ro`: the
/// remount applies to the bind mount itself), which shows that the test tells the two
/// apart.
fn recursive_read_only_volume(handler: &str, test: &str) {
    if !has_handler_features(test) {
        return;
    }
    let cri = Cri::start("rro", handler != RUNC);
    let vol = cri.w().path("vol");
    // Dropped before `cri`, whose world then finds no mount left.
    let _sub = Submount::new(&vol.join("sub"));
    fs::write(vol.join("sub/marker"), "submount").unwrap();
    let pod = cri.run_pod(cri.pod_config("rro", true), handler);
    let mut config = cri.container_config(&pod, "rro", SLEEPER);
    config.mounts = vec![volume(&vol, "/rro", true), volume(&vol, "/ro", false)];
    let id = cri.start_container(&pod, &config);

    for dir in ["/rro", "/ro"] {
        let (code, out, err) = exec(&cri, &id, &["cat", &format!("{dir}/sub/marker")]);
        assert_eq!(
            (code, out.as_str()),
            (0, "submount"),
            "{dir}: the submount is not there: {err}"
        );
    }
    for path in ["/rro/f", "/rro/sub/f", "/ro/f"] {
        let (code, _, err) = exec(&cri, &id, &["touch", path]);
        assert_ne!(code, 0, "{handler}: touch {path} succeeded");
        assert!(
            err.contains("Read-only file system"),
            "{handler}: touch {path}: {err}"
        );
    }
    let (code, _, err) = exec(&cri, &id, &["touch", "/ro/sub/f"]);
    assert_eq!(
        code, 0,
        "{handler}: a plain ro mount's submount stays writable: {err}"
    );
    assert!(vol.join("sub/f").exists());
    assert!(!vol.join("f").exists());
    cri.remove_pod(&pod);
}

#[test]
fn cri_runc_recursive_read_only_volume() {
    recursive_read_only_volume(RUNC, "cri_runc_recursive_read_only_volume");
}

#[test]
fn cri_youki_recursive_read_only_volume() {
    recursive_read_only_volume(YOUKI_RUNC_TYPE, "cri_youki_recursive_read_only_volume");
}

/// The log line of our shim naming the runc options it ignores.
const IGNORED_LINE: &str = "options: ignoring what does not apply to this shim";

/// A pod through the `youki-runc-type` handler, on every containerd: our shim serves it
/// (runtime_path), it runs and execs, and the shim says once which of runc's options
/// it ignores (the entry sets BinaryName; SystemdCgroup = false is honoured).
#[test]
fn cri_youki_runc_type_pod() {
    let (major, minor) = containerd_version();
    if !honours_runtime_path((major, minor)) {
        eprintln!(
            "cri_youki_runc_type_pod: skipped on containerd {major}.{minor}: its client does \
             not pass a CRI runtime's runtime_path on, so the entry would run \
             containerd-shim-runc-v2 (use runtime_type io.containerd.youki.v2 there)"
        );
        return;
    }
    let cri = Cri::start("runc-type", true);
    let pod = cri.run_pod(cri.pod_config("rt", true), YOUKI_RUNC_TYPE);
    let id = cri.start_container(&pod, &cri.container_config(&pod, "c", SLEEPER));
    assert_eq!(exec(&cri, &id, &["echo", "hi"]).1, "hi\n");
    let shims = cri.shims_of(&pod.id);
    assert!(!shims.is_empty(), "no shim serves pod {}", pod.id);
    for pid in shims {
        let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        assert_eq!(exe, shim_dir().join(SHIM), "shim {pid} of pod {}", pod.id);
    }
    let said = |n: usize| cri.ctd.log_text().matches(IGNORED_LINE).count() == n;
    assert!(
        poll(Duration::from_secs(10), || said(1)),
        "{}",
        cri.ctd.log_tail()
    );
    cri.remove_pod(&pod);
    let log = cri.ctd.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(IGNORED_LINE)).collect();
    assert_eq!(
        lines.len(),
        1,
        "sandbox and container share one shim: {lines:#?}"
    );
    assert!(
        lines[0].contains("BinaryName=") && !lines[0].contains("SystemdCgroup"),
        "{}",
        lines[0]
    );
}

/// The examples of the runc-type registration parse with the containerd under test and
/// declare the `youki` handler with runc's runtime type and our shim as runtime_path
/// (2.x reads both syntaxes; 1.7 version 2; 1.6 would run runc's shim for it).
#[test]
fn cri_runc_type_example_configs() {
    let containerd = e2e_support::client("containerd", "containerd");
    let version = cri::containerd_version(&containerd);
    let files: &[&str] = if version.0 >= 2 {
        &[
            "containerd-cri-runc-type-v3.toml",
            "containerd-cri-runc-type-v2.toml",
        ]
    } else if honours_runtime_path(version) {
        &["containerd-cri-runc-type-v2.toml"]
    } else {
        eprintln!(
            "cri_runc_type_example_configs: skipped on containerd {}.{}: it ignores \
             runtime_path (the examples say to use containerd-cri-v2.toml there)",
            version.0, version.1
        );
        return;
    };
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for f in files {
        let table = dumped_runtime_table(&containerd, &examples.join(f), "youki");
        let has = |key: &str, value: &str| {
            table
                .iter()
                .any(|l| l.trim_start().starts_with(key) && l.contains(value))
        };
        assert!(
            has("runtime_type", "io.containerd.runc.v2")
                && has("runtime_path", "/containerd-shim-youki-v2"),
            "{f}: {table:#?}"
        );
    }
}
