//! Feeds a genesis file (TOML) to the CLI's parser `genesis::parse_network`
//! (`crates/cli/src/genesis.rs`, compiled in; what the coordinator's `genesis` setting and
//! `gridmint chain verify --genesis` load), then a parsed genesis to `engine::State::from_genesis` and its
//! validator set to `ValidatorSet::validate`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((genesis, set)) = gridmint_fuzz::genesis::parse_network(text) else {
        return;
    };
    let _ = set.validate();
    if let Ok(state) = engine::State::from_genesis(&genesis) {
        state.hash();
    }
});
