//! The test suite in one binary (linking libtorch and egui once, not per file). Seeded runs,
//! which need libtorch's process-wide generator to themselves, are in `tests/seeded_runs.rs`.

mod common;

mod analysis;
mod architecture;
mod cli;
mod data;
mod hostile;
mod import;
mod infer;
mod lesion;
mod model;
mod probe;
mod record;
mod recording_process;
mod stream;
mod viewer;
