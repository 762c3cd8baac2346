//! Runs the parsed command line: each subcommand is one function here.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{BenchArgs, Cli, Command, EvalArgs, TrainArgs};
use crate::model::{file, ForwardOpts, Model};
use crate::train::{self, BatchStats, EpochStats, Observer, Tensors};
use crate::{bench, data};

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(a) => train_cmd(a),
        Command::Eval(a) => eval_cmd(a),
        Command::Bench(a) => bench_cmd(a),
    }
}

/// Sets a flag on the first Ctrl-C; a second one exits at once.
fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || {
        if s.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this batch (Ctrl-C again to abort without saving)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// indicatif bars: one for epochs, one for the batches of the current epoch.
struct Bars {
    epochs: ProgressBar,
    batches: ProgressBar,
    quiet: bool,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        let multi = MultiProgress::new();
        if quiet || !std::io::stderr().is_terminal() {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let epochs = multi.add(ProgressBar::new(0));
        epochs.set_style(ProgressStyle::with_template("epoch {pos:>3}/{len} {bar:30.cyan/blue} {elapsed_precise} (eta {eta}) {msg}").expect("template"));
        let batches = multi.add(ProgressBar::new(0));
        batches.set_style(ProgressStyle::with_template("batch {pos:>5}/{len} {bar:30.green/white} {msg}").expect("template"));
        Bars { epochs, batches, quiet: quiet || !std::io::stderr().is_terminal() }
    }
}

impl Observer for Bars {
    fn on_start(&mut self, epochs: usize, batches: usize, model: &Model) -> anyhow::Result<()> {
        self.epochs.set_length(epochs as u64);
        self.batches.set_length(batches as u64);
        let a = &model.arch;
        eprintln!(
            "training {:?} depth {} width {} ({} parameters)",
            a.family, a.depth, a.width, model.num_params()
        );
        Ok(())
    }
    fn on_batch(&mut self, s: &BatchStats, _: &Model) -> anyhow::Result<()> {
        self.batches.set_position(s.batch as u64 + 1);
        if s.step % 10 == 0 {
            self.batches.set_message(format!(
                "loss {:.4}  acc {:.3}  lr {:.4}  {:.0} samples/s",
                s.loss, s.accuracy, s.lr, s.samples_per_s
            ));
        }
        Ok(())
    }
    fn on_epoch(&mut self, e: &EpochStats, _: &Model) -> anyhow::Result<()> {
        let line = format!(
            "train loss {:.4} acc {:.4} | test acc {:.4}",
            e.train_loss, e.train_accuracy, e.test_accuracy
        );
        if self.quiet {
            eprintln!("epoch {:>3}: {line}", e.epoch + 1);
        }
        self.epochs.set_position(e.epoch as u64 + 1);
        self.epochs.set_message(line);
        self.batches.reset();
        Ok(())
    }
    fn on_finish(&mut self) {
        self.batches.finish_and_clear();
        self.epochs.finish();
        eprintln!("evaluating on the full train and test sets");
    }
}

fn train_cmd(a: TrainArgs) -> anyhow::Result<ExitCode> {
    a.config.validate()?;
    let data = data::load(a.config.dataset, a.config.data_dir.as_deref())?;
    let stop = stop_flag()?;
    let mut bars = Bars::new(a.quiet);
    let out = train::train(&a.config, &data, &stop, &mut bars)?;
    file::save(&out.model, &out.card, &a.out)?;
    let m = out.card.metrics.as_ref().expect("trainer sets metrics");
    println!(
        "{}: train accuracy {:.4}, test accuracy {:.4} (train loss {:.4}, test loss {:.4}) after {} steps in {:.1} s{}",
        a.out.display(),
        m.train_accuracy,
        m.test_accuracy,
        m.train_loss,
        m.test_loss,
        m.steps,
        m.seconds,
        if m.interrupted { " (interrupted)" } else { "" }
    );
    Ok(if m.interrupted { ExitCode::from(130) } else { ExitCode::SUCCESS })
}

/// Loads a model file and the dataset its card names.
pub fn open_model(path: &std::path::Path, data_dir: Option<&std::path::Path>) -> anyhow::Result<(Model, file::ModelCard, data::Dataset)> {
    let (model, card) = file::load(path)?;
    let data = data::load(card.dataset.name, data_dir)?;
    anyhow::ensure!(
        data.input_dim() == card.arch.input_dim && data.num_classes() == card.arch.classes,
        "{}: the model expects {} inputs and {} classes, the dataset has {} and {}",
        path.display(),
        card.arch.input_dim,
        card.arch.classes,
        data.input_dim(),
        data.num_classes()
    );
    Ok((model, card, data))
}

fn eval_cmd(a: EvalArgs) -> anyhow::Result<ExitCode> {
    tch::set_num_threads(a.threads.max(1) as i32);
    let (model, _card, data) = open_model(&a.model, a.data_dir.as_deref())?;
    let (tr, te) = (Tensors::train(&data), Tensors::test(&data));
    let (train_loss, train_accuracy) = model.evaluate(&tr.x, &tr.y, ForwardOpts::default());
    let (test_loss, test_accuracy) = model.evaluate(&te.x, &te.y, ForwardOpts::default());
    if a.json {
        let v = serde_json::json!({
            "train_accuracy": train_accuracy, "test_accuracy": test_accuracy,
            "train_loss": train_loss, "test_loss": test_loss,
        });
        println!("{v}");
    } else {
        println!("train accuracy {train_accuracy:.4}  loss {train_loss:.4}");
        println!("test  accuracy {test_accuracy:.4}  loss {test_loss:.4}");
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_cmd(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let r = bench::run(&a)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("{} | batch {} | {} threads | best of {} × {} steps", r.model, r.batch_size, r.threads, r.rounds, r.steps);
        println!("fast path (fused H|T, hand-written backward): {:>8.0} samples/s", r.fast_samples_per_s);
        println!("autograd path (same parameters):               {:>8.0} samples/s", r.autograd_samples_per_s);
        println!("fast / autograd: {:.2}×", r.fast_over_autograd);
        if let (Some(rf), Some(x)) = (r.reference_samples_per_s, r.fast_over_reference) {
            println!("reference: {rf:.0} samples/s; fast / reference: {x:.2}×");
        }
    }
    Ok(ExitCode::SUCCESS)
}
