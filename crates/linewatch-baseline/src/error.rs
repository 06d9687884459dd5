//! The one error type of this crate.

/// Everything that can go wrong when configuring, fitting, scoring or loading a
/// [`PcaMonitor`](crate::PcaMonitor).
///
/// Row and column indices are 0-based: `row` counts rows of the slice passed to the call,
/// `column` counts the `d` values of a row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BaselineError {
    /// A [`PcaConfig`](crate::PcaConfig) field is outside its range (both must lie in the open
    /// interval (0, 1); NaN is outside).
    #[error("pca config: `{field}` must lie in (0, 1), got {value}")]
    InvalidConfig {
        /// The field name as spelled in `PcaConfig`.
        field: &'static str,
        /// The offending value.
        value: f64,
    },

    /// A cell is +inf or -inf. (NaN is not an error: it marks a missing cell and is imputed.)
    #[error(
        "row {row}, column {column}: {value} is not a usable value (only finite values, or NaN for a missing cell)"
    )]
    InvalidInput {
        /// Row index within the slice passed to the call.
        row: usize,
        /// Column index within the row.
        column: usize,
        /// The offending value (+inf or -inf).
        value: f64,
    },

    /// The flat slice does not split into rows of `d` columns, or `d` is 0.
    #[error("{len} values do not form rows of {d} columns")]
    BadShape {
        /// Length of the flat slice.
        len: usize,
        /// The number of columns expected (the monitor's dimension when scoring).
        d: usize,
    },

    /// Every cell of a training column is NaN, so it has no mean to impute with.
    #[error("column {column} has no finite value in the training rows")]
    EmptyColumn {
        /// The column index.
        column: usize,
    },

    /// Too few training rows for the given dimension: `fit` needs `n >= max(3, d + 2)` rows,
    /// so that the correlation matrix can have full rank and the F limit of T² has at least
    /// two denominator degrees of freedom whatever number of components is kept.
    #[error("{rows} training rows for {d} columns; at least {needed} are needed")]
    InsufficientData {
        /// Rows supplied.
        rows: usize,
        /// Columns per row.
        d: usize,
        /// Rows required.
        needed: usize,
    },

    /// The data or a stored monitor cannot give a usable model: every column constant, an
    /// eigendecomposition that did not converge, a control limit that is not finite, or a
    /// deserialized monitor whose parts do not fit together.
    #[error("pca monitor: {0}")]
    Degenerate(String),
}
