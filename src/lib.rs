//! gatescope: train highway networks with libtorch and see what their gates do.
//!
//! Data flows one way: `data` → `model` → `train` → (CLI: `cli`, `commands`).
//! See ARCHITECTURE.md for the map and the invariants.

pub mod arch;
pub mod bench;
pub mod capture;
pub mod card;
pub mod cli;
pub mod colormap;
pub mod commands;
pub mod data;
pub mod export;
pub mod lesion;
pub mod model;
pub mod probe;
pub mod record;
pub mod report;
pub mod snapshot;
pub mod sweep;
pub mod stream;
pub mod train;
pub mod view;
