//! Feeds an uploaded module to the coordinator's module admission: `routes::admit_module`
//! refuses a job whose module is not `wasmparser::validate` (same crate version, default
//! features), which this calls on the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wasmparser::validate(data);
});
