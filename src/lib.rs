//! gatescope: train highway networks with libtorch and see what their gates do.
//!
//! Data flows one way: `data` → `model` → `train` → `capture`/`probe` → `snapshot` →
//! `record`/`stream` → `view`; `session` holds the services every front-end shares, and `cli`
//! is the command line on top. See ARCHITECTURE.md for the map and the invariants.

pub mod animate;
pub mod arch;
pub mod bench;
pub mod capture;
pub mod card;
pub mod cli;
pub mod collect;
pub mod colormap;
pub mod data;
pub mod export;
pub mod figures;
pub mod lesion;
pub mod model;
pub mod probe;
pub mod recipe;
pub mod record;
pub mod report;
pub mod session;
pub mod snapshot;
pub mod stream;
pub mod sweep;
pub mod train;
pub mod view;
