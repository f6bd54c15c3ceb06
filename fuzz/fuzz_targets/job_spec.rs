//! Feeds a job spec file (TOML) to the parser `jobspec::load` (`crates/jobspec`,
//! what `gridmint job submit` and the Python SDK call), every file it names reading as a few bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gridmint_fuzz::jobspec::load(text, &gridmint_fuzz::AnyFile, 1_000);
});
