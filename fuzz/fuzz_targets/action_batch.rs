//! Feeds a request body to the coordinator's decoder of `POST /v1/actions/batch`:
//! `serde_json::from_slice::<Vec<Signed<Action>>>` (what `routes::parse_json` calls), the batch
//! signature check `api::verify_batch` (as `routes::admit_batch` calls it), then
//! `engine::State::apply` of each action in order on one funded state, as a group commit does.
#![no_main]

use engine::{Action, Entry, Input, Signed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = serde_json::from_slice::<Vec<Signed<Action>>>(data) else {
        return;
    };
    let keys = api::BatchKeys::new(64);
    let verdicts = api::verify_batch(&batch, &keys);
    assert_eq!(verdicts.len(), batch.len(), "one verdict per action");
    let mut state = gridmint_fuzz::initial_state();
    for (i, signed) in batch.into_iter().enumerate() {
        let _ = state.apply(&Entry {
            time: 1_000 + i as u64,
            input: Input::Signed(signed),
        });
    }
    state.hash();
    if let Err(e) = state.check_supply() {
        panic!("supply not conserved: {e}");
    }
});
