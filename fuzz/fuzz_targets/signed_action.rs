//! Feeds a request body to the coordinator's decoders of signed JSON. `POST /v1/actions`:
//! `serde_json::from_slice::<Signed<Action>>` (what `routes::parse_json` calls), the signature
//! check `api::verify`, the admission rule `api::valid_account`, then `engine::State::apply` of
//! the action on a funded state (any key can sign any body, so the engine must take every
//! decodable action without panicking, and keep its supply). The same bytes also go to the
//! heartbeat/fetch decoder (`Signed<Request>`, `api::verify`) and the evidence decoder
//! (`POST /v1/evidence`: `Equivocation`, `api::chain::check_evidence`).
#![no_main]

use engine::{Action, Entry, Equivocation, Input, Request, Signed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = serde_json::from_slice::<Signed<Action>>(data) {
        let _ = api::verify(&signed);
        if let Action::Transfer { to, .. } = &signed.body {
            let _ = api::valid_account(to);
        }
        let mut state = gridmint_fuzz::initial_state();
        let _ = state.apply(&Entry {
            time: 1_000,
            input: Input::Signed(signed),
        });
        state.hash();
        if let Err(e) = state.check_supply() {
            panic!("supply not conserved: {e}");
        }
    }
    if let Ok(signed) = serde_json::from_slice::<Signed<Request>>(data) {
        let _ = api::verify(&signed);
    }
    if let Ok(evidence) = serde_json::from_slice::<Equivocation>(data) {
        // As if the first header were this chain's block at that height.
        let _ = api::chain::check_evidence(&evidence, Some(evidence.first.header.hash()));
    }
});
