//! The local process: the same pipeline as on AWS, on the embedded database,
//! with the workers in-process, plus the `switchboard` command's tools.

pub mod app;
pub mod check;
pub mod config;
pub mod dev;
pub mod reload;
pub mod runner;
pub mod server;
pub mod simulate;
