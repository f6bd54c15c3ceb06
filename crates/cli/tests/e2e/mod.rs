//! The end-to-end scenarios, one module per area.

mod cache;
mod chain;
mod cli;
mod console;
mod delegation;
mod demo;
mod gpu;
mod hostile;
mod http;
mod idle;
mod jobs;
mod keys;
mod ledger;
mod load;
mod metrics;
mod options;
mod private;
mod recovery;
mod runtimes;
mod schedule;
mod sim;
mod storage;
mod tls;
mod uploads;
mod validators;
mod verify;
