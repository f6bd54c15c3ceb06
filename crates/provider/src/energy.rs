//! The energy a provider's runs use, and its carbon: measured where the machine lets it be
//! read (RAPL, `/sys/class/powercap`), else estimated by a documented model in the style of the
//! Green Algorithms calculator (Lannelongue et al., 2021): the run's CPU time × power per core,
//! plus its memory × wall time × power per GiB. Both are estimates and say which they are.
//!
//! A run's CPU time is its slot thread's (`/proc/thread-self/schedstat`, nanoseconds): every
//! task runs on one slot thread from start to end. With RAPL, the package energy over the run
//! is shared among everything that ran meanwhile in proportion to CPU time, so the run is given
//! its share.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The model's defaults: a core of a current desktop or server CPU at full load (TDP divided by
/// cores is 5–15 W; Green Algorithms' generic value is about 12 W), and memory power per GiB
/// (Green Algorithms: 0.3725 W per GB).
pub const DEFAULT_WATTS_PER_CORE: f64 = 12.0;
pub const DEFAULT_WATTS_PER_GIB: f64 = 0.4;
/// The model's power of a GPU busy with a compute dispatch, by kind, where its owner does not
/// say (`gpu_watts`): a discrete card's board power under compute load (a mid-range one draws
/// 150–250 W; Green Algorithms lists most between 70 and 300 W), an integrated GPU's share of
/// its package. A software adapter (lavapipe) is the CPU: every core at the per-core figure.
pub const DEFAULT_DISCRETE_GPU_WATTS: f64 = 200.0;
pub const DEFAULT_INTEGRATED_GPU_WATTS: f64 = 15.0;
/// The world's average carbon intensity of electricity, grams of CO₂e per kWh (IEA/Ember,
/// about 480 in 2023): what a provider assumes until it knows better — its owner's figure, or
/// the network's for its region ([`Meter::set_grams_per_kwh`]).
pub const DEFAULT_GRAMS_PER_KWH: f64 = 480.0;

/// How a provider turns runs into energy and carbon.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyConfig {
    pub watts_per_core: f64,
    pub watts_per_gib: f64,
    /// The carbon intensity of this machine's electricity (grams of CO₂e per kWh), where its
    /// owner knows it: announced to the network (rules 24), which counts the carbon of this
    /// provider's runs by it. `None`: the network's table's figure for its region.
    pub grams_per_kwh: Option<f64>,
    /// Read RAPL when it can be read (`false`: always the model).
    pub rapl: bool,
    /// The power of this machine's GPU while it runs a task, in watts (`None`: by its kind,
    /// [`DEFAULT_DISCRETE_GPU_WATTS`] and the others).
    pub gpu_watts: Option<f64>,
}

impl Default for EnergyConfig {
    fn default() -> Self {
        EnergyConfig {
            watts_per_core: DEFAULT_WATTS_PER_CORE,
            watts_per_gib: DEFAULT_WATTS_PER_GIB,
            grams_per_kwh: None,
            rapl: true,
            gpu_watts: None,
        }
    }
}

/// Where an energy figure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The CPU package's energy counters, shared by CPU time.
    Rapl,
    /// CPU time × power per core + memory × time × power per GiB.
    Model,
}

/// The energy of one run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunEnergy {
    pub joules: f64,
    pub grams_co2e: f64,
    pub source: Source,
    pub cpu: Duration,
}

/// The package energy counters RAPL exposes (one per CPU package).
#[derive(Clone, Debug)]
struct Rapl {
    /// `energy_uj` files and each counter's range (it wraps).
    counters: Vec<(PathBuf, u64)>,
}

impl Rapl {
    fn find() -> Option<Rapl> {
        let mut counters = Vec::new();
        for entry in std::fs::read_dir("/sys/class/powercap").ok()?.flatten() {
            let dir = entry.path();
            let name = std::fs::read_to_string(dir.join("name")).unwrap_or_default();
            // Packages only: their sub-zones (core, uncore, dram) are parts of them.
            if !name.trim().starts_with("package") {
                continue;
            }
            let file = dir.join("energy_uj");
            // Often readable by root only (since 2020): then the model.
            if std::fs::read_to_string(&file).is_err() {
                continue;
            }
            let range = std::fs::read_to_string(dir.join("max_energy_range_uj"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(u64::MAX);
            counters.push((file, range));
        }
        (!counters.is_empty()).then_some(Rapl { counters })
    }

    fn read(&self) -> Option<Vec<u64>> {
        self.counters
            .iter()
            .map(|(f, _)| std::fs::read_to_string(f).ok()?.trim().parse().ok())
            .collect()
    }

    /// Microjoules between two readings, counters that wrapped included.
    fn delta(&self, before: &[u64], after: &[u64]) -> u64 {
        self.counters
            .iter()
            .zip(before.iter().zip(after))
            .map(|((_, range), (b, a))| {
                if a >= b {
                    a - b
                } else {
                    range.saturating_sub(*b).saturating_add(*a)
                }
            })
            .fold(0u64, u64::saturating_add)
    }
}

/// A provider's energy meter, shared by its slots.
#[derive(Clone, Debug)]
pub struct Meter {
    config: EnergyConfig,
    rapl: Option<Rapl>,
    /// The intensity its carbon figures use (an `f64`'s bits): the owner's, else the
    /// network's for its region once known, else [`DEFAULT_GRAMS_PER_KWH`].
    grams_per_kwh: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// What [`Meter::start`] noted when a run began.
pub struct Start {
    at: Instant,
    thread_cpu: Option<Duration>,
    rapl: Option<Vec<u64>>,
    busy: Option<Duration>,
}

impl Meter {
    pub fn new(config: EnergyConfig) -> Meter {
        let rapl = if config.rapl { Rapl::find() } else { None };
        let grams = config.grams_per_kwh.unwrap_or(DEFAULT_GRAMS_PER_KWH);
        Meter {
            config,
            rapl,
            grams_per_kwh: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(grams.to_bits())),
        }
    }

    /// The intensity its carbon figures use (grams of CO₂e per kWh).
    pub fn grams_per_kwh(&self) -> f64 {
        f64::from_bits(
            self.grams_per_kwh
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// The network's intensity for this provider: used unless its owner gave one.
    pub fn set_grams_per_kwh(&self, grams: f64) {
        if self.config.grams_per_kwh.is_none() {
            self.grams_per_kwh
                .store(grams.to_bits(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn source(&self) -> Source {
        if self.rapl.is_some() {
            Source::Rapl
        } else {
            Source::Model
        }
    }

    /// What the meter does here, in words.
    pub fn describe(&self) -> String {
        match self.source() {
            Source::Rapl => format!(
                "measured: RAPL package energy shared by CPU time; {} g CO2e/kWh",
                self.grams_per_kwh()
            ),
            Source::Model => format!(
                "estimated: CPU time x {} W per core + memory x {} W per GiB; {} g CO2e/kWh",
                self.config.watts_per_core,
                self.config.watts_per_gib,
                self.grams_per_kwh()
            ),
        }
    }

    /// A GPU run's energy, by the model (no GPU reports its own energy through wgpu): the
    /// device's power — its owner's `gpu_watts`, else by `device_type` (wgpu's: `DiscreteGpu`,
    /// `IntegratedGpu`, `Cpu` for a software adapter, which runs on every core) — for the time
    /// the dispatch took, `busy`.
    pub fn gpu_run(&self, device_type: &str, busy: Duration) -> RunEnergy {
        let watts = self.config.gpu_watts.unwrap_or(match device_type {
            "IntegratedGpu" => DEFAULT_INTEGRATED_GPU_WATTS,
            "Cpu" => {
                self.config.watts_per_core
                    * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
            }
            _ => DEFAULT_DISCRETE_GPU_WATTS,
        });
        let joules = busy.as_secs_f64() * watts;
        RunEnergy {
            joules,
            grams_co2e: joules / 3.6e6 * self.grams_per_kwh(),
            source: Source::Model,
            cpu: Duration::ZERO,
        }
    }

    /// Called on the slot thread as a run begins.
    pub fn start(&self) -> Start {
        Start {
            at: Instant::now(),
            thread_cpu: thread_cpu(),
            rapl: self.rapl.as_ref().and_then(Rapl::read),
            busy: self.rapl.as_ref().and_then(|_| machine_busy()),
        }
    }

    /// Called on the same thread as the run ends; `memory_bytes`: the memory the run was
    /// given; `guest_cpu`: the CPU time the sandbox counted for the guest, where it ran
    /// elsewhere than this thread (a worker process), else this thread's is the run's.
    pub fn finish(
        &self,
        start: Start,
        memory_bytes: u64,
        guest_cpu: Option<Duration>,
    ) -> RunEnergy {
        let wall = start.at.elapsed();
        let cpu = match (guest_cpu, start.thread_cpu, thread_cpu()) {
            (Some(cpu), _, _) => cpu,
            (None, Some(a), Some(b)) => b.saturating_sub(a),
            // No per-thread clock: the run was busy all along (an upper bound).
            _ => wall,
        };
        let measured = (|| {
            let rapl = self.rapl.as_ref()?;
            let micro = rapl.delta(start.rapl.as_ref()?, &rapl.read()?);
            let busy = machine_busy()?.checked_sub(start.busy?)?;
            // The machine's busy time is counted in ticks: never less than this run's own.
            let share = cpu.as_secs_f64() / busy.max(cpu).as_secs_f64().max(1e-9);
            Some(micro as f64 / 1e6 * share)
        })();
        let (joules, source) = match measured {
            Some(j) => (j, Source::Rapl),
            None => (
                cpu.as_secs_f64() * self.config.watts_per_core
                    + memory_bytes as f64 / f64::from(1u32 << 30)
                        * wall.as_secs_f64()
                        * self.config.watts_per_gib,
                Source::Model,
            ),
        };
        RunEnergy {
            joules,
            grams_co2e: joules / 3.6e6 * self.grams_per_kwh(),
            source,
            cpu,
        }
    }
}

use sandbox::thread_cpu;

/// The whole machine's busy CPU time so far (`/proc/stat`, at 100 ticks a second).
fn machine_busy() -> Option<Duration> {
    let (busy, _) = crate::idle::machine_ticks()?;
    Some(Duration::from_millis(busy.saturating_mul(10)))
}

/// Energy and carbon so far, kept by the provider for `gridmint provider status`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EnergyTotals {
    pub runs: u64,
    pub kwh: f64,
    pub grams_co2e: f64,
}

impl RunEnergy {
    /// The run's energy as a report carries it (rules 24): whole millijoules.
    pub fn report(&self) -> engine::EnergyReport {
        let millijoules = (self.joules * 1000.0).round();
        engine::EnergyReport {
            millijoules: if millijoules.is_finite() && millijoules > 0.0 {
                (millijoules as u64).min(engine::energy::MAX_RUN_MILLIJOULES)
            } else {
                0
            },
            method: match self.source {
                Source::Rapl => engine::EnergyMethod::Measured,
                Source::Model => engine::EnergyMethod::Modelled,
            },
        }
    }
}

impl EnergyTotals {
    pub fn add(&mut self, run: &RunEnergy) {
        self.runs += 1;
        self.kwh += run.joules / 3.6e6;
        self.grams_co2e += run.grams_co2e;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < d {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }

    #[test]
    fn the_model_charges_cpu_time_and_memory_and_a_sleeping_run_costs_memory_only() {
        let meter = Meter::new(EnergyConfig {
            rapl: false,
            ..EnergyConfig::default()
        });
        assert_eq!(meter.source(), Source::Model);
        let outer = Instant::now();
        let start = meter.start();
        spin(Duration::from_millis(300));
        let busy = meter.finish(start, 1 << 30, None);
        let wall = outer.elapsed().as_secs_f64();
        assert_eq!(busy.source, Source::Model);
        // Its CPU time at 12 W, plus its time × 1 GiB × 0.4 W.
        assert!(busy.cpu > Duration::from_millis(50), "{busy:?}");
        let memory = busy.joules - busy.cpu.as_secs_f64() * 12.0;
        assert!((0.0..=wall * 0.4).contains(&memory), "{busy:?} in {wall} s");
        assert!((busy.grams_co2e - busy.joules / 3.6e6 * 480.0).abs() < 1e-12);

        let start = meter.start();
        std::thread::sleep(Duration::from_millis(200));
        let idle = meter.finish(start, 1 << 30, None);
        assert!(idle.cpu < Duration::from_millis(20), "{idle:?}");
        assert!(idle.joules < 0.4, "{idle:?}");
    }

    #[test]
    fn wrapped_rapl_counters_count_across_the_wrap() {
        let rapl = Rapl {
            counters: vec![(PathBuf::new(), 1000), (PathBuf::new(), 1000)],
        };
        assert_eq!(rapl.delta(&[990, 100], &[10, 150]), 20 + 50);
    }

    #[test]
    fn a_gpu_runs_energy_is_its_power_for_the_dispatchs_time() {
        let meter = Meter::new(EnergyConfig::default());
        let second = Duration::from_secs(1);
        assert_eq!(meter.gpu_run("DiscreteGpu", second).joules, 200.0);
        assert_eq!(meter.gpu_run("IntegratedGpu", second).joules, 15.0);
        let cores = std::thread::available_parallelism().unwrap().get() as f64;
        assert_eq!(meter.gpu_run("Cpu", second).joules, 12.0 * cores);
        let own = Meter::new(EnergyConfig {
            gpu_watts: Some(320.0),
            grams_per_kwh: Some(100.0),
            ..EnergyConfig::default()
        });
        let run = own.gpu_run("DiscreteGpu", Duration::from_millis(500));
        assert_eq!(run.joules, 160.0);
        assert!((run.grams_co2e - 160.0 / 3.6e6 * 100.0).abs() < 1e-12);
        assert_eq!(run.report().millijoules, 160_000);
        assert_eq!(run.report().method, engine::EnergyMethod::Modelled);
    }
}
