//! Replays the decoder's fuzz corpus (`fuzz/corpus/decode/`) through the fuzz
//! target's invariants, so `cargo test` guards every input the fuzzer found
//! interesting without nightly or libFuzzer.

use std::collections::HashSet;
use std::fs;
use std::panic;
use std::path::Path;

use ringmq::protocol::{PacketType, ProtocolVersion};

// The same checks the `decode` fuzz target runs, shared as source: this test does
// not depend on the fuzz crate, which needs nightly and libFuzzer to build.
#[path = "../fuzz/src/lib.rs"]
mod invariants;

#[test]
fn corpus_upholds_decoder_invariants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut seen = HashSet::new();
    let mut files = 0;
    let mut failed = Vec::new();
    for entry in entries {
        let path = entry.expect("read corpus directory").path();
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        files += 1;
        match panic::catch_unwind(|| invariants::check(&data)) {
            Ok(decoded) => seen.extend(decoded),
            Err(_) => failed.push(path),
        }
    }
    assert!(files > 0, "{} holds no corpus files", dir.display());
    assert!(failed.is_empty(), "invariants broken by {failed:#?}");

    // A corpus that decodes to nothing would pass the loop above without testing
    // anything: require every packet type in every version it exists in.
    let versions = [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ];
    for version in versions {
        for kind in (1..=15).map(|t| PacketType::from_u8(t).expect("packet type")) {
            if kind == PacketType::Auth && !version.is_v5() {
                continue;
            }
            assert!(
                seen.contains(&(version, kind)),
                "no corpus file decodes a {kind:?} packet in {version:?}"
            );
        }
    }
}
