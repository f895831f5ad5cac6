//! `switchboard bench peer`: the product as one more peer of the official-SDK
//! harness (`../shared/perf-peers`, its README's "Peer protocol"). Each
//! subcommand prints one JSON object. A request goes through exactly what
//! ingress runs before it stores anything ([`admit`]: size limit, handshake,
//! verification, parsing), on the workload's own clock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use switchboard_channels::kit::{Need, build_request};
use switchboard_channels::{ChannelDeps, SharedChannel, WebhookRequest, registry};
use switchboard_pipeline::ingress::{Admitted, admit};

use super::{BenchError, memory};

/// The harness's six channels, for `cold all`.
const HARNESS_CHANNELS: [&str; 6] = ["slack", "line", "whatsapp", "telegram", "mailgun", "twilio"];

#[derive(Debug, clap::Subcommand)]
pub enum PeerCommand {
    /// Correctness, tamper and timed passes over `<workdir>/<channel>.jsonl`.
    Bench {
        /// A channel, or `channel:variant` (the product has no variants).
        spec: String,
        workdir: PathBuf,
        #[arg(default_value_t = 5)]
        reps: usize,
    },
    /// From exec to the first request of the channel handled (`all`: one of
    /// each of the harness's channels; `hello`: nothing handled).
    Cold { target: String, workdir: PathBuf },
    /// The harness's edge cases, accepted or not, in file order.
    Extra { workdir: PathBuf },
    /// Known-answer vectors: the harness does not ask the product for them.
    Vectors { dir: PathBuf },
}

/// One request of the workload, as the harness writes it.
#[derive(Debug, Deserialize)]
struct Line {
    channel: String,
    method: String,
    url: String,
    headers: BTreeMap<String, String>,
    body: String,
    secret: String,
    /// Unix seconds: the clock for replay windows.
    now: f64,
    #[serde(default)]
    tamper: Option<String>,
    #[serde(default)]
    case: Option<String>,
}

/// A request ready for admission (what the Lambda runtime hands over), with
/// its clock.
struct Prepared {
    request: WebhookRequest,
    now_ms: i64,
}

impl Line {
    fn prepare(&self) -> Result<Prepared, BenchError> {
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let request = build_request(
            &self.method,
            &self.url,
            &headers,
            self.body.clone().into_bytes(),
        )
        .map_err(BenchError::Workload)?;
        Ok(Prepared {
            request,
            now_ms: (self.now * 1000.0) as i64,
        })
    }
}

/// Runs one subcommand; `entry_ns` is the monotonic clock at `main`'s start.
pub fn run(command: &PeerCommand, entry_ns: u64) -> Result<Value, BenchError> {
    match command {
        PeerCommand::Bench {
            spec,
            workdir,
            reps,
        } => bench(spec, workdir, (*reps).max(1)),
        PeerCommand::Cold { target, workdir } => cold(target, workdir, entry_ns),
        PeerCommand::Extra { workdir } => extra(workdir),
        PeerCommand::Vectors { .. } => Ok(json!({ "unsupported": true })),
    }
}

fn unsupported() -> Value {
    json!({ "unsupported": true })
}

/// The channel with the workload's secret in every setting that verifies
/// requests (placeholders for sending).
fn channel_for(name: &str, secret: &str, deps: &ChannelDeps) -> Result<SharedChannel, BenchError> {
    let spec = registry::spec(name)
        .ok_or_else(|| BenchError::Workload(format!("unknown channel {name}")))?;
    let settings: Map<String, Value> = spec
        .settings
        .iter()
        .filter(|setting| setting.need == Need::Verify)
        .map(|setting| (setting.name.to_owned(), Value::String(secret.to_owned())))
        .collect();
    registry::build_for_check(name, &settings, deps)
        .map_err(|error| BenchError::Workload(switchboard_domain::error_chain(&error)))
}

fn read_lines(path: &Path) -> Result<Vec<Line>, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|source| BenchError::Read {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|error| {
                BenchError::Workload(format!("{} line {}: {error}", path.display(), index + 1))
            })
        })
        .collect()
}

/// Admission of one request: `None` when refused, else its messages.
fn handle(
    channel: &SharedChannel,
    prepared: &Prepared,
) -> Option<Vec<switchboard_domain::InboundMessage>> {
    match admit(channel.as_ref(), &prepared.request, prepared.now_ms) {
        Ok(Admitted::Messages { messages, .. }) => Some(messages),
        Ok(Admitted::Handshake(_)) => Some(Vec::new()),
        Err(_) => None,
    }
}

/// Verification alone, as the peers' verify-only passes.
fn verify_only(channel: &SharedChannel, prepared: &Prepared) -> bool {
    channel.verify(&prepared.request, prepared.now_ms).is_ok()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn bench(spec: &str, workdir: &Path, reps: usize) -> Result<Value, BenchError> {
    let (name, variant) = spec.split_once(':').unwrap_or((spec, ""));
    if !variant.is_empty() || registry::spec(name).is_none() {
        return Ok(unsupported());
    }
    let lines = read_lines(&workdir.join(format!("{name}.jsonl")))?;
    let Some(first) = lines.first() else {
        return Err(BenchError::Workload(format!("no requests for {name}")));
    };
    let channel = channel_for(name, &first.secret, &ChannelDeps::offline())?;
    let rss_loaded = memory().current_mb;
    let requests = lines
        .iter()
        .map(Line::prepare)
        .collect::<Result<Vec<_>, _>>()?;
    drop(lines);

    // Correctness pass (also the warm-up): every request accepted, the
    // fields the harness digests.
    let mut digest = Sha256::new();
    let (mut accepted, mut rejected, mut messages) = (0usize, 0usize, 0usize);
    for prepared in &requests {
        match handle(&channel, prepared) {
            None => rejected += 1,
            Some(out) => {
                accepted += 1;
                for message in out {
                    messages += 1;
                    digest.update(
                        format!(
                            "{}\u{1f}{}\u{1f}{}\u{1f}{}\n",
                            message.customer_id,
                            message.conversation_id,
                            message.provider_message_id,
                            message.text
                        )
                        .as_bytes(),
                    );
                }
            }
        }
    }
    let manifest: Value = std::fs::read(workdir.join("manifest.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let expected = &manifest["channels"][name];
    let digest_ok = expected["digest_sha256"].as_str()
        == Some(hex::encode(digest.finalize()).as_str())
        && expected["messages"].as_u64() == Some(messages as u64);

    // Tampered copies: every one must be refused.
    let tampered_lines =
        read_lines(&workdir.join(format!("{name}.tampered.jsonl"))).unwrap_or_default();
    let mut tamper: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut tamper_accepted = 0usize;
    for line in &tampered_lines {
        let kind = tamper
            .entry(line.tamper.clone().unwrap_or_default())
            .or_default();
        kind.0 += 1;
        let refused = match line.prepare() {
            Ok(prepared) => handle(&channel, &prepared).is_none(),
            Err(_) => true,
        };
        if refused {
            kind.1 += 1;
        } else {
            tamper_accepted += 1;
        }
    }

    // Timed passes, with verification-only passes interleaved.
    let (mut us, mut us_verify, mut timed_rejects, mut sink) =
        (Vec::new(), Vec::new(), 0usize, 0usize);
    let per_request =
        |elapsed: std::time::Duration| elapsed.as_secs_f64() * 1e6 / requests.len() as f64;
    for rep in 0..reps {
        let started = Instant::now();
        for prepared in &requests {
            match handle(&channel, prepared) {
                Some(out) => sink += out.len(),
                None => timed_rejects += 1,
            }
        }
        us.push(per_request(started.elapsed()));
        if rep < 2 {
            let started = Instant::now();
            for prepared in &requests {
                if !verify_only(&channel, prepared) {
                    timed_rejects += 1;
                }
            }
            us_verify.push(per_request(started.elapsed()));
        }
    }
    let med = median(&us);
    let tamper_map: Map<String, Value> = tamper
        .into_iter()
        .map(|(kind, (n, refused))| (kind, json!({ "n": n, "rejected": refused })))
        .collect();
    Ok(json!({
        "peer": "rust",
        "channel": name,
        "variant": null,
        "sdk": concat!("switchboard ", env!("CARGO_PKG_VERSION")),
        "n": requests.len(),
        "reps": reps,
        "us_per_req": med,
        "us_per_req_all": us,
        "us_min": us.iter().copied().fold(f64::INFINITY, f64::min),
        "us_max": us.iter().copied().fold(0.0, f64::max),
        "wall_s_per_rep": med * requests.len() as f64 / 1e6,
        "us_verify_only": median(&us_verify),
        "us_verify_only_all": us_verify,
        "rss_mb": memory().peak_mb,
        "rss_after_sdk_load_mb": rss_loaded,
        "accepted": accepted,
        "rejected": rejected,
        "timed_rejects": timed_rejects,
        "messages": messages,
        "digest_ok": digest_ok,
        "tampered": tampered_lines.len(),
        "tamper_accepted": tamper_accepted,
        "tamper": tamper_map,
        "sink": sink,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
    }))
}

fn cold(target: &str, workdir: &Path, entry_ns: u64) -> Result<Value, BenchError> {
    if target == "hello" {
        let now = super::monotonic_ns();
        return Ok(json!({
            "peer": "rust", "channel": "hello", "ok": true,
            "t_entry": entry_ns, "t_loaded": now, "t_done": now, "rss_mb": memory().peak_mb,
        }));
    }
    let names: Vec<&str> = if target == "all" {
        HARNESS_CHANNELS.to_vec()
    } else if registry::spec(target).is_some() {
        vec![target]
    } else {
        return Ok(unsupported());
    };
    // As the peers do: read each first request, build its channel ("load"),
    // then handle it.
    let deps = ChannelDeps::offline();
    let mut loaded = Vec::new();
    for name in &names {
        let path = workdir.join(format!("{name}.jsonl"));
        let line: Line = serde_json::from_str(&first_line(&path)?)
            .map_err(|error| BenchError::Workload(format!("{}: {error}", path.display())))?;
        loaded.push((channel_for(name, &line.secret, &deps)?, line));
    }
    let t_loaded = super::monotonic_ns();
    let mut ok = true;
    for (channel, line) in &loaded {
        let prepared = line.prepare()?;
        ok &= handle(channel, &prepared).is_some_and(|messages| !messages.is_empty());
    }
    let t_done = super::monotonic_ns();
    Ok(json!({
        "peer": "rust", "channel": target, "ok": ok,
        "t_entry": entry_ns, "t_loaded": t_loaded, "t_done": t_done, "rss_mb": memory().peak_mb,
    }))
}

/// The first line of a workload file, read alone: reading the whole file
/// (megabytes) was most of the cold start and of its peak RSS.
fn first_line(path: &Path) -> Result<String, BenchError> {
    use std::io::BufRead as _;
    let read = |source| BenchError::Read {
        path: path.to_owned(),
        source,
    };
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(read)?);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(read)?;
    Ok(line)
}

fn extra(workdir: &Path) -> Result<Value, BenchError> {
    let lines = read_lines(&workdir.join("extra.jsonl"))?;
    let deps = ChannelDeps::offline();
    let mut results = Vec::new();
    for line in &lines {
        let accepted = registry::spec(&line.channel).is_some()
            && match (
                channel_for(&line.channel, &line.secret, &deps),
                line.prepare(),
            ) {
                (Ok(channel), Ok(prepared)) => handle(&channel, &prepared).is_some(),
                _ => false,
            };
        results.push(json!({ "case": line.case, "channel": line.channel, "accepted": accepted }));
    }
    Ok(json!({ "peer": "rust", "results": results }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn unknown_channels_and_variants_are_unsupported() {
        let dir = std::env::temp_dir();
        let out = bench("slack:bolt-app", &dir, 1).unwrap();
        assert_eq!(out, json!({ "unsupported": true }));
        let out = bench("carrier-pigeon", &dir, 1).unwrap();
        assert_eq!(out, json!({ "unsupported": true }));
    }
}
