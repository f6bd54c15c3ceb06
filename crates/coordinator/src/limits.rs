//! Rate limits: per source address for reads and for writes, and per account for logged
//! actions, each a GCRA bucket (`governor`) that refills at its rate and holds ten seconds' worth.
//! A request over its limit is answered `429 rate_limited` with `Retry-After`, before anything
//! is parsed, read or changed. Liveness and work (`/v1/work/*`: heartbeats, pings, fetches,
//! exchanges) and the validators' own routes are never limited by address: many providers may
//! share one address, and they are what keeps the network alive; each of their requests is
//! signed, and its cost bounded per provider by its nonces and slots.

use crate::error::ApiError;
use engine::AccountId;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// How many seconds of its rate a bucket holds: a client may send that much at once after a
/// quiet spell.
pub const BURST_SECONDS: u32 = 10;

/// The rates a coordinator enforces; 0 turns a limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateConfig {
    /// Reads (GET) per second from one address (an IPv6 address counts by its /64).
    pub reads_per_s: u32,
    /// Writes (actions, batches, blob uploads) per second from one address.
    pub writes_per_s: u32,
    /// Logged actions per second signed by one account (each action of a batch counts).
    pub actions_per_s: u32,
}

impl Default for RateConfig {
    fn default() -> RateConfig {
        RateConfig {
            reads_per_s: 200,
            writes_per_s: 100,
            actions_per_s: 100,
        }
    }
}

impl RateConfig {
    /// No limits (benchmarks of raw throughput).
    pub fn off() -> RateConfig {
        RateConfig {
            reads_per_s: 0,
            writes_per_s: 0,
            actions_per_s: 0,
        }
    }
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// The limiters of one coordinator.
pub struct RateLimits {
    reads: Option<Keyed<IpAddr>>,
    writes: Option<Keyed<IpAddr>>,
    actions: Option<Keyed<AccountId>>,
    /// The most actions one account may have taken at once.
    actions_burst: u32,
    clock: DefaultClock,
}

/// What a request is, for its limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Heartbeats, work fetches and exchanges, validators' routes: never limited by address.
    Liveness,
    Read,
    Write,
}

impl Class {
    pub fn of(method: &axum::http::Method, path: &str) -> Class {
        // The validators' own routes: evidence, and the signatures each certifier gathers from
        // the others (every block, from every peer).
        if path.starts_with("/v1/work/")
            || path == "/v1/chain/evidence"
            || path == "/v1/chain/signatures"
        {
            Class::Liveness
        } else if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
            Class::Read
        } else {
            Class::Write
        }
    }
}

fn keyed<K: std::hash::Hash + Eq + Clone>(per_s: u32) -> Option<Keyed<K>> {
    let rate = NonZeroU32::new(per_s)?;
    let burst = NonZeroU32::new(per_s.saturating_mul(BURST_SECONDS))?;
    Some(RateLimiter::dashmap(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

/// An IPv6 address counts by its /64 (what one customer is usually given), so that one host
/// cannot take a fresh limit per address; an IPv4 address (or an IPv4-mapped one) by itself.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

impl RateLimits {
    pub fn new(config: RateConfig) -> RateLimits {
        RateLimits {
            reads: keyed(config.reads_per_s),
            writes: keyed(config.writes_per_s),
            actions: keyed(config.actions_per_s),
            actions_burst: config.actions_per_s.saturating_mul(BURST_SECONDS),
            clock: DefaultClock::default(),
        }
    }

    /// Whether a request of `class` from `ip` may go on now.
    pub fn admit(&self, class: Class, ip: IpAddr) -> Result<(), ApiError> {
        let (limiter, what) = match class {
            Class::Liveness => return Ok(()),
            Class::Read => (&self.reads, "reads"),
            Class::Write => (&self.writes, "writes"),
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        let key = address_key(ip);
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            limited(format!("too many {what} from {key}"), wait)
        })
    }

    /// Whether `signer` may have `n` more actions logged now.
    pub fn admit_actions(&self, signer: &AccountId, n: usize) -> Result<(), ApiError> {
        let Some(limiter) = &self.actions else {
            return Ok(());
        };
        let Some(count) = u32::try_from(n).ok().and_then(NonZeroU32::new) else {
            return Ok(());
        };
        match limiter.check_key_n(signer, count) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(limited(
                    format!("too many actions signed by {signer}"),
                    wait,
                ))
            }
            Err(_) => Err(ApiError::TooLarge(format!(
                "{n} actions signed by one account at once; at most {} are taken at once: split them",
                self.actions_burst
            ))),
        }
    }

    /// Forgets the buckets that are full again (their clients went quiet), so the tables hold
    /// only recent clients. The coordinator's timer calls it.
    pub fn forget_quiet(&self) {
        if let Some(l) = &self.reads {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.writes {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.actions {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// How many clients the tables hold (reads, writes, actions).
    pub fn tracked(&self) -> (usize, usize, usize) {
        (
            self.reads.as_ref().map_or(0, Keyed::len),
            self.writes.as_ref().map_or(0, Keyed::len),
            self.actions.as_ref().map_or(0, Keyed::len),
        )
    }
}

fn limited(what: String, wait: Duration) -> ApiError {
    // Whole seconds, at least one: what `Retry-After` can say.
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1);
    ApiError::RateLimited {
        detail: format!("{what}; retry in {secs} s"),
        retry_after: secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_ten_seconds_and_refuses_beyond_with_a_wait() {
        let limits = RateLimits::new(RateConfig {
            reads_per_s: 2,
            writes_per_s: 0,
            actions_per_s: 3,
        });
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..20 {
            limits.admit(Class::Read, ip).unwrap();
        }
        match limits.admit(Class::Read, ip) {
            Err(ApiError::RateLimited { retry_after, .. }) => assert!(retry_after >= 1),
            other => panic!("{other:?}"),
        }
        // Another address has its own bucket; writes are unlimited here; liveness always goes.
        limits
            .admit(Class::Read, "192.0.2.8".parse().unwrap())
            .unwrap();
        for _ in 0..100 {
            limits.admit(Class::Write, ip).unwrap();
            limits.admit(Class::Liveness, ip).unwrap();
        }
        // Actions: 30 at once, no more; a batch larger than the bucket can never pass.
        let who = AccountId([1; 32]);
        assert!(matches!(
            limits.admit_actions(&who, 31),
            Err(ApiError::TooLarge(_))
        ));
        limits.admit_actions(&who, 30).unwrap();
        assert!(matches!(
            limits.admit_actions(&who, 1),
            Err(ApiError::RateLimited { .. })
        ));
    }

    #[test]
    fn an_ipv6_address_counts_by_its_64_and_a_mapped_ipv4_as_itself() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn routes_fall_into_their_classes() {
        use axum::http::Method;
        assert_eq!(
            Class::of(&Method::POST, "/v1/work/exchange"),
            Class::Liveness
        );
        assert_eq!(Class::of(&Method::POST, "/v1/work/ping"), Class::Liveness);
        assert_eq!(Class::of(&Method::GET, "/v1/status"), Class::Read);
        assert_eq!(
            Class::of(&Method::GET, "/v1/chain/signatures"),
            Class::Liveness
        );
        assert_eq!(Class::of(&Method::POST, "/v1/actions"), Class::Write);
        assert_eq!(Class::of(&Method::PUT, "/v1/blobs/ab"), Class::Write);
    }
}
