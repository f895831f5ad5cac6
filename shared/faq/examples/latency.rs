//! Compile time, load time, size, query latency percentiles and peak memory of the
//! matcher on the synthetic 10,000 × 10 knowledge base of the criterion benchmark.
//!
//! `cargo run --release -p switchboard-faq --example latency`
//!
//! Queries run one at a time on the calling thread (single-core latency). Peak
//! memory is the process's high-water mark (`VmHWM` in `/proc/self/status`, Linux);
//! the cold start (read the compiled file, load it, answer one query) runs in a
//! fresh process so that its peak memory is its own.

use std::hint::black_box;
use std::time::{Duration, Instant};

use switchboard_faq::Matcher;

#[path = "../benches/synthetic/mod.rs"]
mod synthetic;

/// Each query is ranked this many times; every run counts towards the percentiles.
const ROUNDS: usize = 5;
/// The knowledge base is compiled this many times.
const COMPILES: usize = 3;

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Load the compiled matcher in a fresh process (this program, run with
/// `--load FILE`), as a cold-starting function would: its load time and peak memory.
fn cold_start(bytes: &[u8]) -> Option<String> {
    let path = std::env::temp_dir().join(format!("faq-latency-{}.bin", std::process::id()));
    std::fs::write(&path, bytes).ok()?;
    let output = std::process::Command::new(std::env::current_exe().ok()?)
        .arg("--load")
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    Some(
        String::from_utf8_lossy(&output.ok()?.stdout)
            .trim()
            .to_string(),
    )
}

fn load_only(path: &str) {
    let started = Instant::now();
    let bytes = std::fs::read(path).expect("compiled matcher file");
    let read = started.elapsed();
    let matcher = Matcher::from_bytes(&bytes).expect("compiled matcher");
    drop(bytes);
    let load = started.elapsed() - read;
    let started = Instant::now();
    black_box(matcher.rank("where is my parcel", 10));
    let first = started.elapsed();
    println!(
        "read {:.1} ms, load {:.1} ms, first query {:.2} ms, peak memory {:.0} MB",
        read.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        peak_rss_mb().unwrap_or(f64::NAN)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "--load" {
        return load_only(&args[2]);
    }
    let (kb, queries) = synthetic::synthetic_kb();
    let before = peak_rss_mb();
    // compile a few times: the machine may be shared, the best run is the work itself
    let mut compiles = Vec::new();
    let mut built = None;
    for _ in 0..COMPILES {
        let started = Instant::now();
        let matcher = Matcher::build(&kb);
        compiles.push(started.elapsed());
        if let Some(previous) = &built {
            assert_eq!(previous, &matcher, "compiling is deterministic");
        }
        built = Some(matcher);
    }
    let matcher = built.expect("compiled at least once");
    compiles.sort();
    let compile = compiles[0];
    let after_compile = peak_rss_mb();
    let bytes = matcher.to_bytes();
    let started = Instant::now();
    let loaded = Matcher::from_bytes(&bytes).expect("round trip");
    let load = started.elapsed();
    drop(loaded);
    let cold = cold_start(&bytes);

    // warm up once, then time every query on its own
    for q in &queries {
        black_box(matcher.rank(q, 10));
    }
    let mut times: Vec<Duration> = Vec::with_capacity(queries.len() * ROUNDS);
    for _ in 0..ROUNDS {
        for q in &queries {
            let t = Instant::now();
            black_box(matcher.rank(q, 10));
            times.push(t.elapsed());
        }
    }
    // each query's fastest run: the work itself, without the scheduler's interruptions
    let mut fastest: Vec<Duration> = (0..queries.len())
        .map(|q| {
            (0..ROUNDS)
                .map(|r| times[r * queries.len() + q])
                .min()
                .unwrap_or_default()
        })
        .collect();
    fastest.sort();
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let hits = queries
        .iter()
        .enumerate()
        .filter(|(i, q)| matcher.rank(q, 1).top().is_some_and(|t| t.entry == i * 10))
        .count();
    let mb = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.0} MB"));
    println!(
        "synthetic KB {} x {}: compile {:.0} ms (best of {COMPILES}; all {:?} ms), load {:.1} ms, \
         compiled size {:.1} MB",
        synthetic::ENTRIES,
        synthetic::PHRASINGS,
        compile.as_secs_f64() * 1e3,
        compiles.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        load.as_secs_f64() * 1e3,
        bytes.len() as f64 / 1e6,
    );
    println!(
        "query ({} timings): p50 {:.0} us, p99 {:.0} us, max {:.0} us; P@1 {:.3}",
        times.len(),
        us(pct(0.50)),
        us(pct(0.99)),
        us(times[times.len() - 1]),
        hits as f64 / queries.len() as f64,
    );
    let fast = |p: f64| fastest[((fastest.len() as f64 * p) as usize).min(fastest.len() - 1)];
    println!(
        "query, fastest of {ROUNDS} runs each: p50 {:.0} us, p99 {:.0} us, max {:.0} us",
        us(fast(0.50)),
        us(fast(0.99)),
        us(fastest[fastest.len() - 1]),
    );
    println!(
        "peak memory (VmHWM): {} after generating the KB, {} after compiling, {} at the end",
        mb(before),
        mb(after_compile),
        mb(peak_rss_mb()),
    );
    println!(
        "cold start in a fresh process: {}",
        cold.unwrap_or_else(|| "not measured".into()),
    );
}
