//! A provider's own Prometheus metrics (`gridmint provider --metrics ADDR`: `GET /metrics` on
//! that address, OpenMetrics text): what `gridmint provider status` shows, for a machine's
//! monitoring — its state and why it is suspended, tasks in flight and run, energy and carbon,
//! and its standing on the network (reputation, stake, earnings) as of its last look.

use crate::control::{Control, LocalStatus};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;

/// The states a provider can be in (`LocalStatus::state`).
const STATES: [&str; 4] = ["working", "waiting", "suspended", "handed_back"];

#[derive(Debug)]
struct Status(LocalStatus);

fn one<M: EncodeMetric>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: M,
) -> Result<(), std::fmt::Error> {
    metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Status {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        {
            let mut m = e.encode_descriptor(
                "gridmint_provider_state",
                "1 for the state the provider is in (suspended: its owner's rules hold it back)",
                None,
                MetricType::Gauge,
            )?;
            for state in STATES {
                ConstGauge::new(i64::from(s.state == state))
                    .encode(m.encode_family(&[("state", state)])?)?;
            }
        }
        {
            let mut m = e.encode_descriptor(
                "gridmint_provider_suspended_reasons",
                "1 for each of the owner's rules that suspends the provider now",
                None,
                MetricType::Gauge,
            )?;
            for reason in &s.reasons {
                let name = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(String::from))
                    .unwrap_or_default();
                ConstGauge::new(1i64).encode(m.encode_family(&[("reason", name.as_str())])?)?;
            }
        }
        one(
            &mut e,
            "gridmint_provider_tasks_in_flight",
            "Tasks assigned and not reported yet (running, queued or finished)",
            ConstGauge::new(s.tasks_in_flight as i64),
        )?;
        {
            let mut m = e.encode_descriptor(
                "gridmint_provider_runs",
                "Runs reported since it started, by outcome",
                None,
                MetricType::Counter,
            )?;
            for (outcome, n) in [("succeeded", s.tasks_run), ("failed", s.tasks_failed)] {
                ConstCounter::new(n).encode(m.encode_family(&[("outcome", outcome)])?)?;
            }
        }
        one(
            &mut e,
            "gridmint_provider_slots",
            "Task slots it offers",
            ConstGauge::new(i64::from(s.slots)),
        )?;
        one(
            &mut e,
            "gridmint_provider_energy_joules",
            "Energy of its runs since it started (an estimate unless RAPL measured it)",
            ConstCounter::new(s.energy.kwh * 3.6e6),
        )?;
        one(
            &mut e,
            "gridmint_provider_co2e_grams",
            "Carbon of its runs since it started, grams of CO2e",
            ConstCounter::new(s.energy.grams_co2e),
        )?;
        one(
            &mut e,
            "gridmint_provider_earned_today_base_units",
            "Earned since the first look today (local date), in base units",
            ConstGauge::new(s.earned_today as f64),
        )?;
        if let Some(v) = &s.standing {
            one(
                &mut e,
                "gridmint_provider_earned_base_units",
                "Earned in all, as the network last said, in base units",
                ConstGauge::new(v.stats.earned as f64),
            )?;
            one(
                &mut e,
                "gridmint_provider_reputation",
                "Reputation score, out of 1000, as the network last said",
                ConstGauge::new(i64::from(v.reputation.score)),
            )?;
            one(
                &mut e,
                "gridmint_provider_trusted",
                "1 while its results are accepted alone",
                ConstGauge::new(i64::from(v.trusted)),
            )?;
            one(
                &mut e,
                "gridmint_provider_bonded_base_units",
                "Stake bonded, in base units, as the network last said",
                ConstGauge::new(v.bonded as f64),
            )?;
        }
        Ok(())
    }
}

/// The metrics of `status`, as text.
pub fn encode(status: LocalStatus) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Status(status)));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, control: Arc<Control>) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let control = control.clone();
            async move {
                let status = control.status.lock().map(|s| s.clone()).unwrap_or_default();
                match encode(status) {
                    Ok(text) => (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(e) => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        format!("encoding the metrics: {e}"),
                    )
                        .into_response(),
                }
            }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "the metrics server stopped");
    }
}

/// Binds `addr` for [`serve`]; the error names the address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("serving metrics on {addr}: {e}"))
}

use axum::response::IntoResponse;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspended_providers_metrics_say_why() {
        let status = LocalStatus {
            state: "suspended".into(),
            reasons: vec![crate::idle::Reason::OnBattery],
            tasks_in_flight: 2,
            tasks_run: 7,
            slots: 4,
            ..LocalStatus::default()
        };
        let text = encode(status).unwrap();
        for line in [
            "gridmint_provider_state{state=\"suspended\"} 1",
            "gridmint_provider_state{state=\"working\"} 0",
            "gridmint_provider_suspended_reasons{reason=\"on_battery\"} 1",
            "gridmint_provider_tasks_in_flight 2",
            "gridmint_provider_runs_total{outcome=\"succeeded\"} 7",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
