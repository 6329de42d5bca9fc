//! The `ringmq` binary's configuration surface, run as a user would: `check-config`
//! on the shipped files and on broken ones, `--help`, `doctor`, and a broker started
//! from a configuration file on 127.0.0.1:0.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use ringmq::config::allowed_cpus;

const BIN: &str = env!("CARGO_BIN_EXE_ringmq");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn ringmq(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("ringmq runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A configuration file of this test run, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ringmq-config-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs check-config on `file` and returns its output as text, asserting success.
fn check_ok(file: &str, extra: &[&str]) -> String {
    let mut args = vec!["check-config", file];
    args.extend_from_slice(extra);
    let out = ringmq(&args);
    assert!(
        out.status.success(),
        "check-config {file} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn check_config_prints_every_key_of_the_example() {
    let example = repo("tuning/ringmq.toml");
    let printed = check_ok(example.to_str().unwrap(), &[]);
    for section in [
        "[[listener]]",
        "[runtime]",
        "[limits]",
        "[mqtt]",
        "[log]",
        "[metrics]",
        "[sys]",
        "[shutdown]",
    ] {
        assert!(printed.contains(section), "{section} missing:\n{printed}");
    }
    // Every key of the documented example appears in the effective configuration.
    let keys = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with('#') && l.contains('='))
            .map(|l| l.split('=').next().unwrap().trim().to_string())
            .collect()
    };
    let source = std::fs::read_to_string(&example).unwrap();
    assert_eq!(keys(&printed), keys(&source));
    // "all" cores are printed as the CPUs they are on this host.
    let cpus = ringmq::config::format_cpu_list(&allowed_cpus());
    assert!(
        printed.contains(&format!("cores = \"{cpus}\"")),
        "{printed}"
    );
    // The output is itself a configuration that reads back the same.
    let again = TempFile::new(&printed);
    let reprinted = check_ok(again.path(), &[]);
    assert_eq!(
        reprinted.lines().skip(1).collect::<Vec<_>>(),
        printed.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn check_config_accepts_the_profiles() {
    let small = check_ok(
        repo("tuning/profiles/small-host.toml").to_str().unwrap(),
        &[],
    );
    assert!(
        small.contains("max_connections_per_shard = 50000"),
        "{small}"
    );
    assert!(small.contains("listen = \"127.0.0.1:9100\""), "{small}");

    let many_core = repo("tuning/profiles/many-core.toml");
    let many_core = many_core.to_str().unwrap();
    // Its CPUs exist on few test hosts: a flag overrides them, and the rest is valid.
    let first = allowed_cpus()[0].to_string();
    let printed = check_ok(many_core, &["--cores", &first]);
    assert!(
        printed.contains(&format!("cores = \"{first}\"")),
        "{printed}"
    );
    assert!(printed.contains("ring_depth = 512"), "{printed}");
    assert!(printed.contains("timeout = \"30s\""), "{printed}");
    // Without the override, a host lacking those CPUs is told which key and line.
    let wanted = ringmq::config::parse_cpu_list("2-15,18-31,34-47,50-63").unwrap();
    if !wanted.iter().all(|c| allowed_cpus().contains(c)) {
        let out = ringmq(&["check-config", many_core]);
        assert_eq!(out.status.code(), Some(2));
        let line = std::fs::read_to_string(many_core)
            .unwrap()
            .lines()
            .position(|l| l.starts_with("cores ="))
            .unwrap()
            + 1;
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("many-core.toml:{line}:1: runtime.cores: CPU ")),
            "{err}"
        );
        assert!(err.contains("affinity mask"), "{err}");
    }
}

#[test]
fn bad_files_exit_2_naming_the_key_and_line() {
    for (contents, location, problem) in [
        (
            "[limits]\nmax_inflight = 8\nmax_infligt = 9\n",
            ":3:1: limits.max_infligt:",
            "unknown key",
        ),
        (
            "[runtime]\nring_depth = \"deep\"\n",
            ":2:14: runtime.ring_depth:",
            "invalid type",
        ),
        (
            "# bounds\n[limits]\nconnect_timeout = \"soon\"\n",
            ":3:19: limits.connect_timeout:",
            "not a duration",
        ),
        (
            "[mqtt]\nshared_strategy = \"random\"\n",
            ":2:19: mqtt.shared_strategy:",
            "unknown value",
        ),
        (
            "[runtime]\ncores = \"0-1,x\"\n",
            ":2:9: runtime.cores:",
            "not a CPU list",
        ),
        (
            "[runtime]\n\ncores = [100000]\n",
            ":3:1: runtime.cores:",
            "CPU 100000 does not exist or is not in this process's affinity mask",
        ),
        (
            "[limits]\nmax_packet_size = \"1GiB\"\n",
            ":2:1: limits.max_packet_size:",
            "at most 268435460",
        ),
    ] {
        let file = TempFile::new(contents);
        let out = ringmq(&["check-config", file.path()]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{contents}: {err}");
        assert!(out.stdout.is_empty());
        assert!(
            err.starts_with(&format!("ringmq: {}{location}", file.path())),
            "{contents}: {err}"
        );
        assert!(err.contains(problem), "{contents}: {err}");
        assert_eq!(err.lines().count(), 1, "one message: {err}");
        // Starting the broker with it fails the same way, before binding anything.
        let run = ringmq(&["--config", file.path()]);
        assert_eq!(run.status.code(), Some(2));
        assert_eq!(text(&run.stderr), err);
    }
    let out = ringmq(&["check-config", "/nonexistent/ringmq.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/ringmq.toml: cannot read"));
}

#[test]
fn flags_override_the_file_and_are_named_in_errors() {
    let file = TempFile::new("[runtime]\nio_memory = \"2MiB\"\n[log]\nlevel = \"debug\"\n");
    let printed = check_ok(
        file.path(),
        &[
            "--io-memory",
            "512KiB",
            "--metrics",
            "127.0.0.1:9200",
            "--log-level",
            "warn",
            "--listen",
            "127.0.0.1:1999",
        ],
    );
    assert!(printed.contains("io_memory = \"512KiB\""), "{printed}");
    assert!(printed.contains("listen = \"127.0.0.1:9200\""), "{printed}");
    assert!(printed.contains("level = \"warn\""), "{printed}");
    assert!(
        printed.contains("address = \"127.0.0.1:1999\""),
        "{printed}"
    );
    let out = ringmq(&["check-config", file.path(), "--io-memory", "1KiB"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "ringmq: --io-memory: must be at least 64KiB"
    );
}

#[test]
fn help_lists_the_commands_and_flags() {
    let out = ringmq(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for item in [
        "check-config FILE",
        "doctor",
        "--config FILE",
        "--listen",
        "--cores",
        "--shards",
        "--io-memory",
        "--metrics ADDR",
        "--log-level LEVEL",
        "RUST_LOG",
    ] {
        assert!(help.contains(item), "{item} missing:\n{help}");
    }
    let out = ringmq(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("'--frobnicate'"));
}

#[test]
fn doctor_reports_every_check() {
    let small = repo("tuning/profiles/small-host.toml");
    for args in [
        vec!["doctor"],
        vec!["doctor", "--config", small.to_str().unwrap()],
    ] {
        let out = ringmq(&args);
        let report = text(&out.stdout);
        let code = out.status.code();
        assert!(matches!(code, Some(0 | 1)), "{args:?}: {code:?} {report}");
        assert!(report.starts_with("ringmq doctor: this host against "));
        for check in [
            "kernel:",
            "io_uring:",
            "open files (RLIMIT_NOFILE):",
            "locked memory (RLIMIT_MEMLOCK):",
            "net.core.somaxconn:",
            "net.ipv4.tcp_max_syn_backlog:",
            "net.ipv4.ip_local_port_range:",
            "fs.nr_open:",
            "fs.file-max:",
            "net.ipv4.tcp_mem:",
            "tcp_rmem / tcp_wmem:",
            "CPUs:",
            "NIC interrupts:",
        ] {
            assert!(report.contains(check), "{check} missing:\n{report}");
        }
        // The exit status says whether anything should change, and so does the text.
        let changes = report.lines().filter(|l| l.starts_with("CHANGE")).count();
        assert_eq!(code == Some(1), changes > 0, "{report}");
    }
    // Doctor checks against the configuration, so a broken one is an error.
    let bad = TempFile::new("[limits]\nmax_inflight = -1\n");
    let out = ringmq(&["doctor", "--config", bad.path()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(":2:16: limits.max_inflight:"));
}

/// Starts the broker from a file with `extra_env`, waits for its placement line,
/// stops it with SIGTERM and returns that line.
fn start_and_stop(config: &str, extra_env: &[(&str, &str)]) -> String {
    let file = TempFile::new(config);
    let mut child = Command::new(BIN)
        .args(["--config", file.path()])
        .env_remove("RUST_LOG")
        .envs(extra_env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringmq starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let placement = loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if line.contains("placement:") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    // SAFETY: kill only sends a signal to the child we started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let placement = placement.unwrap_or_else(|| panic!("no placement line in {seen:?}"));
    assert!(status.success(), "{status}");
    placement
}

#[test]
fn the_broker_runs_from_a_file_and_logs_its_placement() {
    let cpu = allowed_cpus()[0];
    let config = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[runtime]\ncores = [{cpu}]\nio_memory = \"256KiB\"\n[log]\nlevel = \"info\"\n"
    );
    let line = start_and_stop(&config, &[]);
    assert!(line.contains(&format!("shard 0 -> CPU {cpu}")), "{line}");
    // RUST_LOG wins over log.level.
    let quiet = config.replace("level = \"info\"", "level = \"error\"");
    let line = start_and_stop(&quiet, &[("RUST_LOG", "info")]);
    assert!(line.contains(&format!("shard 0 -> CPU {cpu}")), "{line}");
}
