//! Feeds the stored bytes of a state snapshot to `store::decode_snapshot` (the migration from
//! every older state format, then postcard): the first byte picks the format (1 to 19), the
//! rest is the snapshot. A decoded state is hashed, as recovery does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((format, bytes)) = data.split_first() else {
        return;
    };
    let format = u32::from(*format % 19) + 1;
    if let Ok(state) = store::decode_snapshot(bytes, format) {
        state.hash();
    }
});
