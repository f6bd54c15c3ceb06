//! Feeds the stored bytes of a log entry (from the SQLite log, or `GET /v1/chain/entries` for
//! `gridmint chain verify <url>`) to both decoders: `store::decode_entry` (replay on start, which
//! then applies it with `engine::State::apply` unchecked: the log is trusted once written) and
//! `api::chain::Verifier::tail` (canonical decoding, the signatures in it, then the replay).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = store::decode_entry(1, data) {
        let mut state = gridmint_fuzz::initial_state();
        let _ = state.apply(&entry);
        state.hash();
        if let Err(e) = state.check_supply() {
            panic!("supply not conserved: {e}");
        }
    }
    let mut verifier = api::chain::Verifier::new(gridmint_fuzz::initial_state(), None);
    let _ = verifier.tail(&[(1, data.to_vec())]);
    verifier.finish();
});
