//! The end-to-end scenarios, one module per area.

mod cli;
mod hostile;
mod http;
mod jobs;
mod keys;
mod recovery;
