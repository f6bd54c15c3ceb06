//! Feeds a UDP datagram to what the coordinator's heartbeat thread (`udp_heartbeats`) does with
//! one: `api::wire::SealedPing::from_datagram`, then its MAC check under a session token
//! (`SealedPing::opens_with`); and to the provider's reading of an answer,
//! `api::wire::PingAck::from_datagram`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(ping) = api::wire::SealedPing::from_datagram(data) {
        let sessions = api::Sessions::new();
        let token = sessions.token(&ping.provider);
        // A datagram nobody made with the token does not open; whoever did, did.
        let _ = ping.opens_with(&token);
        let _ = sessions.fresh(&ping.provider, ping.counter);
    }
    let _ = api::wire::PingAck::from_datagram(data);
});
