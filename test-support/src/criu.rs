//! CRIU for the checkpoint tests, and the counter they checkpoint.

use std::path::PathBuf;
use std::process::Command;

/// The CRIU binary the tests use, or why there is none.
pub fn criu() -> Result<PathBuf, String> {
    let path = std::env::var_os("CRIU_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/youki-shim/criu-sid/criu"));
    let check = Command::new(&path).arg("check").output();
    match check {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("Looks good") => Ok(path),
        Ok(o) => Err(format!(
            "{} check does not say 'Looks good': {}{}",
            path.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!(
            "{}: {e} (scripts/fetch-criu.sh, or set CRIU_BIN)",
            path.display()
        )),
    }
}

/// `Some(criu)`, or prints why the test checks nothing.
pub fn criu_or_skip(test: &str) -> Option<PathBuf> {
    match criu() {
        Ok(p) => Some(p),
        Err(why) => {
            eprintln!("{test}: skipped: no working CRIU: {why}");
            None
        }
    }
}

/// A counter for checkpoint tests: a token drawn once at start and a number that grows
/// every tenth of a second, both written to /count (atomically, by rename). A restored
/// counter keeps its token; one started afresh draws another.
pub const TOKEN_COUNTER: &str = "t=$(cat /proc/sys/kernel/random/uuid); i=0; \
    while true; do i=$((i+1)); echo \"$t $i\" > /count.new; mv /count.new /count; sleep 0.1; done";

/// (token, number) of a [`TOKEN_COUNTER`]'s /count.
pub fn token_count(text: &str) -> Option<(String, u64)> {
    let (token, n) = text.trim().split_once(' ')?;
    Some((token.to_string(), n.parse().ok()?))
}
