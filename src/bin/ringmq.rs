//! The `ringmq` command line.

use std::process::ExitCode;

const USAGE: &str = "\
ringmq: a sharded, thread-per-core MQTT 3.1/3.1.1/5.0 broker

Usage: ringmq [OPTIONS]

Options:
  -h, --help       Print this help
  -V, --version    Print the version

The broker itself lands with the sharded core; this build carries the MQTT codec.";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None | Some("-h") | Some("--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("-V") | Some("--version") => {
            println!("ringmq {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("ringmq: unknown argument '{other}'; see ringmq --help");
            ExitCode::from(2)
        }
    }
}
