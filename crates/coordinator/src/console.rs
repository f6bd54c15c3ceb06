//! The web console (`GET /`) and its live feed (`GET /v1/events`).
//!
//! The console is three files compiled into the binary (`console/`: HTML, one script, one style
//! sheet, no build step and nothing fetched from elsewhere): a read-only page that draws what the
//! public `/v1` API answers. `GET /v1/events` streams a [`Pulse`] — the figures of `/metrics` —
//! as server-sent events, at most once a second and only when it changed: one task computes it
//! for every listener, and only while someone listens.

use crate::Shared;
use crate::error::ApiError;
use api::wire::Pulse;
use api::wire::PulsePoint;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/console.js");
const STYLE: &str = include_str!("../console/console.css");

/// What the page may load and run: only its own files and the API beside them.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// How often the pulse is looked at while a stream follows it.
const PULSE_EVERY: Duration = Duration::from_secs(1);
/// How often the pulse is kept for `GET /v1/pulses` (whether or not anyone follows it), and how
/// many are kept: the last hour.
const HISTORY_EVERY: Duration = Duration::from_secs(5);
pub const HISTORY_LEN: usize = 720;
/// Event streams open at once, in all and per address (`limits::address_key`).
pub const STREAMS_MAX: usize = 1024;
pub const STREAMS_PER_ADDRESS: usize = 8;

fn page(kind: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, kind)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`: the console.
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// `GET /console/{file}`: its script and style sheet.
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    match file.as_str() {
        "console.js" => Ok(page("text/javascript; charset=utf-8", SCRIPT)),
        "console.css" => Ok(page("text/css; charset=utf-8", STYLE)),
        _ => Err(ApiError::NotFound(format!("no console file {file:?}"))),
    }
}

/// The pulse every event stream follows, and who holds the streams.
pub struct Pulses {
    latest: watch::Sender<Option<Arc<Pulse>>>,
    streams: Mutex<HashMap<IpAddr, usize>>,
    history: Mutex<VecDeque<PulsePoint>>,
}

impl Default for Pulses {
    fn default() -> Self {
        Pulses {
            latest: watch::Sender::new(None),
            streams: Mutex::new(HashMap::new()),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_LEN)),
        }
    }
}

/// One open stream, counted against its address until dropped.
struct Held {
    shared: Weak<Shared>,
    ip: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            let mut streams = shared
                .pulses
                .streams
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = streams.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    streams.remove(&self.ip);
                }
            }
        }
    }
}

impl Pulses {
    /// Counts a new stream from `ip`, or refuses it (`429` for one address over its share, `503`
    /// when the coordinator holds as many as it will).
    fn hold(shared: &Arc<Shared>, ip: IpAddr) -> Result<Held, ApiError> {
        let ip = crate::limits::address_key(ip);
        let mut streams = shared
            .pulses
            .streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let total: usize = streams.values().sum();
        let mine = streams.get(&ip).copied().unwrap_or(0);
        if mine >= STREAMS_PER_ADDRESS {
            return Err(ApiError::RateLimited {
                detail: format!(
                    "this address already follows {mine} event streams, the most one may; close one"
                ),
                retry_after: 10,
            });
        }
        if total >= STREAMS_MAX {
            return Err(ApiError::Overloaded(format!(
                "{total} event streams are open, the most this coordinator serves; retry later"
            )));
        }
        streams.insert(ip, mine + 1);
        Ok(Held {
            shared: Arc::downgrade(shared),
            ip,
        })
    }
}

/// The pulse of the state `node` holds now.
pub fn pulse_of(node: &crate::node::Node) -> Pulse {
    let s = crate::metrics::Snapshot::of(node);
    let named = |v: &[(&'static str, u64)]| v.iter().map(|(k, n)| ((*k).to_string(), *n)).collect();
    Pulse {
        log_length: s.log_length,
        block_height: s.block_height,
        now: node.state.now,
        providers: named(&s.providers),
        slots_busy: s.slots_busy,
        slots_total: s.slots_total,
        tasks_queued: s.queued[0].1,
        runs_in_flight: s.runs_in_flight,
        runs_completed: s.runs[0].1,
        runs_failed: s.runs[1].1,
        jobs: named(&s.jobs),
        results: named(&s.results),
        slashes: s.slashes,
    }
}

/// Computes the pulse once a second while any stream follows it, and publishes it when it
/// changed; keeps one every [`HISTORY_EVERY`] for `GET /v1/pulses`. Ends with the coordinator.
pub async fn beat(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(PULSE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut kept = tokio::time::Instant::now() - HISTORY_EVERY;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let keep = kept.elapsed() >= HISTORY_EVERY;
        if shared.pulses.latest.receiver_count() == 0 && !keep {
            continue;
        }
        // A busy coordinator sheds this read like any other: the streams wait for the next beat.
        let Ok(pulse) = shared.read(|_, node| pulse_of(node)).await else {
            continue;
        };
        if keep {
            kept = tokio::time::Instant::now();
            let mut history = shared
                .pulses
                .history
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if history.len() == HISTORY_LEN {
                history.pop_front();
            }
            history.push_back(PulsePoint {
                at: crate::node::now_ms(),
                pulse: pulse.clone(),
            });
        }
        shared.pulses.latest.send_if_modified(|latest| {
            if latest.as_deref() == Some(&pulse) {
                return false;
            }
            *latest = Some(Arc::new(pulse));
            true
        });
    }
}

/// `GET /v1/events`: server-sent events, `event: pulse` with a [`Pulse`] as its data — the
/// current one at once, then each change (at most one a second); a comment every 15 s keeps
/// idle connections open.
pub async fn events(
    State(shared): State<Arc<Shared>>,
    extensions: axum::http::Extensions,
) -> Result<impl IntoResponse, ApiError> {
    // Served without an address (tests in process): counted as loopback.
    let ip = extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |p| p.0.ip());
    let held = Pulses::hold(&shared, ip)?;
    let first = shared.read(|_, node| pulse_of(node)).await?;
    let mut updates = shared.pulses.latest.subscribe();
    updates.mark_unchanged();
    let sent = Arc::new(first);
    let start = futures::stream::once({
        let first = event(&sent);
        async move { Ok::<_, std::convert::Infallible>(first) }
    });
    let rest = futures::stream::unfold(
        (updates, held, sent),
        |(mut updates, held, mut sent)| async move {
            // Only what differs from what this stream last sent.
            loop {
                updates.changed().await.ok()?;
                let pulse = updates.borrow_and_update().clone()?;
                if *pulse != *sent {
                    sent = pulse;
                    break;
                }
            }
            Some((Ok(event(&sent)), (updates, held, sent)))
        },
    );
    use futures::StreamExt;
    Ok(Sse::new(start.chain(rest)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn event(pulse: &Pulse) -> Event {
    Event::default()
        .event("pulse")
        .json_data(pulse)
        .unwrap_or_else(|_| Event::default().event("pulse").data("{}"))
}

/// `GET /v1/pulses`: the pulses kept, oldest first — one every 5 s over the last hour, since
/// this coordinator started.
pub async fn pulses(State(shared): State<Arc<Shared>>) -> axum::Json<Vec<PulsePoint>> {
    let history = shared
        .pulses
        .history
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    axum::Json(history.iter().cloned().collect())
}
