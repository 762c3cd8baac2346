//! Runs the parsed command line: each subcommand is one function here.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::capture::{Both, Capture, Sinks};
use crate::cli::{AblateArgs, BenchArgs, ExportArgs, Cli, Command, EvalArgs, InfoArgs, LesionArgs, ProbeArgs, StudyArgs, SweepArgs, TrainArgs, ViewArgs};
use crate::report::{AblationReport, Report, RunResult, SweepReport};
use crate::sweep::{self, StudyProgress};
use crate::probe::{self, ProbeSet};
use crate::record;
use crate::snapshot::Message;
use crate::model::{file, ForwardOpts, Model};
use crate::train::{self, BatchStats, EpochStats, Observer, Tensors};
use crate::{bench, data};

pub fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::View(a) => view_cmd(a),
        Command::Train(a) => train_cmd(a),
        Command::Eval(a) => eval_cmd(a),
        Command::Bench(a) => bench_cmd(a),
        Command::Probe(a) => probe_cmd(a),
        Command::Info(a) => info_cmd(a),
        Command::Lesion(a) => lesion_cmd(a),
        Command::Sweep(a) => sweep_cmd(a),
        Command::Ablate(a) => ablate_cmd(a),
        Command::Export(a) => export_cmd(a),
    }
}

/// The recording of the default run, committed under recordings/.
pub fn default_recording() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/default.gsrec")
}

fn view_cmd(a: ViewArgs) -> anyhow::Result<ExitCode> {
    let path = a.path.unwrap_or_else(default_recording);
    anyhow::ensure!(path.exists(), "{}: no such file", path.display());
    if let Some(addr) = &a.listen {
        if !is_loopback(addr) {
            eprintln!("note: listening on {addr}, which other machines may reach");
        }
    }
    crate::view::run(crate::view::ViewOptions { path: Some(path), listen: a.listen })?;
    Ok(ExitCode::SUCCESS)
}

/// True if every address `addr` names is a loopback address.
fn is_loopback(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().map(|mut it| it.all(|a| a.ip().is_loopback())).unwrap_or(true)
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
    fn on_finish(&mut self, _: &Model, _: usize, _: f64) -> anyhow::Result<()> {
        self.batches.finish_and_clear();
        self.epochs.finish();
        eprintln!("evaluating on the full train and test sets");
        Ok(())
    }
}

fn train_cmd(a: TrainArgs) -> anyhow::Result<ExitCode> {
    a.config.validate()?;
    let data = data::load(a.config.dataset, a.config.data_dir.as_deref())?;
    let stop = stop_flag()?;
    let mut bars = Bars::new(a.quiet);
    let c = &a.capture;
    let out = if c.record.is_some() || c.connect.is_some() {
        let probe = ProbeSet::new(&data, c.probe, c.samples);
        let header = probe.header(train::initial_card(&a.config, &data)?, "gatescope train");
        let sinks = Sinks::open(&header, c.record.as_deref(), c.connect.as_deref(), None)?;
        let mut capture = Capture::new(probe, c.every, sinks);
        let out = train::train(&a.config, &data, &stop, &mut Both(&mut bars, &mut capture));
        let dropped = capture.sinks.dropped();
        let (n, secs) = (capture.snapshots, capture.seconds);
        capture.sinks.finish();
        let out = out?;
        if let Some(p) = &c.record {
            eprintln!("recorded {n} snapshots to {} ({secs:.1} s probing)", p.display());
        }
        if c.connect.is_some() {
            eprintln!("streamed {n} snapshots ({dropped} dropped for a slow or absent viewer)");
        }
        out
    } else {
        train::train(&a.config, &data, &stop, &mut bars)?
    };
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
    let model = model.to_device(a.device.resolve()?);
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

fn probe_cmd(a: ProbeArgs) -> anyhow::Result<ExitCode> {
    tch::set_num_threads(a.threads.max(1) as i32);
    let (model, card, data) = open_model(&a.model, a.data_dir.as_deref())?;
    let model = model.to_device(a.device.resolve()?);
    let probe = ProbeSet::new(&data, a.probe, a.samples);
    let steps = card.metrics.as_ref().map_or(0, |m| m.steps);
    let epochs = card.metrics.as_ref().map_or(0.0, |m| m.epochs_completed as f64);
    let (train_loss, train_accuracy) = card.metrics.as_ref().map_or((f64::NAN, f64::NAN), |m| (m.train_loss, m.train_accuracy));
    let progress = probe::Progress { step: steps as u64, epoch: epochs, train_loss, train_accuracy, test_accuracy: None };
    let header = probe.header(card, format!("model file {}", a.model.display()));
    let t = std::time::Instant::now();
    let snap = probe::snapshot(&model, &probe, progress, None);
    let probe_s = t.elapsed().as_secs_f64();
    let mut w = record::Writer::create(&a.out, &header)?;
    w.write(&Message::Snapshot(Box::new(snap)))?;
    println!(
        "{}: one snapshot of {} over {} probe examples (probe pass {:.0} ms)",
        a.out.display(),
        a.model.display(),
        probe.len(),
        probe_s * 1e3
    );
    Ok(ExitCode::SUCCESS)
}

fn info_cmd(a: InfoArgs) -> anyhow::Result<ExitCode> {
    let t = std::time::Instant::now();
    let bytes = std::fs::read(&a.path).with_context(|| format!("reading {}", a.path.display()))?;
    if bytes.starts_with(record::MAGIC) {
        let rec = record::read_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", a.path.display()))?;
        let decode_ms = t.elapsed().as_secs_f64() * 1e3;
        let steps: Vec<u64> = rec.snapshots.iter().map(|s| s.step).collect();
        let last = rec.snapshots.last();
        if a.json {
            let v = serde_json::json!({
                "kind": "recording",
                "bytes": bytes.len(),
                "decode_ms": decode_ms,
                "snapshots": rec.snapshots.len(),
                "steps": steps,
                "torn_tail_bytes": rec.torn_tail.map(|t| t.bytes),
                "card": rec.header.card,
                "probe_size": rec.header.probe_size,
                "samples": rec.header.num_samples(),
                "last_test_accuracy": last.map(|s| s.test_accuracy).filter(|v| v.is_finite()),
            });
            println!("{v}");
        } else {
            let arch = &rec.header.card.arch;
            println!("recording of a {:?} net, depth {}, width {}, on {}", arch.family, arch.depth, arch.width, rec.header.card.dataset.name.name());
            println!("{} snapshots, steps {:?}..{:?}; probe set {} examples, {} samples", rec.snapshots.len(), steps.first(), steps.last(), rec.header.probe_size, rec.header.num_samples());
            println!("{} bytes, read and decoded in {decode_ms:.1} ms", bytes.len());
            if let Some(s) = last {
                println!("last snapshot: step {}, test accuracy {:.4}", s.step, s.test_accuracy);
            }
            if let Some(t) = rec.torn_tail {
                println!("{t}");
            }
        }
    } else {
        let card = file::read_card(&a.path)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&card)?);
        } else {
            println!("model: {:?} net, depth {}, width {}, {:?}, gate bias {}", card.arch.family, card.arch.depth, card.arch.width, card.arch.activation, card.arch.gate_bias);
            println!("dataset: {} ({} classes)", card.dataset.name.name(), card.dataset.class_names.len());
            if let Some(m) = &card.metrics {
                println!("train accuracy {:.4}, test accuracy {:.4} after {} steps{}", m.train_accuracy, m.test_accuracy, m.steps, if m.interrupted { " (interrupted)" } else { "" });
            }
        }
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
        if let Some(c) = &r.recording {
            println!(
                "recording ({} epochs, every {}, probe {} + {} samples): {:.0} samples/s without, {:.0} with: {:.1} % overhead; {} snapshots, {} bytes",
                c.epochs, c.cadence, c.probe_examples, c.samples, c.plain_samples_per_s, c.recording_samples_per_s, c.overhead_percent, c.snapshots, c.file_bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(ProgressStyle::with_template(&format!("{what} {{bar:30.cyan/blue}} {{pos}}/{{len}} {{elapsed_precise}} (eta {{eta}}) {{msg}}")).expect("template"));
    bar
}

fn lesion_cmd(a: LesionArgs) -> anyhow::Result<ExitCode> {
    tch::set_num_threads(a.threads.max(1) as i32);
    let (model, card, data) = open_model(&a.model, a.data_dir.as_deref())?;
    let model = model.to_device(a.device.resolve()?);
    crate::lesion::lesionable_layers(&model).with_context(|| format!("{}", a.model.display()))?;
    let (tr, te) = (Tensors::train(&data), Tensors::test(&data));
    let bar = progress_bar(0, "lesioning");
    let report = crate::lesion::lesion_all(&model, &a.model.display().to_string(), card.dataset.name.name(), &tr, &te, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let report = Report::Lesion(report);
    if let Some(out) = &a.out {
        write_json(out, &report)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Report::Lesion(report) = report else { unreachable!() };
    let (bt, be) = (report.baseline_train, report.baseline_test);
    println!(
        "{}: {} layers lesioned on {} training examples in {:.1} s, and on {} test examples ({:.1} s in all)",
        report.model, report.layers.len(), report.train_examples, report.train_seconds, report.test_examples, report.seconds
    );
    println!("layer  train error  test error  train loss");
    println!(" none  {:>10.4}  {:>10.4}  {:>10.4}", bt.error(), be.error(), bt.loss);
    for r in &report.layers {
        println!("{:>5}  {:>10.4}  {:>10.4}  {:>10.4}", r.layer, r.train.error(), r.test.error(), r.train.loss);
    }
    if let Some(w) = report.worst() {
        println!("most harmful lesion: layer {} (train error {:.4} against {:.4})", w.layer, w.train.error(), bt.error());
    }
    if let Some(out) = &a.out {
        println!("report written to {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a report as pretty JSON, creating the folder.
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

/// The shared recipe of a study's runs, and the dataset.
fn study_setup(a: &StudyArgs) -> anyhow::Result<(train::TrainConfig, data::Dataset, sweep::Plan)> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let jobs = a.jobs.unwrap_or((cores / 2).max(1)).max(1);
    let base = train::TrainConfig {
        dataset: a.dataset,
        data_dir: a.data_dir.clone(),
        epochs: a.epochs,
        lr: a.lr,
        momentum: a.momentum,
        weight_decay: a.weight_decay,
        gate_bias: Some(a.gate_bias),
        activation: a.activation,
        batch_size: a.batch_size,
        seed: a.seed,
        threads: (cores / jobs).max(1),
        ..train::TrainConfig::default_recipe()
    };
    base.validate()?;
    anyhow::ensure!(a.search == 0 || a.search_epochs >= 1, "--search-epochs must be at least 1");
    anyhow::ensure!(a.search == 0 || a.search_examples >= a.batch_size, "--search-examples must hold at least one batch ({})", a.batch_size);
    let data = data::load(a.dataset, a.data_dir.as_deref())?.truncated(a.train_examples, a.test_examples);
    anyhow::ensure!(data.train.len() >= a.batch_size, "--train-examples {} is smaller than a batch ({})", data.train.len(), a.batch_size);
    Ok((base, data, sweep::Plan { search: a.search, search_epochs: a.search_epochs, search_examples: a.search_examples, jobs, seed: a.seed }))
}

/// indicatif bars for a study: one overall, one per run in progress.
struct StudyBars {
    multi: MultiProgress,
    overall: ProgressBar,
    runs: std::sync::Mutex<std::collections::HashMap<(String, usize), ProgressBar>>,
}

impl StudyBars {
    fn new(variants: usize) -> Self {
        let multi = MultiProgress::new();
        if !std::io::stderr().is_terminal() {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        let overall = multi.add(ProgressBar::new(variants as u64));
        overall.set_style(ProgressStyle::with_template("runs {pos}/{len} {bar:30.cyan/blue} {elapsed_precise} (eta {eta})").expect("template"));
        StudyBars { multi, overall, runs: Default::default() }
    }
}

impl StudyProgress for StudyBars {
    fn started(&self, variant: &str, trial: usize, epochs: usize) {
        let bar = self.multi.add(ProgressBar::new(epochs as u64));
        bar.set_style(ProgressStyle::with_template("  {prefix:32} epoch {pos}/{len} {bar:20.green/white} {msg}").expect("template"));
        bar.set_prefix(if trial > 0 { format!("{variant} (search {trial})") } else { variant.to_string() });
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
            eprintln!("{variant}{}: epoch {} train loss {:.4}", if trial > 0 { format!(" (search {trial})") } else { String::new() }, e.epoch + 1, e.train_loss);
        }
    }
    fn finished(&self, r: &RunResult) {
        if let Some(bar) = self.runs.lock().expect("bars").remove(&(r.name.clone(), 0)) {
            bar.finish_and_clear();
        }
        self.overall.inc(1);
        let line = format!("{:<32} train loss {:.4}  test acc {:.4}  ({:.0} s){}", r.name, r.train.loss, r.test.accuracy, r.seconds, if r.diverged { "  diverged" } else { "" });
        if self.multi.is_hidden() {
            eprintln!("{line}");
        } else {
            let _ = self.multi.println(line);
        }
    }
}

fn print_runs(runs: &[RunResult]) {
    println!("{:<32} {:>6} {:>8} {:>10} {:>9} {:>10} {:>9} {:>7}", "run", "depth", "params", "train loss", "train acc", "test loss", "test acc", "secs");
    for r in runs {
        println!(
            "{:<32} {:>6} {:>8} {:>10.4} {:>9.4} {:>10.4} {:>9.4} {:>7.0}{}",
            r.name, r.depth, r.params, r.train.loss, r.train.accuracy, r.test.loss, r.test.accuracy, r.seconds,
            if r.diverged { "  (diverged)" } else { "" }
        );
    }
}

fn sweep_cmd(a: SweepArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!a.depths.is_empty() && a.depths.iter().all(|&d| d >= 1), "--depths needs depths of at least 1");
    let (base, data, plan) = study_setup(&a.study)?;
    let variants = sweep::depth_sweep(&base, &a.families, &a.depths);
    let stop = stop_flag()?;
    let t = std::time::Instant::now();
    let bars = StudyBars::new(variants.len());
    let runs = sweep::run_study(&variants, &plan, &data, &stop, &bars)?;
    bars.overall.finish_and_clear();
    let report = Report::Sweep(SweepReport { dataset: data.kind.name().into(), epochs: base.epochs, depths: a.depths.clone(), runs, seconds: t.elapsed().as_secs_f64() });
    write_json(&a.out, &report)?;
    if a.study.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Report::Sweep(r) = &report else { unreachable!() };
    println!("training cross-entropy after {} epochs ({}):", r.epochs, r.dataset);
    print!("{:<10}", "depth");
    for d in &r.depths {
        print!("{d:>10}");
    }
    println!();
    for f in &a.families {
        let name = sweep::family_name(*f, crate::arch::GateMode::Adaptive);
        print!("{name:<10}");
        for &d in &r.depths {
            match r.run(&name, d) {
                Some(run) => print!("{:>10.4}", run.train.loss),
                None => print!("{:>10}", "-"),
            }
        }
        println!();
    }
    println!("report written to {} ({:.0} s)", a.out.display(), r.seconds);
    Ok(ExitCode::SUCCESS)
}

fn ablate_cmd(a: AblateArgs) -> anyhow::Result<ExitCode> {
    let (base, data, plan) = study_setup(&a.study)?;
    let base = train::TrainConfig { depth: a.depth, width: Some(a.width), ..base };
    base.arch(&data).validate()?;
    crate::arch::Arch { gate: crate::arch::GateMode::Fixed, fixed_gate: a.fixed_gate, ..base.arch(&data) }.validate()?;
    let variants = sweep::gate_ablation(&base, a.fixed_gate);
    let stop = stop_flag()?;
    let t = std::time::Instant::now();
    let bars = StudyBars::new(variants.len());
    let runs = sweep::run_study(&variants, &plan, &data, &stop, &bars)?;
    bars.overall.finish_and_clear();
    let report = Report::Ablation(AblationReport { dataset: data.kind.name().into(), epochs: base.epochs, depth: a.depth, runs, seconds: t.elapsed().as_secs_f64() });
    write_json(&a.out, &report)?;
    if a.study.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Report::Ablation(r) = &report else { unreachable!() };
    println!("gate ablation, depth {}, {} epochs each ({}):", r.depth, r.epochs, r.dataset);
    print_runs(&r.runs);
    println!("report written to {} ({:.0} s)", a.out.display(), r.seconds);
    Ok(ExitCode::SUCCESS)
}

/// What a path given to `export` holds.
enum Source {
    Recording(record::Recording),
    Report(Report),
    Model,
}

fn source_kind(path: &std::path::Path) -> anyhow::Result<Source> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(record::MAGIC) {
        return Ok(Source::Recording(record::read_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?));
    }
    if bytes.first() == Some(&b'{') && !crate::model::import::is_spec(&bytes) {
        return Ok(Source::Report(Report::read(path)?));
    }
    Ok(Source::Model)
}

/// Probes a model file now: a recording of one snapshot.
fn probe_model(path: &std::path::Path, data_dir: Option<&std::path::Path>) -> anyhow::Result<record::Recording> {
    let (model, card, data) = open_model(path, data_dir)?;
    let probe = ProbeSet::new(&data, probe::ProbeSize::Count(10_000), 32);
    let m = card.metrics.clone().unwrap_or_default();
    let progress = probe::Progress { step: m.steps as u64, epoch: m.epochs_completed as f64, train_loss: m.train_loss, train_accuracy: m.train_accuracy, test_accuracy: None };
    let snap = probe::snapshot(&model, &probe, progress, None);
    Ok(record::Recording { header: probe.header(card, format!("model file {}", path.display())), snapshots: vec![snap], dropped: 0, torn_tail: None })
}

fn export_cmd(a: ExportArgs) -> anyhow::Result<ExitCode> {
    use crate::export::{self, Figure};
    tch::set_num_threads(a.threads.max(1) as i32);
    let out = a.out.clone().unwrap_or_else(|| format!("figure{}.png", a.figure).into());
    let name = a.path.display();
    let source = source_kind(&a.path)?;
    let report = match (a.figure, source) {
        (1, Source::Report(r @ (Report::Sweep(_) | Report::Ablation(_)))) => r,
        (1, _) => anyhow::bail!("{name}: figure 1 is drawn from a sweep or ablation report (gatescope sweep / ablate write one)"),
        (4, Source::Report(r @ Report::Lesion(_))) => r,
        (4, Source::Model) => {
            let (model, card, data) = open_model(&a.path, a.data_dir.as_deref())?;
            crate::lesion::lesionable_layers(&model).with_context(|| format!("{name}"))?;
            let (tr, te) = (Tensors::train(&data), Tensors::test(&data));
            let bar = progress_bar(0, "lesioning");
            let r = crate::lesion::lesion_all(&model, &name.to_string(), card.dataset.name.name(), &tr, &te, &mut |d, t| {
                bar.set_length(t as u64);
                bar.set_position(d as u64);
            })?;
            bar.finish_and_clear();
            Report::Lesion(r)
        }
        (4, _) => anyhow::bail!("{name}: figure 4 is drawn from a model file or a lesion report (gatescope lesion --out)"),
        (2 | 3, Source::Report(_)) => anyhow::bail!("{name}: figures 2 and 3 are drawn from a recording or a model file, not a report"),
        (f, source) => {
            let rec = match source {
                Source::Recording(r) => r,
                _ => probe_model(&a.path, a.data_dir.as_deref())?,
            };
            let n = rec.snapshots.len() as i64;
            anyhow::ensure!(n > 0, "{name}: the recording has no snapshots");
            let i = if a.snapshot < 0 { n + a.snapshot } else { a.snapshot };
            anyhow::ensure!((0..n).contains(&i), "{name}: --snapshot {} is out of range (the recording has {n})", a.snapshot);
            let snap = &rec.snapshots[i as usize];
            let figure = if f == 2 {
                anyhow::ensure!(a.sample < rec.header.num_samples().max(1), "{name}: --sample {} is out of range (the recording has {} probe samples)", a.sample, rec.header.num_samples());
                Figure::Gates { header: &rec.header, snapshot: snap, sample: a.sample }
            } else {
                Figure::Classes { header: &rec.header, snapshot: snap }
            };
            export::save(&figure, &out)?;
            println!("{}: figure {f} of {name} (snapshot {i}, step {})", out.display(), snap.step);
            return Ok(ExitCode::SUCCESS);
        }
    };
    let figure = match &report {
        Report::Sweep(r) => Figure::Sweep(r),
        Report::Ablation(r) => Figure::Ablation(r),
        Report::Lesion(r) => Figure::Lesion(r),
    };
    export::save(&figure, &out)?;
    println!("{}: figure {} of {name}", out.display(), a.figure);
    Ok(ExitCode::SUCCESS)
}
