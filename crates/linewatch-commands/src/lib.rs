//! linewatch's commands apart from the streaming runtime (`linewatch-runtime`), which they
//! use as a library:
//!
//! - [`demo`]: `linewatch simulate` (the simulator onto Kafka) and `linewatch demo` (the whole
//!   pipeline on librdkafka's in-process mock cluster, with a summary against the faults);
//! - [`backtest`]: windowing, models and alerts over labelled CSV files, no Kafka, with a PCA
//!   baseline beside the model;
//! - [`train`]: `linewatch train`, one retraining job from the Parquet history.

pub mod backtest;
pub mod demo;
pub mod train;
