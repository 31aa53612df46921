#![no_main]
//! Any text through the money parser: no panic, and what is accepted round-trips canonically.
libfuzzer_sys::fuzz_target!(|s: &str| shared::roundtrip::money(s));
