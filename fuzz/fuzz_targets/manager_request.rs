//! Fuzzes the manager's request decoder and dispatcher:
//! `cargo +nightly fuzz run manager_request` (from the repository root).
//! A bounded run of the same function is part of the test suite
//! (`manager::server::tests`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    multiproc::manager::fuzz_request(data);
});
