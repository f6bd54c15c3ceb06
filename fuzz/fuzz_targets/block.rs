//! Feeds the stored bytes of block 1 (from the SQLite log, a checkpoint or a peer) to
//! `store::SqliteLog::decode_block` (canonical postcard via `engine::decode_canonical`, and the
//! height check), then a decoded block to `api::chain::block_signature_ok` and
//! `api::chain::Verifier::block` (links, range, signature) on a fresh chain.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = store::SqliteLog::decode_block(1, data) else {
        return;
    };
    api::chain::block_signature_ok(&block);
    block.header.hash();
    let mut verifier = api::chain::Verifier::new(gridmint_fuzz::initial_state(), None);
    let _ = verifier.block(&block, &[]);
});
