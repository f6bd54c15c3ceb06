//! What the fuzz targets (`fuzz_targets/`) share: the job spec parser (`crates/jobspec`), the
//! CLI's genesis parser, compiled in from `crates/cli/src` (the CLI is a binary crate, so it
//! cannot be imported), and the
//! initial state that decoded inputs are applied to. `tests/seeds.rs` writes and checks the seed
//! corpus (`corpus/<target>/`).

use engine::{AccountId, Genesis, State};
use std::sync::OnceLock;

/// The job spec parser the CLI and the Python SDK use (`crates/jobspec`).
pub use jobspec;

/// The CLI's genesis file parser, `crates/cli/src/genesis.rs`, as the `gridmint` binary compiles it.
#[path = "../../crates/cli/src/genesis.rs"]
#[allow(dead_code, clippy::all)]
pub mod genesis;

/// The key the seed inputs are signed with; the initial state funds it, so that a mutated action
/// of a seed's signer reaches the engine's rules past "no balance".
pub fn seed_identity() -> api::Identity {
    api::Identity::from_secret([7; 32])
}

/// A development network's genesis (faucet on, action fee) that funds [`seed_identity`].
pub fn genesis() -> Genesis {
    let mut genesis = Genesis::dev(AccountId([0; 32]));
    genesis
        .allocations
        .insert(seed_identity().id(), engine::tokens(1_000_000));
    genesis
}

/// The state of [`genesis`] before any entry.
pub fn initial_state() -> State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE
        .get_or_init(|| State::from_genesis(&genesis()).expect("the fuzz genesis is valid"))
        .clone()
}

/// What every `.wgsl` path reads as for [`AnyFile`]: a compute shader with entry point `main`
/// writing one buffer.
pub const SHADER: &str = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1) fn main(@builtin(global_invocation_id) id: vec3<u32>) { out[id.x] = id.x; }
";

/// Job spec files for [`jobspec::load`]: every path reads as the same small module (a `.wgsl`
/// one as [`SHADER`]), every directory as a small blob.
pub struct AnyFile;

impl jobspec::Files for AnyFile {
    fn read(&self, path: &str) -> anyhow::Result<bytes::Bytes> {
        // A GPU job's shader (rules 23) is admitted as it is read: a small valid one, so that
        // the rest of the spec is reached.
        if path.ends_with(".wgsl") {
            return Ok(bytes::Bytes::from_static(SHADER.as_bytes()));
        }
        Ok(bytes::Bytes::from(
            format!("contents of {path}").into_bytes(),
        ))
    }

    fn tree(&self, path: &str) -> anyhow::Result<bytes::Bytes> {
        Ok(bytes::Bytes::from(format!("tree of {path}").into_bytes()))
    }
}
