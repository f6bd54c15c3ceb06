//! Feeds shader bytes to `gpu::admit_bytes` (rules 23: what a coordinator checks a GPU job's
//! shader with at submission, and a provider before it runs one): the language detected from
//! the bytes (WGSL, GLSL or SPIR-V), naga's front end and validator behind the bounds that keep
//! its recursion off the stack's end, the network's rules, the metering pass and its second
//! validation. Any panic or abort is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gpu::admit_bytes(data, "main");
});
