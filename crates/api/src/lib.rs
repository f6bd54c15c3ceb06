//! Everything the coordinator, providers and the CLI agree on: identities and request signing
//! ([`auth`]), offline verification of the block chain ([`chain`]), the JSON shapes of the HTTP
//! API ([`wire`]) and a typed client for it ([`client`]).

pub mod auth;
pub mod chain;
pub mod client;
pub mod tls;
pub mod wire;

pub use auth::{AuthError, Identity, KeyCache, Sessions, valid_account, verify, verify_batch};
pub use client::{Client, ClientError, UdpPinger};
