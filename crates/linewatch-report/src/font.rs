//! The embedded font. With plotters' `ab_glyph` text backend there are no system fonts:
//! DejaVu Sans (Bitstream Vera licence, see `assets/DejaVu-LICENSE`) is compiled in and
//! registered as `sans-serif` once per process.

use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::error::ReportError;

/// DejaVu Sans 2.37, from Debian's `fonts-dejavu-core`.
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family name charts use.
pub(crate) const FAMILY: &str = "sans-serif";

/// Registers the embedded font (idempotent, thread-safe).
pub(crate) fn ensure_registered() -> Result<(), ReportError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS)
                .map_err(|_| "DejaVuSans.ttf is not a valid font".to_owned())
        })
        .clone()
        .map_err(ReportError::Font)
}
