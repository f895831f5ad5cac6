//! The `switchboard` command: the local server on the embedded database (the
//! same router and pipeline as on AWS, workers in-process), and tools for
//! channels, the knowledge base and the queues.

pub mod bench;
pub mod check;
mod dev_provider;
pub mod output;
pub mod queues;
pub mod reload;
pub mod runner;
pub mod server;
pub mod simulate;
pub mod tokens;
