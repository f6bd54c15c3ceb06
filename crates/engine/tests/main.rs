//! The engine's integration tests, in one binary: scenario tests for every branch of
//! [`engine::State::apply`], property tests over random command sequences, and wire-format
//! round trips.
//!
//! `support` holds the builders every other module uses.

mod props;
mod scenarios;
mod support;
mod wire;
