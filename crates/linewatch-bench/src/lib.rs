//! linewatch's benchmarks, apart from the libraries they measure (their public APIs carry no
//! benchmark code):
//!
//! - [`models`]: `linewatch bench models`, the score and isotonic models against known
//!   densities and functions, and their speed;
//! - [`detect`]: `linewatch bench detect`, the backtests of a data folder (TEP, NAB) for the
//!   model and the PCA baseline as one JSON object;
//! - [`pipeline`]: `linewatch bench pipeline`, the whole path of one replica without Kafka.

pub mod detect;
pub mod models;
pub mod pipeline;
