//! # linewatch-models
//!
//! RePU neural models of linewatch (see `docs/architecture.md`, "The method"): a pure library,
//! no Kafka, file I/O only for checkpoints.
//!
//! * [`mlp`]: RePU networks `sigma_p(x) = max(0,x)^p` with exact input derivatives by
//!   forward-mode tangent propagation written as ordinary candle ops (first-order backprop
//!   trains losses that contain derivatives).
//! * [`score`]: the score model `s(x) ~ grad log p(x)` of normal windows: a Gaussian part
//!   with a shrinkage covariance ([`gaussian`]) plus a RePU residual trained by implicit (or
//!   sliced) score matching, kept only when it wins on held-out data; per-row anomaly score
//!   (the log-density drop from the training centre), its exact per-feature split, and a
//!   threshold and conformal p-values calibrated on contiguous blocks the model did not fit.
//! * [`isotonic`]: PDIR, a RePU net `g` with defect probability `sigmoid(g)` that is monotone in
//!   declared inputs (derivative penalty), and [`pava`], the 1-D pool-adjacent-violators
//!   baseline and fallback.
//! * [`checkpoint`]: `model.safetensors` + `model.json` in a version directory.
//! * [`device`]: `auto | cpu | cuda | cuda:N`.
//!
//! ## Neighbours
//!
//! `linewatch-window` produces the feature rows (row-major `f64` here, with feature names);
//! `linewatch-runtime` scores them with a shared `Arc` snapshot of these models (all scoring
//! takes `&self`; models are cheap to clone and `Send + Sync`), runs training off the async
//! threads and hot-swaps checkpoints; `linewatch-bench` measures them (`linewatch bench models`).

// Numerical code indexes several arrays with one loop variable; ranges read clearer.
#![allow(clippy::needless_range_loop)]

pub mod checkpoint;
pub mod device;
pub mod error;
pub mod gaussian;
pub mod isotonic;
pub mod mlp;
pub mod pava;
pub mod quadrature;
pub mod rng;
pub mod score;
pub mod standardize;
pub mod train;

pub use checkpoint::{AnyModel, ModelKind, ModelMeta, TrainingInfo, load_any, read_meta};
pub use device::DeviceSpec;
pub use error::{CheckpointError, ModelError, Result};
pub use gaussian::Whitener;
pub use isotonic::{IsoTarget, IsotonicConfig, IsotonicModel, Monotone, MonotonicityCheck};
pub use mlp::{Init, Mlp, MlpConfig};
pub use pava::{Direction, Interpolation, Pava};
pub use score::{ResidualMode, ScoreBatch, ScoreConfig, ScoreModel, Shrinkage, TraceEstimator};
pub use standardize::Standardizer;
pub use train::{LrSchedule, Precision, TrainConfig, TrainReport};
