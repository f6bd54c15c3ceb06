//! `GET /metrics`: the coordinator's Prometheus metrics (OpenMetrics text, through the
//! Prometheus project's `prometheus-client`).
//!
//! Two kinds. What the state says — providers by state, slots, the queue, jobs by status,
//! completed and failed runs, verification outcomes, slashes, the chain's height — is read from
//! the state at scrape time ([`Snapshot`], a collector of constant metrics), so it is always
//! what `GET /v1/…` would answer and costs nothing between scrapes. What only happens in this
//! process — HTTP requests by route and status, how long commits and the command log's durable
//! appends take — is counted as it happens ([`Live`]). A validator of a set answers for
//! itself: its own requests and appends, and the state it has applied.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// An HTTP request as counted: its route (the pattern, such as `/v1/jobs/{id}`), method and
/// status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// What is counted as it happens. Cheap to clone (the metrics are shared handles).
#[derive(Clone, Debug)]
pub struct Live {
    pub http_requests: Family<HttpLabels, Counter>,
    /// Applying an input, a group or a proposal on this node and making it durable.
    pub commit_seconds: Histogram,
    /// The command log's append alone: the SQLite transaction and its fsync.
    pub append_seconds: Histogram,
}

impl Default for Live {
    fn default() -> Self {
        // 50 µs to about 1.6 s, doubling: an fsync on a fast disk to a stalled one.
        let buckets = || Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        Live {
            http_requests: Family::default(),
            commit_seconds: buckets(),
            append_seconds: buckets(),
        }
    }
}

impl Live {
    pub fn commit(&self, took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
    }

    pub fn append(&self, took: Duration) {
        self.append_seconds.observe(took.as_secs_f64());
    }
}

/// What the state says, read at one scrape.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Providers by state: `active`, `suspended` (active, but its owner's rules hold it back:
    /// rules 24), `left`, `lost`.
    pub providers: [(&'static str, u64); 4],
    /// Slots of the providers the scheduler counts on, busy and in all.
    pub slots_busy: u64,
    pub slots_total: u64,
    /// Tasks with replicas waiting, by kind: `new` (the queue), `recheck` (re-executions
    /// only), `dispute` (for the anchors).
    pub queued: [(&'static str, u64); 3],
    pub runs_in_flight: u64,
    /// Jobs by status.
    pub jobs: [(&'static str, u64); 5],
    /// Runs ended, over all providers: `completed` (accepted results) and `failed`.
    pub runs: [(&'static str, u64); 2],
    /// Results by how verification settled them: `verified` (matched by others),
    /// `accepted_alone` (a trusted provider's), `rejected` (outvoted, slashed).
    pub results: [(&'static str, u64); 3],
    pub slashes: u64,
    /// Base units slashed, in all.
    pub slashed: f64,
    pub block_height: u64,
    pub log_length: u64,
    pub applied: u64,
    pub rules: u64,
}

impl Snapshot {
    pub fn of(node: &crate::node::Node) -> Snapshot {
        let state = &node.state;
        let mut s = Snapshot {
            providers: [("active", 0), ("suspended", 0), ("left", 0), ("lost", 0)],
            queued: [
                ("new", state.queue.len() as u64),
                (
                    "recheck",
                    state.recheck.difference(&state.queue).count() as u64,
                ),
                ("dispute", state.disputes.len() as u64),
            ],
            jobs: [
                ("running", 0),
                ("reducing", 0),
                ("completed", 0),
                ("failed", 0),
                ("cancelled", 0),
            ],
            runs: [("completed", 0), ("failed", 0)],
            results: [("verified", 0), ("accepted_alone", 0), ("rejected", 0)],
            ..Snapshot::default()
        };
        for p in state.providers.values() {
            let kind = match p.status {
                engine::ProviderStatus::Active if state.is_suspended(&p.id) => 1,
                engine::ProviderStatus::Active => 0,
                engine::ProviderStatus::Left => 2,
                engine::ProviderStatus::Lost => 3,
            };
            s.providers[kind].1 += 1;
            if state.counts_on(p) {
                s.slots_total += u64::from(p.spec.slots);
                s.slots_busy += (p.running.len() as u64).min(u64::from(p.spec.slots));
            }
            s.runs_in_flight += p.running.len() as u64;
            s.runs[0].1 += p.stats.tasks_completed;
            s.runs[1].1 += p.stats.tasks_failed;
            s.results[0].1 += p.reputation.verified;
            s.results[1].1 += p.reputation.accepted_alone;
            s.results[2].1 += p.reputation.rejected;
            s.slashes += p.stats.times_slashed;
            s.slashed += p.stats.slashed as f64;
        }
        for job in state.jobs.values() {
            let kind = match job.status {
                engine::JobStatus::Running => 0,
                engine::JobStatus::Reducing => 1,
                engine::JobStatus::Completed => 2,
                engine::JobStatus::Failed { .. } => 3,
                engine::JobStatus::Cancelled => 4,
            };
            s.jobs[kind].1 += 1;
        }
        let chain = node.chain_view();
        s.block_height = chain.height;
        s.log_length = chain.log_length;
        s.applied = state.applied;
        s.rules = u64::from(state.rules);
        s
    }
}

/// One labelled family of constant values.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    values: impl IntoIterator<Item = (&'static str, M)>,
    metric_type: prometheus_client::metrics::MetricType,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (value, m) in values {
        let labels = [(label, value)];
        m.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: impl prometheus_client::encoding::EncodeCounterValue + std::fmt::Debug + Send + Sync,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::MetricType;
        let gauges = |v: &[(&'static str, u64)]| {
            v.iter()
                .map(|(k, n)| (*k, ConstGauge::new(*n as i64)))
                .collect::<Vec<_>>()
        };
        let counters = |v: &[(&'static str, u64)]| {
            v.iter()
                .map(|(k, n)| (*k, ConstCounter::new(*n)))
                .collect::<Vec<_>>()
        };
        family(
            &mut e,
            "gridmint_providers",
            "Providers by state (suspended: active, but held back by its owner's rules)",
            "state",
            gauges(&self.providers),
            MetricType::Gauge,
        )?;
        family(
            &mut e,
            "gridmint_slots",
            "Task slots of the providers the scheduler counts on",
            "state",
            gauges(&[
                ("busy", self.slots_busy),
                ("free", self.slots_total.saturating_sub(self.slots_busy)),
            ]),
            MetricType::Gauge,
        )?;
        family(
            &mut e,
            "gridmint_tasks_queued",
            "Tasks with replicas waiting for a provider, by kind",
            "kind",
            gauges(&self.queued),
            MetricType::Gauge,
        )?;
        gauge(
            &mut e,
            "gridmint_runs_in_flight",
            "Runs assigned to providers and not reported yet",
            self.runs_in_flight as i64,
        )?;
        family(
            &mut e,
            "gridmint_jobs",
            "Jobs by status",
            "status",
            gauges(&self.jobs),
            MetricType::Gauge,
        )?;
        family(
            &mut e,
            "gridmint_runs",
            "Runs ended, over all providers: with an accepted result, or failed",
            "outcome",
            counters(&self.runs),
            MetricType::Counter,
        )?;
        family(
            &mut e,
            "gridmint_results",
            "Results by how verification settled them",
            "outcome",
            counters(&self.results),
            MetricType::Counter,
        )?;
        counter(
            &mut e,
            "gridmint_slashes",
            "Slashes of providers for wrong results",
            self.slashes,
        )?;
        counter(
            &mut e,
            "gridmint_slashed_base_units",
            "Stake slashed from providers, in base units",
            self.slashed,
        )?;
        gauge(
            &mut e,
            "gridmint_block_height",
            "Height of the newest sealed block",
            self.block_height as i64,
        )?;
        gauge(
            &mut e,
            "gridmint_log_entries",
            "Entries in the command log",
            self.log_length as i64,
        )?;
        gauge(
            &mut e,
            "gridmint_inputs_applied",
            "Inputs the state has applied",
            self.applied as i64,
        )?;
        gauge(
            &mut e,
            "gridmint_rules",
            "The version of the engine's rules the network runs",
            self.rules as i64,
        )?;
        Ok(())
    }
}

/// The metrics as text (OpenMetrics), `snapshot` with what `live` counted.
pub fn encode(snapshot: Snapshot, live: &Live) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register(
        "gridmint_http_requests",
        "HTTP requests answered, by route, method and status",
        live.http_requests.clone(),
    );
    registry.register(
        "gridmint_commit_seconds",
        "Time to apply an input, a group of them or a proposal on this node and make it durable",
        live.commit_seconds.clone(),
    );
    registry.register(
        "gridmint_log_append_seconds",
        "Time of the command log's durable append (its transaction and fsync)",
        live.append_seconds.clone(),
    );
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_family_with_its_labels() {
        let live = Live::default();
        live.http_requests
            .get_or_create(&HttpLabels {
                route: "/v1/jobs/{id}".into(),
                method: "GET".into(),
                status: 200,
            })
            .inc();
        live.commit(Duration::from_micros(300));
        let snapshot = Snapshot {
            providers: [("active", 3), ("suspended", 1), ("left", 0), ("lost", 2)],
            slots_busy: 2,
            slots_total: 8,
            ..Snapshot::default()
        };
        let text = encode(snapshot, &live).unwrap();
        for line in [
            "gridmint_http_requests_total{route=\"/v1/jobs/{id}\",method=\"GET\",status=\"200\"} 1",
            "gridmint_providers{state=\"suspended\"} 1",
            "gridmint_providers{state=\"lost\"} 2",
            "gridmint_slots{state=\"free\"} 6",
            "gridmint_commit_seconds_count 1",
            "# TYPE gridmint_runs counter",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
