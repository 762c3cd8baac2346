//! The command line, all in one place: clap's flags (`args`), terminal progress
//! (`progress`) and one thin function per subcommand (`commands`). Below this module nothing
//! knows clap or indicatif: flags become the library's plain option structs here.

pub mod args;
pub mod bridge;
pub mod commands;
pub mod progress;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// Parses the command line and runs the subcommand.
pub fn run() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::View(a) => commands::view_cmd(a),
        Command::Train(a) => commands::train_cmd(a),
        Command::Eval(a) => commands::eval_cmd(a),
        Command::Bench(a) => commands::bench_cmd(a),
        Command::Probe(a) => commands::probe_cmd(a),
        Command::Info(a) => commands::info_cmd(a),
        Command::Lesion(a) => commands::lesion_cmd(a),
        Command::Sweep(a) => commands::sweep_cmd(a),
        Command::Ablate(a) => commands::ablate_cmd(a),
        Command::Export(a) => commands::export_cmd(a),
        Command::Collect(a) => bridge::collect_cmd(a),
        Command::Dump(a) => bridge::dump_cmd(a),
        Command::ExportTorch(a) => bridge::export_torch_cmd(a),
    }
}
