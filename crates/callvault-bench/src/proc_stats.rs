//! What the kernel says a process has used: CPU time (`/proc/PID/stat`), resident memory
//! (`/proc/PID/status`) and writes (`/proc/PID/io`). Read at the edges of a measurement
//! window, never per packet.

use std::time::Duration;

/// `USER_HZ`: the unit of the times in `/proc/PID/stat`. It is part of the kernel's ABI (100
/// on every Linux architecture callvault runs on), unlike the kernel's internal `HZ`.
const USER_HZ: u64 = 100;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// User + system time, in `USER_HZ` ticks.
    pub cpu_ticks: u64,
    /// `VmRSS`: resident now, in KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most ever resident, in KiB.
    pub peak_rss_kib: u64,
    /// `wchar`: bytes passed to write-like calls (files, sockets, pipes).
    pub write_bytes: u64,
    /// `syscw`: write-like calls.
    pub write_calls: u64,
}

impl Sample {
    /// Reads process `pid`; fields the kernel does not show (e.g. `/proc/PID/io` of another
    /// user's process) stay 0.
    pub fn read(pid: u32) -> std::io::Result<Sample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        Ok(Sample {
            cpu_ticks: cpu_ticks(&stat).unwrap_or(0),
            rss_kib: field(&status, "VmRSS:").unwrap_or(0),
            peak_rss_kib: field(&status, "VmHWM:").unwrap_or(0),
            write_bytes: field(&io, "wchar:").unwrap_or(0),
            write_calls: field(&io, "syscw:").unwrap_or(0),
        })
    }

    /// The CPU time spent between `earlier` and `self`.
    pub fn cpu_since(&self, earlier: &Sample) -> Duration {
        let ticks = self.cpu_ticks.saturating_sub(earlier.cpu_ticks);
        Duration::from_micros(ticks * (1_000_000 / USER_HZ))
    }
}

/// utime + stime: fields 14 and 15 of `/proc/PID/stat`, counted after the command name,
/// which is in parentheses and may itself hold spaces and parentheses.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After ")" come field 3 (state) onwards: utime is field 14, the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The number after `name` in a `Name: value [kB]` listing.
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_utime_plus_stime_even_with_a_name_holding_parentheses() {
        let stat = "4242 (cv (x) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1 1 1";
        assert_eq!(cpu_ticks(stat), Some(325));
    }

    #[test]
    fn status_and_io_fields_are_read_by_name() {
        let status = "Name:\tcallvault\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(field(status, "VmRSS:"), Some(10_240));
        assert_eq!(field(status, "VmHWM:"), Some(20_480));
        assert_eq!(field("wchar: 77\nsyscw: 5\n", "syscw:"), Some(5));
        assert_eq!(field(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let sample = Sample::read(std::process::id()).unwrap();
        assert!(sample.rss_kib > 0);
        assert!(sample.peak_rss_kib >= sample.rss_kib);
    }
}
