//! The standard process metrics (`process_cpu_seconds_total`, memory, file descriptors, start
//! time), read from `/proc/self` at scrape time.
//!
//! They carry the names every Prometheus client library gives them, without the `palisade_`
//! prefix, so that stock dashboards and alerts work unchanged. [`ProcessCollector`] is a
//! registry collector: nothing is sampled between scrapes, and a file that cannot be read (a
//! hardened `/proc`, say) leaves its metrics off the page rather than failing the scrape. The
//! module exists on Linux only; elsewhere the metrics are simply absent.

use std::fmt;
use std::fs;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::names;

/// Clock ticks per second of the times in `/proc/<pid>/stat`: the kernel reports them in
/// `USER_HZ`, which is 100 on every Linux architecture (it is part of the user-space ABI, not
/// the kernel's configured `HZ`). Reading `sysconf(_SC_CLK_TCK)` would need `unsafe`.
const TICKS_PER_SECOND: f64 = 100.0;

/// Renders the process metrics on each scrape; register it with
/// [`Registry::register_collector`](prometheus_client::registry::Registry::register_collector).
#[derive(Debug, Default)]
pub(super) struct ProcessCollector;

/// One reading of the process's vital signs; each field is `None` when its source could not
/// be read or parsed.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

impl Sample {
    fn read() -> Sample {
        let stat = fs::read_to_string("/proc/self/stat").ok();
        let stat = stat.as_deref().and_then(Stat::parse);
        let boot_time = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        let status = fs::read_to_string("/proc/self/status").ok();
        Sample {
            cpu_seconds: stat.map(|s| (s.utime + s.stime) as f64 / TICKS_PER_SECOND),
            resident_bytes: status.as_deref().and_then(|s| status_kib(s, "VmRSS:")),
            virtual_bytes: stat.map(|s| s.vsize),
            open_fds: fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|s| max_open_files(&s)),
            start_time_seconds: stat
                .zip(boot_time)
                .map(|(s, boot)| boot as f64 + s.starttime as f64 / TICKS_PER_SECOND),
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let sample = Sample::read();
        if let Some(v) = sample.cpu_seconds {
            let e = encoder.encode_descriptor(
                names::standard::PROCESS_CPU_SECONDS,
                "Total user and system CPU time spent, in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(v).encode(e)?;
        }
        let gauges = [
            (
                names::standard::PROCESS_RESIDENT_MEMORY_BYTES,
                "Resident memory size, in bytes",
                sample.resident_bytes.map(|v| v as f64),
            ),
            (
                names::standard::PROCESS_VIRTUAL_MEMORY_BYTES,
                "Virtual memory size, in bytes",
                sample.virtual_bytes.map(|v| v as f64),
            ),
            (
                names::standard::PROCESS_OPEN_FDS,
                "Open file descriptors",
                sample.open_fds.map(|v| v as f64),
            ),
            (
                names::standard::PROCESS_MAX_FDS,
                "Limit on open file descriptors (the soft RLIMIT_NOFILE)",
                sample.max_fds.map(|v| v as f64),
            ),
            (
                names::standard::PROCESS_START_TIME_SECONDS,
                "Start time of the process since the Unix epoch, in seconds",
                sample.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let e = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(e)?;
            }
        }
        Ok(())
    }
}

/// The fields of `/proc/<pid>/stat` the metrics need.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
    vsize: u64,
}

impl Stat {
    /// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may hold
    /// spaces and `)`, so fields are counted from the last `)`.
    fn parse(stat: &str) -> Option<Stat> {
        let after_comm = &stat[stat.rfind(')')? + 1..];
        // Field 3 (state) is the first after the command name; `proc(5)` numbers from 1.
        let fields: Vec<&str> = after_comm.split_ascii_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            starttime: field(22)?,
            vsize: field(23)?,
        })
    }
}

/// The boot time (`btime`, Unix seconds) from `/proc/stat`.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// A `kB` line of `/proc/<pid>/status` such as `VmRSS:    1234 kB`, in bytes.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find_map(|line| line.strip_prefix(key))?;
    let kib: u64 = line.split_ascii_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of `Max open files` in `/proc/<pid>/limits` (absent when `unlimited`).
fn max_open_files(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    line.split_ascii_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (pali sade) (x)) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    150 25 0 0 20 0 3 0 987654 123456789 2048 18446744073709551615";
        assert_eq!(
            Stat::parse(stat),
            Some(Stat {
                utime: 150,
                stime: 25,
                starttime: 987654,
                vsize: 123456789
            })
        );
        assert_eq!(Stat::parse("4242 (cut"), None);
        assert_eq!(Stat::parse("4242 (short) S 1 2"), None);
    }

    #[test]
    fn proc_files_are_read_by_key() {
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        let status = "Name:\tpalisade\nVmSize:\t  20000 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1234 * 1024));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);
    }

    #[test]
    fn this_process_reads_plausibly() {
        let sample = Sample::read();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = sample.start_time_seconds.expect("start time");
        assert!(start > now - 24.0 * 3600.0 && start <= now + 1.0, "{start}");
        assert!(sample.cpu_seconds.expect("cpu") >= 0.0);
        let rss = sample.resident_bytes.expect("rss");
        assert!(rss > 1024 * 1024, "{rss}");
        assert!(sample.virtual_bytes.expect("vsize") >= rss);
        let open = sample.open_fds.expect("open fds");
        assert!(open >= 3 && open <= sample.max_fds.expect("max fds"));
    }
}
