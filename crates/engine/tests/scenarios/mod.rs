//! Scenario tests: one input sequence per branch of the engine, asserting the exact events and the
//! resulting state; every rejection is also checked to leave the state and its hash unchanged.

mod answers;
mod assign;
mod delegation;
mod descriptor;
mod energy;
mod fetch;
mod files;
mod gov;
mod gpu;
mod jobs;
mod ledger;
mod lifecycle;
mod nonces;
mod outlook;
mod private;
mod providers;
mod reports;
mod reserve;
mod schedule;
mod storage;
mod tolerance;
mod validator_rewards;
mod verify;
