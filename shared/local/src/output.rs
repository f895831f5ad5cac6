//! Standard output for the commands' results.

use std::io::{self, Write};

/// Standard output, for `writeln!(Stdout, ..)?` where `println!` would panic
/// when the reader went away (`switchboard ... | head`): Rust ignores SIGPIPE,
/// so the write fails instead. That ends the command quietly with status 141,
/// as SIGPIPE would; other write errors are returned. `serve` does not use it.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        quiet_on_closed_pipe(io::stdout().write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        quiet_on_closed_pipe(io::stdout().flush())
    }
}

/// The exit status of a process killed by SIGPIPE, as shells report it.
const CLOSED_PIPE_STATUS: i32 = 128 + 13;

fn quiet_on_closed_pipe<T>(result: io::Result<T>) -> io::Result<T> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => {
            std::process::exit(CLOSED_PIPE_STATUS)
        }
        other => other,
    }
}
