//! `ringmq-loadgen`: the command line. Everything else lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(ringmq_loadgen::cli::main(std::env::args().skip(1)))
}
