//! End-to-end tests: `switchboard serve` driven from the outside.

mod cli;
mod durability;
mod email;
mod knowledge_base;
mod webhooks;
