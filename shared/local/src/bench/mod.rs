//! `switchboard bench`: figures, printed as JSON, never asserted by tests.
//!
//! * `bench peer ...`: the product as a peer of the official-SDK harness.
//! * `bench pipeline`: the whole local pipeline in one process.

pub mod peer;
pub mod pipeline;

use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Speak the peer protocol of the official-SDK harness (../shared/perf-peers).
    #[command(subcommand)]
    Peer(peer::PeerCommand),
    /// Ingress, queue, worker and replies in one process on a temporary
    /// embedded database: messages/s, accept-to-reply p50/p99, peak RSS.
    Pipeline(pipeline::PipelineArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("workload: {0}")]
    Workload(String),
    #[error("pipeline: {0}")]
    Pipeline(String),
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock the harness reads too.
pub fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0)
}

/// This process's resident memory, from `/proc/self/status` (0 elsewhere).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub current_mb: f64,
    pub peak_mb: f64,
}

pub fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map_or(0.0, |kib| kib / 1024.0)
    };
    Memory {
        current_mb: field("VmRSS:"),
        peak_mb: field("VmHWM:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_the_monotonic_clock_are_read() {
        let memory = memory();
        assert!(memory.current_mb > 0.0 && memory.peak_mb >= memory.current_mb);
        let (a, b) = (monotonic_ns(), monotonic_ns());
        assert!(a > 0 && b >= a);
    }
}
