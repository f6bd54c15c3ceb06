//! Feeds the stored bytes of a genesis (the log's `meta` table) to `store::decode_genesis` (the
//! conversion from every older format, then postcard): the first byte picks the format (1 to
//! 7), the rest is the genesis. A decoded genesis goes to `engine::State::from_genesis`, as a
//! coordinator's start does.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((format, bytes)) = data.split_first() else {
        return;
    };
    let format = u32::from(*format % 7) + 1;
    if let Ok(genesis) = store::decode_genesis(bytes, format)
        && let Ok(state) = engine::State::from_genesis(&genesis)
    {
        state.hash();
    }
});
