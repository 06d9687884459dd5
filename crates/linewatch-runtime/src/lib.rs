//! linewatch's runtime: the thin, effectful edge that wires the pure libraries together.
//!
//! # Layout
//! - [`config`]: the pipeline TOML, defaults, environment overrides, validation.
//! - [`kafka`]: client configuration, rebalance events, dead letters.
//! - [`pipeline`]: the streaming loop (consume, window, score, alert, write, commit).
//! - [`rekey`]: the opt-in stage that re-keys readings by machine (`kafka.rekey`).
//! - [`scoring`]: the slot the serving model is hot-swapped in, and how windows are scored.
//! - [`model_store`]: versioned model folders: list, next version, save, load, newest valid.
//! - [`trainer`]: background retraining and the validation gate.
//! - [`alerter`]: alert hysteresis and deterministic ids (pure).
//! - [`output`]: the rows of the Parquet tables (scores, alerts, labels).
//! - [`telemetry`]: metric names, typed events (metric, log line, progress), `/metrics`, `/healthz`.
//!
//! Neighbours: `linewatch-window` (decode, windows, Arrow features), `linewatch-models`
//! (RePU score and isotonic models), `linewatch-sink` (atomic Parquet files),
//! `linewatch-sim` (the line simulator); `linewatch-commands` (demo, backtest, train) and the
//! `linewatch` binary call into this crate.

pub mod alerter;
pub mod config;
pub mod kafka;
pub mod model_store;
pub mod output;
pub mod pipeline;
pub mod preflight;
pub mod registry;
pub mod rekey;
pub mod scoring;
pub mod telemetry;
pub mod trainer;
