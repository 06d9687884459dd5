//! One module per group of subcommands: their arguments (clap) and what each runs. The
//! libraries do the work; these functions load settings, call them and print.

pub(crate) mod bench;
pub(crate) mod offline;
pub(crate) mod stream;
