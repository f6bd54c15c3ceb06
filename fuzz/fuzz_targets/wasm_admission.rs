//! Feeds an uploaded module to the WebAssembly validator of admission's crate version
//! (`wasmparser`, which `sandbox::admit` also parses a module's shape with). Admission itself
//! validates with wasmtime's own validator under the sandbox's features, which links wasmtime
//! and is left out of this target (an ASan build of wasmtime would double the fuzz build).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wasmparser::validate(data);
});
