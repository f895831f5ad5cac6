//! End-to-end tests: `switchboard serve` driven from the outside.

mod cli;
mod defects;
mod durability;
mod email;
mod webhooks;
mod world;
