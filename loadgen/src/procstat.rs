//! Process resource samples from /proc: CPU time (utime + stime from
//! `/proc/PID/stat`, in clock ticks) and resident memory (`/proc/PID/statm`), for
//! the broker under test and for the generator itself.

use std::io;
use std::time::Duration;

/// Which process to sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// This process.
    Myself,
    Pid(u32),
}

impl Target {
    fn dir(self) -> String {
        match self {
            Target::Myself => "/proc/self".into(),
            Target::Pid(pid) => format!("/proc/{pid}"),
        }
    }
}

/// One sample of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// User plus system CPU time, all threads.
    pub cpu: Duration,
    pub rss_bytes: u64,
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// Reads utime + stime (in ticks) from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may contain anything, so fields are
    // counted from the last ')'. After it: state (3), ..., utime (14), stime (15).
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Samples a process.
pub fn sample(target: Target) -> io::Result<Sample> {
    let dir = target.dir();
    let stat = std::fs::read_to_string(format!("{dir}/stat"))?;
    let ticks = parse_stat_ticks(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{dir}/stat: unexpected format"),
        )
    })?;
    let statm = std::fs::read_to_string(format!("{dir}/statm"))?;
    let resident: u64 = statm
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{dir}/statm: unexpected format"),
            )
        })?;
    let hz = clock_ticks();
    Ok(Sample {
        cpu: Duration::from_secs(ticks / hz)
            + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz),
        rss_bytes: resident * page_size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_and_parens_in_the_name() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 4 0 12345 1000000 250";
        assert_eq!(parse_stat_ticks(stat), Some(267));
    }

    #[test]
    fn samples_this_process() {
        let s = sample(Target::Myself).unwrap();
        assert!(s.rss_bytes > 0);
    }
}
