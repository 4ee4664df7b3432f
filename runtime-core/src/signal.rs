//! Signal names for `kill`: `KILL`, `SIGKILL`, `kill`, `9`, `RTMIN+3`, `SIGRTMAX-1`.
//!
//! [`parse`] returns a raw signal number rather than `nix::sys::signal::Signal` because that
//! enum has no realtime signals; send the number with `libc::kill`.

/// Lowest realtime signal as user space sees it: glibc reserves 32 and 33 for its threading
/// implementation, so `SIGRTMIN` is 34 (the value Docker and containerd also use).
pub const SIGRTMIN: i32 = 34;
/// Highest signal number on Linux (`_NSIG - 1`).
pub const SIGRTMAX: i32 = 64;

/// A signal name or number that is not a Linux signal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// Neither a known name nor a number in 0..=64 (0: only check that the process exists).
    #[error("unknown signal {0:?}")]
    Unknown(String),
}

/// Standard signal names without the `SIG` prefix. Values come from libc so that the numbers
/// are right for the target architecture. Aliases (IOT, CLD, POLL) are accepted on input.
const NAMES: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses a signal the way runc's `kill` does (case-insensitive name with or without `SIG`,
/// or a number), plus realtime names `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N`.
pub fn parse(s: &str) -> Result<i32, SignalError> {
    let unknown = || SignalError::Unknown(s.to_string());

    // Numbers first, like runc; unlike runc, reject numbers the kernel would refuse. 0 is
    // kill(2)'s "does the process exist" check, which runc passes on: `kill ID 0` tells
    // whether the container's init is alive.
    if let Ok(n) = s.parse::<i32>() {
        return if (0..=SIGRTMAX).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }

    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(known, _)| *known == name) {
        return Ok(n);
    }
    realtime(name).ok_or_else(unknown)
}

/// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N`, within SIGRTMIN..=SIGRTMAX.
fn realtime(name: &str) -> Option<i32> {
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        SIGRTMIN.checked_add(offset(rest, '+')?)?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        SIGRTMAX.checked_sub(offset(rest, '-')?)?
    } else {
        return None;
    };
    (SIGRTMIN..=SIGRTMAX).contains(&n).then_some(n)
}

/// The `+N` / `-N` suffix of a realtime name: empty means 0; only digits after the sign, so
/// `RTMIN-1` or `RTMIN+-1` are rejected.
fn offset(rest: &str, sign: char) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    let digits = rest.strip_prefix(sign)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The canonical name of a signal number (`SIGKILL`, `SIGRTMIN+3`), for messages and logs.
pub fn name(signal: i32) -> Option<String> {
    // The first entry for a number is its canonical name (ABRT before IOT, CHLD before CLD).
    if let Some((n, _)) = NAMES.iter().find(|(_, v)| *v == signal) {
        return Some(format!("SIG{n}"));
    }
    match signal {
        SIGRTMIN => Some("SIGRTMIN".to_string()),
        SIGRTMAX => Some("SIGRTMAX".to_string()),
        n if n > SIGRTMIN && n < SIGRTMAX => Some(format!("SIGRTMIN+{}", n - SIGRTMIN)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_prefix() {
        assert_eq!(parse("KILL"), Ok(libc::SIGKILL));
        assert_eq!(parse("SIGKILL"), Ok(libc::SIGKILL));
        assert_eq!(parse("TERM"), Ok(libc::SIGTERM));
        assert_eq!(parse("SIGHUP"), Ok(libc::SIGHUP));
        assert_eq!(parse("WINCH"), Ok(libc::SIGWINCH));
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(parse("kill"), Ok(libc::SIGKILL));
        assert_eq!(parse("sigterm"), Ok(libc::SIGTERM));
        assert_eq!(parse("SigUsr1"), Ok(libc::SIGUSR1));
        assert_eq!(parse("rtmin+2"), Ok(SIGRTMIN + 2));
    }

    #[test]
    fn aliases() {
        assert_eq!(parse("IOT"), Ok(libc::SIGABRT));
        assert_eq!(parse("SIGCLD"), Ok(libc::SIGCHLD));
        assert_eq!(parse("POLL"), Ok(libc::SIGIO));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse("9"), Ok(9));
        assert_eq!(parse("15"), Ok(15));
        assert_eq!(parse("1"), Ok(1));
        assert_eq!(parse("64"), Ok(64));
        // The existence check of kill(2).
        assert_eq!(parse("0"), Ok(0));
    }

    #[test]
    fn realtime_names() {
        assert_eq!(parse("RTMIN"), Ok(34));
        assert_eq!(parse("SIGRTMIN"), Ok(34));
        assert_eq!(parse("RTMIN+1"), Ok(35));
        assert_eq!(parse("SIGRTMIN+30"), Ok(64));
        assert_eq!(parse("RTMAX"), Ok(64));
        assert_eq!(parse("SIGRTMAX-2"), Ok(62));
        assert_eq!(parse("RTMAX-30"), Ok(34));
    }

    #[test]
    fn errors_name_the_input() {
        for bad in [
            "FOO",
            "SIG",
            "",
            "65",
            "-9",
            "99999999999",
            "RTMIN+31",
            "RTMAX-31",
            "RTMIN-1",
            "RTMAX+1",
            "RTMIN+",
            "RTMIN+x",
            "RTMIN++1",
            " 9",
            "KILL ",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.to_string(), format!("unknown signal {bad:?}"));
        }
        assert_eq!(
            parse("FOO").unwrap_err().to_string(),
            r#"unknown signal "FOO""#
        );
    }

    #[test]
    fn canonical_names() {
        assert_eq!(name(libc::SIGKILL).as_deref(), Some("SIGKILL"));
        assert_eq!(name(libc::SIGABRT).as_deref(), Some("SIGABRT"));
        assert_eq!(name(34).as_deref(), Some("SIGRTMIN"));
        assert_eq!(name(37).as_deref(), Some("SIGRTMIN+3"));
        assert_eq!(name(64).as_deref(), Some("SIGRTMAX"));
        assert_eq!(name(0), None);
        assert_eq!(name(65), None);
    }

    #[test]
    fn every_name_round_trips() {
        for n in 1..=SIGRTMAX {
            if let Some(s) = name(n) {
                assert_eq!(parse(&s), Ok(n), "{s}");
            }
        }
    }
}
