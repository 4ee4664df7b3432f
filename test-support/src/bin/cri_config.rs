//! `youki-cri-config DIR [--runc BIN] [--debug]`: prints the CRI config of a private
//! containerd whose root, state, socket (`DIR/c.sock`) and CNI dirs are in DIR, for the
//! containerd first on PATH (`version = 2` for 1.x, 3 for 2.x). scripts/bench.sh starts
//! its CRI containerd with it, so that the tests and the benchmark share one config
//! (test-support/src/cri_config.rs).

use std::path::PathBuf;
use std::process::ExitCode;

use youki_test_support::containerd::containerd_version;
use youki_test_support::cri_config::CriConfig;

const USAGE: &str = "usage: youki-cri-config DIR [--runc BIN] [--debug]";

fn main() -> ExitCode {
    let mut dir = None;
    let mut runc = None;
    let mut debug = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--runc") => match args.next() {
                Some(bin) => runc = Some(PathBuf::from(bin)),
                None => {
                    eprintln!("youki-cri-config: --runc needs a binary\n{USAGE}");
                    return ExitCode::FAILURE;
                }
            },
            Some("--debug") => debug = true,
            Some(s) if s.starts_with('-') => {
                eprintln!("youki-cri-config: unknown option {s}\n{USAGE}");
                return ExitCode::FAILURE;
            }
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(dir) = dir.filter(|d| d.is_absolute()) else {
        eprintln!("youki-cri-config: DIR must be given, as an absolute path\n{USAGE}");
        return ExitCode::FAILURE;
    };
    // The containerd the config is for: the one on PATH, which the caller starts.
    let containerd = containerd_version(std::path::Path::new("containerd"));
    let config = CriConfig {
        containerd,
        dir,
        debug,
        runc,
        youki_shim: None,
    };
    print!("{}", config.render());
    ExitCode::SUCCESS
}
