//! CPU time spent by the processes under test, read from Linux's `/proc`.
//!
//! On a small machine every process shares the same cores, so throughput
//! alone cannot say which process a request's cost goes to. Sampling each
//! watched process's CPU time (user + system, all threads) at the start and
//! end of the measured window and dividing by the requests counted gives CPU
//! microseconds per request per process: the gateway's share is exactly what
//! the "gateway hop" costs. The whole machine's busy time (from `/proc/stat`,
//! PostgreSQL and the kernel's network work included) is sampled too.
//!
//! A watched entry may also name a command instead of a process id
//! (`postgres=postgres`): every process with that command name counts, which
//! is how PostgreSQL's per-connection backends and `nats-server` get a column
//! of their own. A backend that exits inside the window takes its CPU with
//! it, so pooled connections (which live for the run) are what it measures.
//!
//! `/proc` counts in clock ticks of 1/100 s (`USER_HZ`, fixed at 100 by
//! Linux's ABI on every mainstream architecture), so windows of a few
//! seconds give figures good to a few per cent. Elsewhere than Linux, or for
//! a process that has gone, the figures are simply absent.

use std::fs;
use std::time::Duration;

/// Clock ticks per second in `/proc` (Linux's `USER_HZ`).
const TICKS_PER_SECOND: u64 = 100;

/// Name of the load generator's own entry.
pub const LOADGEN: &str = "loadgen";
/// Name of the whole-machine entry.
pub const MACHINE: &str = "machine";

/// A process (or every process of one command) whose CPU time is sampled,
/// named for the report.
#[derive(Clone, Debug)]
pub struct Watched {
    pub name: String,
    pub process: Process,
}

/// Which processes a [`Watched`] entry adds up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Process {
    Id(u32),
    /// Every process whose command name (`/proc/PID/comm`) is this.
    Command(String),
}

/// Parses `--watch` values: `gateway=1234`, or `postgres=postgres` for every
/// process of a command.
pub fn parse_watched(value: &str) -> Result<Watched, String> {
    let (name, pid) = value
        .split_once('=')
        .ok_or_else(|| format!("{value:?} is not NAME=PID, e.g. gateway=1234"))?;
    let name = name.trim();
    if name.is_empty() || name == LOADGEN || name == MACHINE {
        return Err(format!(
            "{value:?}: name the process (not `{LOADGEN}` or `{MACHINE}`, which are always shown)"
        ));
    }
    let pid = pid.trim();
    let process = match pid.parse() {
        Ok(id) => Process::Id(id),
        Err(_)
            if !pid.is_empty()
                && !pid.contains('/')
                && !pid.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            Process::Command(pid.to_owned())
        }
        Err(_) => {
            return Err(format!(
                "{value:?}: {pid:?} is neither a process id nor a command name"
            ));
        }
    };
    Ok(Watched {
        name: name.to_owned(),
        process,
    })
}

/// CPU time used so far by the load generator, each watched process and the
/// whole machine, in that order; `None` where it cannot be read.
pub fn sample(watched: &[Watched]) -> Vec<(String, Option<Duration>)> {
    let mut samples = vec![(LOADGEN.to_owned(), process_time("self"))];
    for entry in watched {
        let time = match &entry.process {
            Process::Id(id) => process_time(&id.to_string()),
            Process::Command(command) => command_time(command),
        };
        samples.push((entry.name.clone(), time));
    }
    samples.push((MACHINE.to_owned(), machine_busy_time()));
    samples
}

/// CPU used between two samples taken by [`sample`] with the same list.
pub fn elapsed(
    before: &[(String, Option<Duration>)],
    after: &[(String, Option<Duration>)],
) -> Vec<(String, Duration)> {
    before
        .iter()
        .zip(after)
        .filter_map(|((name, start), (_, end))| {
            Some((name.clone(), end.as_ref()?.checked_sub(*start.as_ref()?)?))
        })
        .collect()
}

/// utime + stime of every thread of process `pid` (`self` for this one).
fn process_time(pid: &str) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; the fields
    // after its closing parenthesis start at field 3 (state).
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(ticks(user + system))
}

/// utime + stime of every live process whose command name is `command`;
/// `None` when there is none.
fn command_time(command: &str) -> Option<Duration> {
    let mut total = None;
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let named = fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == command);
        if let Some(time) = named.then(|| process_time(pid)).flatten() {
            total = Some(total.unwrap_or(Duration::ZERO) + time);
        }
    }
    total
}

/// Time all cores spent not idle (nor waiting for I/O) since boot.
fn machine_busy_time() -> Option<Duration> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest
    // time is already inside user, so only the first eight count.
    let busy: u64 = values
        .iter()
        .take(8)
        .enumerate()
        .filter(|&(i, _)| i != 3 && i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(ticks(busy))
}

fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 1_000 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_values_name_a_process() {
        let watched = parse_watched("gateway=1234").unwrap();
        assert_eq!(
            (watched.name.as_str(), watched.process),
            ("gateway", Process::Id(1234))
        );
        let watched = parse_watched("postgres=postgres").unwrap();
        assert_eq!(watched.process, Process::Command("postgres".into()));
        assert!(parse_watched("gateway").is_err());
        assert!(parse_watched("gateway=").is_err());
        assert!(parse_watched("gateway=12ab").is_err());
        assert!(parse_watched("machine=1").is_err());
    }

    #[test]
    fn a_command_adds_up_its_processes() {
        let own = fs::read_to_string("/proc/self/comm").unwrap();
        let sampled = sample(&[Watched {
            name: "me".into(),
            process: Process::Command(own.trim_end().to_owned()),
        }]);
        assert!(
            sampled[1].1.is_some(),
            "this test's own process is found by its command"
        );
        let sampled = sample(&[Watched {
            name: "nobody".into(),
            process: Process::Command("no-such-command-here".into()),
        }]);
        assert_eq!(sampled[1].1, None);
    }

    #[test]
    fn cpu_used_is_the_difference_of_two_samples() {
        let before = vec![
            ("loadgen".to_owned(), Some(Duration::from_millis(100))),
            ("gateway".to_owned(), None),
        ];
        let after = vec![
            ("loadgen".to_owned(), Some(Duration::from_millis(350))),
            ("gateway".to_owned(), Some(Duration::from_millis(10))),
        ];
        assert_eq!(
            elapsed(&before, &after),
            vec![("loadgen".to_owned(), Duration::from_millis(250))]
        );
    }
}
