//! End-to-end tests: `switchboard serve` driven from the outside.

mod cjk;
mod cli;
mod defects;
mod durability;
mod email;
mod webhooks;
