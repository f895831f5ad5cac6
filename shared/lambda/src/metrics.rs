//! The pipeline's metrics (`switchboard_domain::telemetry`) as CloudWatch
//! embedded metric format (EMF) documents on stdout, which Lambda sends to the
//! function's log group and CloudWatch turns into metrics: no API call, no
//! grant. Every document names the namespace and the dimensions `function`
//! (set here) and `channel` or `queue` (the metric's label).
//!
//! Recording goes to `metrics_cloudwatch_embedded`'s collector; [`flush`]
//! writes what was recorded since the last flush, and the handlers call it at
//! the end of every invocation (a frozen or timed-out instance loses at most
//! that invocation's figures). Outside Lambda nothing installs the recorder,
//! so the local server records nothing and prints nothing.

use std::io::Write;
use std::sync::OnceLock;

use metrics::Unit;
use metrics_cloudwatch_embedded::{Builder, Collector};
use switchboard_domain::telemetry;

/// The environment variable naming the namespace (the template sets
/// `Switchboard/<stack name>`, so that two stacks in one account stay apart).
pub const NAMESPACE_VARIABLE: &str = "SWITCHBOARD_METRICS_NAMESPACE";
pub const DEFAULT_NAMESPACE: &str = "Switchboard";

/// Where flushed documents go: stdout on Lambda, a buffer in tests.
pub type Sink = Box<dyn Fn(&[u8]) + Send + Sync>;

struct Emf {
    collector: &'static Collector,
    sink: Sink,
}

static EMF: OnceLock<Emf> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics are already set up in this process")]
    AlreadySet,
    #[error("could not install the metrics recorder: {0}")]
    Recorder(String),
}

/// Installs the EMF recorder for the function `function` (a stable name such
/// as `conversation-worker`), in the namespace of [`NAMESPACE_VARIABLE`],
/// flushing to stdout. Call once, in `main`.
pub fn init(function: &str) -> Result<(), MetricsError> {
    let namespace =
        std::env::var(NAMESPACE_VARIABLE).unwrap_or_else(|_| DEFAULT_NAMESPACE.to_owned());
    init_with(
        function,
        &namespace,
        Box::new(|documents| {
            // One write for the whole flush, so log lines cannot interleave.
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(documents);
            let _ = stdout.flush();
        }),
    )
}

/// [`init`] with the namespace and the sink given (tests).
pub fn init_with(function: &str, namespace: &str, sink: Sink) -> Result<(), MetricsError> {
    if EMF.get().is_some() {
        return Err(MetricsError::AlreadySet);
    }
    let collector = Builder::new()
        .cloudwatch_namespace(namespace.to_owned())
        .with_dimension("function", function.to_owned())
        .init()
        .map_err(|error| MetricsError::Recorder(error.to_string()))?;
    for name in telemetry::COUNTERS {
        metrics::describe_counter!(name, Unit::Count, "");
    }
    metrics::describe_histogram!(telemetry::PROCESSING_MS, Unit::Milliseconds, "");
    // faq_confidence is a fraction, which EMF has no unit for: left unitless.
    EMF.set(Emf { collector, sink })
        .map_err(|_| MetricsError::AlreadySet)
}

/// Writes the metrics recorded since the last flush, one EMF document (a JSON
/// line) per dimension set. Does nothing when [`init`] was not called.
pub fn flush() {
    let Some(emf) = EMF.get() else {
        return;
    };
    let mut documents = Vec::new();
    match emf.collector.flush(&mut documents) {
        Ok(()) if !documents.is_empty() => (emf.sink)(&documents),
        Ok(()) => {}
        Err(error) => tracing::warn!(error = %error, "could not write the metrics"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::*;

    /// One flush after a message went through ingress and the worker: the
    /// documents CloudWatch reads (the specification's `_aws` member, one
    /// namespace, the dimension set, units) with the values at the top level.
    #[test]
    fn one_flush_is_a_document_per_dimension_set_in_the_embedded_metric_format() {
        let written = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = written.clone();
        init_with(
            "conversation-worker",
            "Switchboard/test",
            Box::new(move |documents| sink.lock().unwrap().extend_from_slice(documents)),
        )
        .unwrap();
        telemetry::message_received("telegram");
        telemetry::message_answered("telegram");
        telemetry::message_answered("telegram");
        telemetry::faq_confidence("telegram", 0.875);
        telemetry::processing_time("telegram", std::time::Duration::from_millis(42));
        telemetry::dead_lettered("inbound");
        flush();

        let text = String::from_utf8(written.lock().unwrap().clone()).unwrap();
        let documents: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(documents.len(), 2, "one per label set: {text}");
        let by_channel = documents
            .iter()
            .find(|d| d["channel"] == "telegram")
            .unwrap();
        let aws = &by_channel["_aws"];
        assert!(aws["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        let directive = &aws["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Switchboard/test");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["function", "channel"]])
        );
        let mut declared: Vec<(String, Value)> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["Name"].as_str().unwrap().to_owned(), m["Unit"].clone()))
            .collect();
        declared.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            declared,
            vec![
                ("faq_confidence".to_owned(), Value::Null),
                ("messages_answered".to_owned(), "Count".into()),
                ("messages_received".to_owned(), "Count".into()),
                ("processing_ms".to_owned(), "Milliseconds".into()),
            ]
        );
        assert_eq!(by_channel["function"], "conversation-worker");
        assert_eq!(by_channel["messages_received"], 1);
        assert_eq!(by_channel["messages_answered"], 2);
        assert_eq!(by_channel["faq_confidence"], serde_json::json!([0.875]));
        assert_eq!(by_channel["processing_ms"], serde_json::json!([42.0]));
        let by_queue = documents.iter().find(|d| d["queue"] == "inbound").unwrap();
        assert_eq!(
            by_queue["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["function", "queue"]])
        );
        assert_eq!(by_queue["dead_letters"], 1);

        // What was flushed is not written again.
        written.lock().unwrap().clear();
        flush();
        assert!(written.lock().unwrap().is_empty());
    }
}
