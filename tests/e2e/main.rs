//! End-to-end tests: `switchboard serve` driven from the outside.

mod access;
mod acknowledgements;
mod agents;
mod bench;
mod care;
mod cjk;
mod cli;
mod cli_input;
mod console;
mod defects;
mod durability;
mod email;
mod faults;
mod feedback;
mod insight;
mod knowledge_base;
mod privacy;
mod webhooks;
mod world;
