//! Feeds WGSL text to `gpu::admit` (rules 23: what a coordinator checks a GPU job's shader with
//! at submission, and a provider before it runs one): naga's parser and validator, the network's
//! rules, the metering pass and its second validation. Any panic is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gpu::admit(text, "main");
});
