//! Deterministic production-line simulator for linewatch.
//!
//! A [`Simulator`] plays one line of `N` machines (`m-000`, `m-001`, ...) in event time, with
//! no I/O: the caller asks for the events up to some time with
//! [`Simulator::next_events`] and sends them where it likes ([`SimEvent::to_json`] gives the
//! reading and inspection messages of the contracts in `docs/architecture.md`, "Contracts").
//!
//! - **Normal operation.** Every machine samples its `C` channels every `interval_ms` (plus a
//!   small jitter). Channel `j` is `level_j + scale_j * z_j` with
//!   `z = L f + sqrt(1 - factor_loading) e`: a few unit-variance AR(1) latent factors `f`
//!   make the channels correlated and temporally smooth, `e` is white noise, and in normal
//!   operation each channel has exactly mean `level` and standard deviation `scale`.
//! - **Delivery.** A `late_fraction` share of readings is delivered late, after the next
//!   reading of the same machine and at most `max_late_ms` after its event time, so event-time
//!   windowing with a watermark is exercised.
//! - **Faults.** After a fault-free warm-up, every machine gets faults at random times
//!   (non-overlapping per machine): [`FaultKind::Drift`], [`FaultKind::Spike`],
//!   [`FaultKind::Stuck`], [`FaultKind::VarianceBurst`], [`FaultKind::BrokenCorrelation`],
//!   each on one channel with a severity in `[0, 1]`. Ground truth is a [`FaultRecord`] per
//!   fault ([`Simulator::faults`], [`faults_to_jsonl`]).
//! - **Inspections.** Every machine is inspected every `inspections.interval_ms`; the defect
//!   probability rises linearly with the severity of the fault active at that time.
//! - **Determinism.** Same config and seed, same event sequence, however the calls to
//!   `next_events` are cut. Every machine draws from its own random streams (signal, fault
//!   plan, fault effects, inspections, delivery), so switching faults off leaves the normal
//!   signal unchanged, and adding machines leaves the existing ones unchanged.
//!
//! [`evaluate`] scores alerts against the ground truth (precision, recall, delay) with the
//! matching rule documented in [`eval`].
//!
//! ```
//! use linewatch_sim::{SimConfig, SimEvent, Simulator};
//!
//! let cfg = SimConfig { machines: 2, ..SimConfig::default() };
//! let mut sim = Simulator::new(cfg)?;
//! let start = sim.config().start_ms;
//! let events = sim.next_events(start + 60_000);
//! assert!(events.iter().any(|e| matches!(e, SimEvent::Reading(_))));
//! let first = events[0].to_json();
//! assert!(first.starts_with(r#"{"line":"press-3","machine":"m-00"#));
//! # Ok::<(), linewatch_sim::SimError>(())
//! ```

mod config;
mod error;
pub mod eval;
mod event;
mod fault;
mod sim;

pub use config::{
    ChannelSpec, DEFAULT_START_MS, FaultConfig, InspectionConfig, SimConfig, TsFormat,
};
pub use error::SimError;
pub use eval::{AlertSpan, EvalConfig, EvalReport, KindCounts, evaluate};
pub use event::{SimEvent, SimInspection, SimReading, rfc3339_ms};
pub use fault::{FaultKind, FaultRecord, faults_from_jsonl, faults_to_jsonl};
pub use sim::Simulator;
