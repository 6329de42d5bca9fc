//! Feeds arbitrary bytes to `Packet::decode` and checks the decoder's invariants
//! (see `ringmq_fuzz::check`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringmq_fuzz::check(data);
});
