//! The kind (gRPC code) and message a CRI client gets when a container's process cannot be
//! set up, through this project's shim and through containerd's runc shim (with runc 1.1.5
//! and with 1.3.6), in one private containerd.
//!
//! containerd's runc shim wraps runc's stderr in a plain error ("OCI runtime create
//! failed: ...", cmd/containerd-shim-runc-v2/process/init.go runtimeError; "OCI runtime
//! exec failed: ..." for an exec), so these failures reach containerd, and CRI, as
//! Unknown; kubelet and Docker act on the words (127 for a program that is not there).
//! Our shim carries the failed step and errno from the container's init to the shim
//! (runtime_core::os::Failure) and still reports Unknown with the same words, so
//! that no client sees a kind runc's shim would not give.

mod common;
#[path = "e2e_support/cri.rs"]
mod cri;
mod e2e_support;

use cri::*;
use youki_cri::api;
use youki_cri::Code;

/// What a failed StartContainer of `config` gives: the gRPC code and message.
fn start_error(cri: &Cri, pod: &Pod, config: &api::ContainerConfig) -> (Code, String) {
    let id = cri.create_container(pod, config);
    let e = cri
        .client
        .start_container(&id)
        .expect_err("StartContainer of a container that cannot run must fail");
    (e.code().expect("a gRPC status"), e.message().to_string())
}

/// One failure case: a name, how the container is configured, and the words every
/// runtime's message holds (compared without case: runc's are Go's lower-case errno
/// texts, ours after chdir(2) name the errno's libc text).
struct Case {
    name: &'static str,
    words: &'static [&'static str],
    config: fn(&Cri, &Pod) -> api::ContainerConfig,
}

const CASES: &[Case] = &[
    Case {
        name: "no-program",
        words: &[r#""nosuchcmd": executable file not found in $path"#],
        config: |cri, pod| cri.container_config(pod, "no-program", &["nosuchcmd"]),
    },
    Case {
        // /etc/hosts is a file CRI mounts into every container: the cwd can be neither
        // created nor entered.
        name: "bad-cwd",
        words: &["/etc/hosts", "not a directory"],
        config: |cri, pod| {
            let mut c = cri.container_config(pod, "bad-cwd", &["true"]);
            c.working_dir = "/etc/hosts/sub".into();
            c
        },
    },
];

#[test]
fn cri_setup_failures_have_runcs_kind_and_words() {
    let cri = Cri::start("cri-errors", true);
    let handlers = [RUNC, RUNC_1_3_HANDLER, YOUKI];
    for handler in handlers {
        let pod = cri.run_pod(cri.pod_config(&format!("err-{handler}"), false), handler);
        for case in CASES {
            let (code, message) = start_error(&cri, &pod, &(case.config)(&cri, &pod));
            let what = format!("{} ({handler})", case.name);
            eprintln!("{what}: {code:?}: {message}");
            assert_eq!(code, Code::Unknown, "{what}: {message}");
            let lower = message.to_lowercase();
            for w in case.words {
                assert!(lower.contains(w), "{what}: no {w:?} in: {message}");
            }
        }

        // An exec'd program that is not there: ExecSync fails the same way.
        let main = cri.start_container(
            &pod,
            &cri.container_config(&pod, "main", &["sleep", "3600"]),
        );
        let e = cri
            .client
            .exec_sync(&main, &["nosuchcmd"], EXEC_TIMEOUT)
            .expect_err("ExecSync of a program that is not there must fail");
        let what = format!("exec ({handler})");
        eprintln!("{what}: {e}");
        assert_eq!(e.code(), Some(Code::Unknown), "{what}: {e}");
        assert!(
            e.message()
                .contains(r#""nosuchcmd": executable file not found in $PATH"#),
            "{what}: {e}"
        );
        cri.remove_pod(&pod);
    }
    cri.ctd.no_containers_left();
    // A failure the client is told about is no warning for the operator (as in e2e_cri).
    let warnings = cri.ctd.shim_warnings("io.containerd.youki.v2");
    assert!(warnings.is_empty(), "{}", warnings.join("\n"));
}
