//! The classical baseline of linewatch: a PCA process monitor with Hotelling's T² and the
//! squared prediction error (SPE, or Q) and their control limits.
//!
//! Every backtest shows this monitor beside the neural score model, so users can see on their
//! own data whether the neural model beats the textbook method. `linewatch-runtime`'s
//! backtest fits it on the same normal windows the score model trains on (the feature rows
//! built by `linewatch-window`) and scores the same rows; this crate only does the numbers:
//! no I/O, no Kafka, no candle.
//!
//! # Method
//!
//! [`PcaMonitor::fit`] autoscales the training rows (column mean, sample standard deviation),
//! takes the eigendecomposition of their correlation matrix and keeps the `k` leading
//! principal components that reach [`PcaConfig::explained_variance`] of the total variance.
//! [`PcaMonitor::score`] gives each row two statistics in autoscaled units:
//!
//! - `T² = Σ_{a<k} t_a² / λ_a` with scores `t = Pᵀ z`: distance inside the model plane;
//! - `SPE = ‖z − P Pᵀ z‖²`: distance from the plane (a broken correlation).
//!
//! A row alarms ([`PcaScore::alarm`]) when either exceeds its limit at
//! [`PcaConfig::confidence`]: the F-distribution limit of T² for a new observation (Tracy,
//! Young & Mason 1992; MacGregor & Kourti 1995) and the Jackson & Mudholkar (1979) limit of
//! SPE, with Box's (1954) approximation as fallback; see [`PcaMonitor::t2_limit`] and
//! [`PcaMonitor::spe_limit`] for formulas and references.
//!
//! Rows are row-major `&[f64]` slices with `d` columns. NaN marks a missing cell: imputed with
//! the column mean in training and at the training mean when scoring (and counted);
//! ±inf is an error. A fitted monitor serializes with serde (e.g. to JSON).
//!
//! # Example
//!
//! ```
//! use linewatch_baseline::{PcaConfig, PcaMonitor};
//!
//! # fn main() -> Result<(), linewatch_baseline::BaselineError> {
//! // Two correlated sensors, six rows of normal operation (row-major, d = 2).
//! let train = [1.0, 2.1, 2.0, 3.9, 3.0, 6.2, 4.0, 7.9, 5.0, 10.1, 6.0, 11.8];
//! let monitor = PcaMonitor::fit(&train, 2, &PcaConfig::default())?;
//! assert_eq!(monitor.components(), 1);
//!
//! // The second row breaks the correlation: its SPE is far above the limit.
//! let scores = monitor.score(&[3.5, 7.0, 3.5, 1.0])?;
//! assert!(!scores[0].alarm(&monitor));
//! assert!(scores[1].alarm(&monitor));
//! # Ok(())
//! # }
//! ```

mod error;
mod pca;

pub use error::BaselineError;
pub use pca::{PcaConfig, PcaMonitor, PcaScore, SpeLimitMethod};
