//! Errors of the simulator crate.

use thiserror::Error;

/// Everything that can go wrong in this crate.
#[derive(Debug, Error)]
pub enum SimError {
    /// A configuration value is out of range or inconsistent with another one.
    #[error("invalid simulator config: `{field}`: {reason}")]
    Config {
        /// Dotted path of the offending field, e.g. `faults.severity_max`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A line of a ground-truth JSON Lines file could not be parsed.
    #[error("fault record on line {line}: {source}")]
    FaultJsonl {
        /// 1-based line number.
        line: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

impl SimError {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Config {
            field,
            reason: reason.into(),
        }
    }
}
