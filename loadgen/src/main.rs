//! `ringmq-loadgen`: the load generator bundled with ringmq. Its scenarios land in
//! their own issue; this build answers `--help` and `--version`.

use std::process::ExitCode;

const USAGE: &str = "\
ringmq-loadgen: the load generator bundled with ringmq

Usage: ringmq-loadgen [OPTIONS]

Options:
  -h, --help       Print this help
  -V, --version    Print the version";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None | Some("-h") | Some("--help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some("-V") | Some("--version") => {
            println!("ringmq-loadgen {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("ringmq-loadgen: unknown argument '{other}'; see ringmq-loadgen --help");
            ExitCode::from(2)
        }
    }
}
