//! Scores messages given as arguments, or one per line on standard input.
//!
//! `cargo run -p switchboard-domain --example sentiment -- "not bad at all" "太差了！！"`

use std::io::BufRead;

use switchboard_domain::sentiment::{Analysis, CLEARLY_NEGATIVE};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let lines: Vec<String> = if args.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .collect()
    } else {
        args
    };
    for line in lines {
        let analysis = Analysis::of(&line);
        let flag = if analysis.score <= CLEARLY_NEGATIVE {
            "CLEARLY NEGATIVE"
        } else {
            ""
        };
        println!(
            "{:+.3}\t{:+.2}\t{line}\t{flag}",
            analysis.score, analysis.raw
        );
    }
}
