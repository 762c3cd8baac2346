//! Progress on the terminal (indicatif): the trainer's observer, a study's bars, a plain bar
//! for lesioning and the bench. Hidden when stderr is not a terminal. The library reports
//! progress through observers and callbacks; only this module draws it.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::model::Model;
use crate::report::RunResult;
use crate::sweep::StudyProgress;
use crate::train::{BatchStats, EpochStats, Observer};

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("a valid progress template")
}

/// A progress bar on stderr (hidden when stderr is not a terminal, or when `hidden`).
pub fn bar(len: u64, what: &str, hidden: bool) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if hidden || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(style(&format!("{what} {{bar:30.cyan/blue}} {{pos}}/{{len}} {{elapsed_precise}} (eta {{eta}}) {{msg}}")));
    bar
}

/// A `progress(done, total)` callback that moves `bar`.
pub fn counter(bar: &ProgressBar) -> impl FnMut(usize, usize) + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}

/// A training run's bars: one for epochs, one for the batches of the current epoch.
pub struct TrainBars {
    epochs: ProgressBar,
    batches: ProgressBar,
    quiet: bool,
}

impl TrainBars {
    pub fn new(quiet: bool) -> Self {
        let multi = MultiProgress::new();
        let quiet = quiet || !std::io::stderr().is_terminal();
        if quiet {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let epochs = multi.add(ProgressBar::new(0));
        epochs.set_style(style("epoch {pos:>3}/{len} {bar:30.cyan/blue} {elapsed_precise} (eta {eta}) {msg}"));
        let batches = multi.add(ProgressBar::new(0));
        batches.set_style(style("batch {pos:>5}/{len} {bar:30.green/white} {msg}"));
        TrainBars { epochs, batches, quiet }
    }
}

impl Observer for TrainBars {
    fn on_start(&mut self, epochs: usize, batches: usize, model: &Model) -> anyhow::Result<()> {
        self.epochs.set_length(epochs as u64);
        self.batches.set_length(batches as u64);
        let a = &model.arch;
        eprintln!("training a {} net, depth {} width {} ({} parameters)", a.family.name(), a.depth, a.width, model.num_params());
        Ok(())
    }
    fn on_batch(&mut self, s: &BatchStats, _: &Model) -> anyhow::Result<()> {
        self.batches.set_position(s.batch as u64 + 1);
        if s.step.is_multiple_of(10) {
            self.batches
                .set_message(format!("loss {:.4}  acc {:.3}  lr {:.4}  {:.0} samples/s", s.loss, s.accuracy, s.lr, s.samples_per_s));
        }
        Ok(())
    }
    fn on_epoch(&mut self, e: &EpochStats, _: &Model) -> anyhow::Result<()> {
        let line = format!("train loss {:.4} acc {:.4} | test acc {:.4}", e.train_loss, e.train_accuracy, e.test_accuracy);
        if self.quiet {
            eprintln!("epoch {:>3}: {line}", e.epoch + 1);
        }
        self.epochs.set_position(e.epoch as u64 + 1);
        self.epochs.set_message(line);
        self.batches.reset();
        Ok(())
    }
    fn on_finish(&mut self, _: &Model, _: usize, _: f64) -> anyhow::Result<()> {
        self.batches.finish_and_clear();
        self.epochs.finish();
        eprintln!("evaluating on the full train and test sets");
        Ok(())
    }
}

/// A study's bars: one overall, one per run in progress.
pub struct StudyBars {
    multi: MultiProgress,
    pub overall: ProgressBar,
    runs: Mutex<HashMap<(String, usize), ProgressBar>>,
}

impl StudyBars {
    pub fn new(variants: usize) -> Self {
        let multi = MultiProgress::new();
        if !std::io::stderr().is_terminal() {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let overall = multi.add(ProgressBar::new(variants as u64));
        overall.set_style(style("runs {pos}/{len} {bar:30.cyan/blue} {elapsed_precise} (eta {eta})"));
        StudyBars { multi, overall, runs: Default::default() }
    }
}

fn run_name(variant: &str, trial: usize) -> String {
    if trial > 0 {
        format!("{variant} (search {trial})")
    } else {
        variant.to_string()
    }
}

impl StudyProgress for StudyBars {
    fn started(&self, variant: &str, trial: usize, epochs: usize) {
        let bar = self.multi.add(ProgressBar::new(epochs as u64));
        bar.set_style(style("  {prefix:32} epoch {pos}/{len} {bar:20.green/white} {msg}"));
        bar.set_prefix(run_name(variant, trial));
        self.runs.lock().expect("bars").insert((variant.to_string(), trial), bar);
    }
    fn epoch(&self, variant: &str, trial: usize, e: &EpochStats) {
        let runs = self.runs.lock().expect("bars");
        if let Some(bar) = runs.get(&(variant.to_string(), trial)) {
            bar.set_position(e.epoch as u64 + 1);
            bar.set_message(format!("train loss {:.4}", e.train_loss));
            if bar.position() >= bar.length().unwrap_or(0) {
                bar.finish_and_clear();
            }
        }
        if self.multi.is_hidden() {
            eprintln!("{}: epoch {} train loss {:.4}", run_name(variant, trial), e.epoch + 1, e.train_loss);
        }
    }
    fn finished(&self, r: &RunResult) {
        if let Some(bar) = self.runs.lock().expect("bars").remove(&(r.name.clone(), 0)) {
            bar.finish_and_clear();
        }
        self.overall.inc(1);
        let line = format!(
            "{:<32} train loss {:.4}  test acc {:.4}  ({:.1} s){}",
            r.name,
            r.train.loss,
            r.test.accuracy,
            r.seconds,
            if r.diverged { "  diverged" } else { "" }
        );
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }
}
