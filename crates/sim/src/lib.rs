//! `gridmint sim`: a discrete-event simulation of a whole Gridmint network in virtual time, in
//! which the real engine ([`engine::State`]) makes every scheduling, verification and payment
//! decision. See `docs/simulation.md`.
//!
//! - [`config`]: the TOML file (network rules, regions, provider classes, workload, churn, and an
//!   optional experiment).
//! - [`world`]: the event loop around the engine.
//! - [`metrics`]: what a run measures; [`report`]: the summary, its table and JSON.
//! - [`experiments`]: the sweeps (verification, collusion, churn, economics) and the closed-form
//!   error rate of m-first voting; [`etc`]: the Braun et al. scheduling instances and heuristics.
//! - [`plot`]: the PNG charts.

pub mod config;
pub mod dist;
pub mod etc;
pub mod experiments;
pub mod metrics;
pub mod plot;
pub mod queue;
pub mod report;
pub mod world;

pub use config::SimConfig;
pub use experiments::{Output, run_config};
pub use report::Summary;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulation config: {0}")]
    Config(String),
    #[error("the engine refused {input} at t={at_ms} ms: {rejection}")]
    Rejected {
        at_ms: u64,
        input: String,
        rejection: engine::Rejection,
    },
    #[error("scheduling experiment: {0}")]
    Etc(#[from] etc::EtcError),
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}
