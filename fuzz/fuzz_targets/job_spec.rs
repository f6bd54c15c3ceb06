//! Feeds a job spec file (TOML) to the CLI's parser `jobspec::load` (`crates/cli/src/jobspec.rs`,
//! compiled in; what `gridmint job submit` calls), every file it names reading as a few bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = gridmint_fuzz::jobspec::load(text, &gridmint_fuzz::AnyFile, 1_000);
});
