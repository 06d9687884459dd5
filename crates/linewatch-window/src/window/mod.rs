//! Per-machine event-time windows with watermarks, lateness and idle eviction.
//!
//! # Semantics
//!
//! * Windows are `[start, start + size)` with `start` a multiple of `slide`
//!   (aligned to the epoch). A reading at `ts` belongs to the `size / slide`
//!   windows whose range holds `ts`; a reading at exactly `end` belongs to the
//!   next window.
//! * State is kept per machine, keyed by `(line, machine)`. The machine's
//!   watermark is the highest event time it has sent minus
//!   `allowed_lateness_ms`. Each machine keeps a *frontier*: every window with
//!   `end <= frontier` is closed. Normally the frontier is the watermark; a
//!   flush moves it further (see below). It never moves back.
//! * A reading is classified against the frontier before its own timestamp
//!   advances the watermark. Windows of the reading that are closed are
//!   skipped: if all of them are closed the reading is *late* (counted,
//!   folded nowhere); if only some are (hopping windows) it is *partially
//!   late* and goes into the open ones only.
//! * Stream time is the highest event time seen over all machines.
//!   [`Windower::flush_idle`] closes every open window of each machine whose
//!   latest event time is more than `idle_timeout_ms` behind stream time and
//!   evicts its state. The caller decides how often to call it (say once per
//!   poll batch); state stays bounded as long as it does.
//! * A flushed machine's frontier becomes the end of the last window that
//!   holds its latest reading, so nothing is ever folded into a window that
//!   was already emitted. Evicted machines leave a *tombstone* (key and
//!   frontier, a few dozen bytes) so that a machine coming back after eviction
//!   treats readings older than what was closed as late. At most
//!   `max_tombstones` are kept, oldest dropped first; a machine whose
//!   tombstone was dropped starts from scratch.
//! * Closed windows of one machine are emitted in order of window end.
//!   Across machines, windows appear in the order they close; flushes visit
//!   machines sorted by key, so output is deterministic for a given input.
//!
//! # Layout
//!
//! * `assign.rs`: which windows hold a timestamp (the one place for that rule).
//! * `config.rs`: [`WindowConfig`], its limits and [`ConfigError`].
//! * `keys.rs`: [`ChannelSet`] and [`MachineKey`].
//! * `machine.rs`: per-machine state (open windows, frontier, tombstones).
//! * `windower.rs`: the [`Windower`] driving them.
//! * `outcome.rs`: what it hands back ([`ClosedWindow`], [`PushOutcome`], ...).

mod assign;
mod config;
mod keys;
mod machine;
mod outcome;
mod windower;

pub use assign::{window_start, windows_containing};
pub use config::{
    ConfigError, MAX_ABS_TS_MS, MAX_DURATION_MS, MAX_WINDOWS_PER_READING, WindowConfig,
};
pub(crate) use keys::KeyRef;
pub use keys::{ChannelSet, MachineKey};
pub use outcome::{CloseReason, ClosedWindow, Lateness, PushError, PushOutcome, WindowStats};
pub use windower::Windower;
