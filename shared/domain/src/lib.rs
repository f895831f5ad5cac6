//! The heart of Switchboard: one message model for every channel, the routing
//! rules that decide between answering and escalating, and the ports (small
//! traits) through which the pipeline reaches stores, queues, senders and time.
//!
//! Nothing here knows about AWS, SQLite or HTTP clients; adapters live beside it.

pub mod experiments;
pub mod feedback;
pub mod intent;
pub mod jobs;
pub mod model;
pub mod ports;
pub mod privacy;
pub mod redact;
pub mod routing;
pub mod secret;
pub mod sentiment;
pub mod session;
pub mod sla;
pub mod telemetry;

pub use experiments::{Experiment, Experiments, VariantOverrides};
pub use jobs::*;
pub use model::*;
pub use ports::*;
pub use routing::*;
pub use secret::Secret;
pub use session::*;
pub use sla::{SlaPolicy, TierSla};
