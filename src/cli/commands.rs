//! One function per subcommand: map the flags onto the library's plain options, call the
//! services (`session`, `lesion`, `sweep`, `bench`, `export`), print for people or as JSON.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use super::args::{
    AblateArgs, BenchArgs, EvalArgs, ExportArgs, InfoArgs, LesionArgs, ProbeArgs, StudyArgs, SweepArgs, TrainArgs, ViewArgs, ViewTab,
};
use super::progress::{self, StudyBars, TrainBars};
use crate::data;
use crate::model::{cpu, file, infer, ForwardOpts};
use crate::recipe::{DeviceChoice, ProbeOpts, TrainConfig};
use crate::record;
use crate::report::{AblationReport, Report, RunResult, SweepReport};
use crate::session::{self, FileKind};
use crate::snapshot::Message;
use crate::sweep;
use crate::train::Tensors;

pub fn view_cmd(a: ViewArgs) -> anyhow::Result<ExitCode> {
    let paths = if a.paths.is_empty() { vec![crate::recipe::default_recording()] } else { a.paths };
    for p in paths.iter().chain(&a.compare) {
        anyhow::ensure!(p.exists(), "{}: no such file", p.display());
    }
    if let Some(addr) = &a.listen {
        if !is_loopback(addr) {
            eprintln!("note: listening on {addr}, which other machines may reach");
        }
    }
    let tab = a.tab.map(ViewTab::tab);
    crate::view::run(crate::view::ViewOptions { paths, listen: a.listen, tab, compare: a.compare })?;
    Ok(ExitCode::SUCCESS)
}

/// True if every address `addr` names is a loopback address.
fn is_loopback(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().map(|mut it| it.all(|a| a.ip().is_loopback())).unwrap_or(true)
}

/// Exit code of a run stopped by Ctrl-C whose model was saved (marked `interrupted`).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code of a run aborted by a second Ctrl-C: nothing was saved.
pub const EXIT_ABORTED: i32 = 131;

/// Sets a flag on the first Ctrl-C. A second one, a second or more later, aborts at once
/// (one that comes sooner is the same keypress delivered twice, e.g. by `timeout -s INT` to
/// a process and its group).
pub(super) fn stop_flag(message: &'static str) -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let first = std::sync::Mutex::new(None::<std::time::Instant>);
    ctrlc::set_handler(move || {
        let mut at = first.lock().unwrap_or_else(|e| e.into_inner());
        match *at {
            Some(t) if t.elapsed() >= std::time::Duration::from_secs(1) => {
                let msg = b"\naborted by a second Ctrl-C: the model was not saved (a model file is written whole or not at all)\n";
                // SAFETY: write(2) and _exit(2) are async-signal-safe. _exit skips atexit
                // handlers and static destructors, which would run while libtorch is busy on
                // the main thread (the crash dump a plain `exit` gave).
                unsafe {
                    libc::write(2, msg.as_ptr().cast(), msg.len());
                    libc::_exit(EXIT_ABORTED);
                }
            }
            Some(_) => {} // the same keypress, twice
            None => {
                *at = Some(std::time::Instant::now());
                s.store(true, Ordering::SeqCst);
                eprintln!("\n{message}");
            }
        }
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

pub fn train_cmd(a: TrainArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.config.config();
    cfg.validate()?;
    let data = data::load(cfg.dataset, cfg.data_dir.as_deref())?.truncated(cfg.train_examples, cfg.test_examples);
    anyhow::ensure!(
        data.train.len() >= cfg.batch_size,
        "--train-examples {} is smaller than a batch ({})",
        data.train.len(),
        cfg.batch_size
    );
    let stop = stop_flag("stopping after this batch, then saving (Ctrl-C again to abort without saving)")?;
    let mut bars = TrainBars::new(a.quiet);
    let capture = session::CaptureOpts { model: Some(a.out.clone()), ..a.capture.opts() };
    let run = session::train_recorded(&cfg, &data, capture, "gatescope train", &stop, &mut bars)?;
    if let Some(p) = &a.capture.record {
        eprintln!(
            "recorded {} to {} ({} probing beside the training, which waited {} for it)",
            count(run.snapshots, "snapshot"),
            p.display(),
            secs(run.probe_seconds),
            secs(run.handover_seconds)
        );
    }
    if let Some(s) = &run.stream {
        match s.connections {
            0 => eprintln!(
                "never reached a viewer at {} (tried every 0.25 s; start one with `gatescope view --listen {}`): {} not streamed",
                s.addr,
                s.addr,
                count(run.snapshots, "snapshot")
            ),
            c => eprintln!(
                "streamed {} of {} to {} ({} dropped for a slow or absent viewer{})",
                s.sent,
                count(run.snapshots, "snapshot"),
                s.addr,
                s.dropped,
                if c > 1 { format!("; reconnected {} times", c - 1) } else { String::new() }
            ),
        }
    }
    let out = run.outcome;
    file::save(&out.model, &out.card, &a.out)?;
    let m = out.card.metrics.as_ref().context("the trainer wrote no metrics")?;
    println!(
        "{}: train accuracy {:.4}, test accuracy {:.4} (train loss {:.4}, test loss {:.4}) after {} in {}{}",
        a.out.display(),
        m.train_accuracy,
        m.test_accuracy,
        m.train_loss,
        m.test_loss,
        count(m.steps, "step"),
        secs(m.seconds),
        if m.interrupted { " (interrupted)" } else { "" }
    );
    Ok(if m.interrupted { ExitCode::from(EXIT_INTERRUPTED) } else { ExitCode::SUCCESS })
}

/// "1 snapshot", "3 snapshots".
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// Seconds for people: "0.4 s", "12.3 s".
fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

fn set_threads(threads: usize) {
    tch::set_num_threads(threads.max(1) as i32);
}

pub fn eval_cmd(a: EvalArgs) -> anyhow::Result<ExitCode> {
    session::expect_model(&a.model, "eval")?;
    set_threads(a.threads);
    let m = session::open_model(&a.model, a.data_dir.as_deref(), a.device)?;
    let device = m.model.flat.device();
    let (tr, te) = (Tensors::train(&m.data).to_device(device), Tensors::test(&m.data).to_device(device));
    let (train_loss, train_accuracy) = m.model.evaluate(&tr.x, &tr.y, ForwardOpts::default());
    let (test_loss, test_accuracy) = m.model.evaluate(&te.x, &te.y, ForwardOpts::default());
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

pub fn probe_cmd(a: ProbeArgs) -> anyhow::Result<ExitCode> {
    session::expect_model(&a.model, "probe")?;
    set_threads(a.threads);
    let m = session::open_model(&a.model, a.data_dir.as_deref(), a.device)?;
    let set = m.probe_set(ProbeOpts { size: a.probe, samples: a.samples });
    let t = std::time::Instant::now();
    let rec = if infer::runs(&m.model) {
        // the CPU kernels run their own threads: libtorch's OpenMP workers would spin-wait on
        // the same cores after each of its ops
        let _kernels = cpu::Threads::set(a.threads);
        crate::train::torch_threads(1, || m.probe(&set, None))
    } else {
        m.probe(&set, None)
    };
    let probe_s = t.elapsed().as_secs_f64();
    let mut w = record::Writer::create(&a.out, &rec.header)?;
    for s in rec.snapshots {
        w.write(&Message::Snapshot(Box::new(s)))?;
    }
    println!(
        "{}: one snapshot of {} over {} probe examples (probe pass {:.0} ms)",
        a.out.display(),
        a.model.display(),
        set.len(),
        probe_s * 1e3
    );
    Ok(ExitCode::SUCCESS)
}

pub fn info_cmd(a: InfoArgs) -> anyhow::Result<ExitCode> {
    let t = std::time::Instant::now();
    match session::sniff(&a.path)? {
        FileKind::Recording => {}
        FileKind::Report => return report_info(&a.path, a.json),
        FileKind::Other => anyhow::bail!("{} is {}", a.path.display(), FileKind::Other.described()),
        FileKind::Model | FileKind::ImportSpec => return model_info(&a.path, a.json),
    }
    recording_info(&a.path, a.json, t)
}

/// `info` on a report: what it holds.
fn report_info(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let report = Report::read(path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &report {
        Report::Lesion(r) => println!(
            "lesion report of {} on {}: {} layers lesioned, {} training and {} test examples",
            r.model,
            r.dataset,
            r.layers.len(),
            r.train_examples,
            r.test_examples
        ),
        Report::Sweep(r) => println!("depth sweep on {}: {} runs of {} epochs, depths {:?}", r.dataset, r.runs.len(), r.epochs, r.depths),
        Report::Ablation(r) => {
            println!("gate ablation on {}: {} runs of depth {}, {} epochs each", r.dataset, r.runs.len(), r.depth, r.epochs)
        }
    }
    println!("draw it: gatescope export {} --figure {}", path.display(), if matches!(report, Report::Lesion(_)) { 4 } else { 1 });
    Ok(ExitCode::SUCCESS)
}

/// `info` on a model file or an import spec: its card.
fn model_info(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let card = file::read_card(path)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&card)?);
        return Ok(ExitCode::SUCCESS);
    }
    let a = &card.arch;
    println!(
        "model: {} net, depth {}, width {}, {}, {} parameters",
        a.family.name(),
        a.depth,
        a.width,
        a.activation.name(),
        a.num_params()
    );
    if let Some(gates) = gate_summary(path, &card) {
        println!("gates: {gates}");
    }
    println!("dataset: {} ({} classes)", card.dataset.name.name(), card.dataset.class_names.len());
    let from = card.training.get("imported_from").and_then(|v| v.as_str());
    match from {
        Some(framework) => println!("weights: imported from {framework} ({})", path.display()),
        None => println!("weights: trained by gatescope {}", card.gatescope_version),
    }
    if let Some(m) = &card.metrics {
        let stopped = if m.interrupted { " (interrupted)" } else { "" };
        println!("train accuracy {:.4}, test accuracy {:.4} after {} steps{stopped}", m.train_accuracy, m.test_accuracy, m.steps);
    }
    Ok(ExitCode::SUCCESS)
}

/// The gate mode and bias of a gated model (None for plain and residual nets): the initial
/// bias of a gatescope run, the mean learned bias of an import (its spec has no initial one).
fn gate_summary(path: &Path, card: &crate::card::ModelCard) -> Option<String> {
    use crate::arch::GateMode;
    let a = &card.arch;
    if a.gated_layers().is_empty() {
        return None;
    }
    let mode = match a.gate {
        GateMode::Adaptive => "adaptive, T = sigmoid(W_T x + b_T)".to_string(),
        GateMode::Learned => "learned per unit, T = sigmoid(b_T)".to_string(),
        GateMode::Fixed => format!("fixed, T = {}", a.fixed_gate),
    };
    if a.gate == GateMode::Fixed {
        return Some(mode);
    }
    if card.training.get("imported_from").is_some() {
        let mean = file::load(path).ok().and_then(|(m, _)| m.gate_biases()).map(|b| b.mean(tch::Kind::Float).double_value(&[]));
        return Some(match mean {
            Some(b) => format!("{mode}; mean gate bias {b:.3}"),
            None => mode,
        });
    }
    Some(format!("{mode}; initial gate bias {}", a.gate_bias))
}

/// `info` on a recording: its run, snapshots and torn tail.
fn recording_info(path: &Path, json: bool, t: std::time::Instant) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let rec = record::read_bytes(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let decode_ms = t.elapsed().as_secs_f64() * 1e3;
    let steps: Vec<u64> = rec.snapshots.iter().map(|s| s.step).collect();
    let last = rec.snapshots.last();
    if json {
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
            "model": rec.header.model,
            "model_found": session::model_of_recording(path, &rec.header),
            "last_test_accuracy": last.map(|s| s.test_accuracy).filter(|v| v.is_finite()),
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let arch = &rec.header.card.arch;
    println!(
        "recording of a {} net, depth {}, width {}, on {}",
        arch.family.name(),
        arch.depth,
        arch.width,
        rec.header.card.dataset.name.name()
    );
    let span = match (steps.first(), steps.last()) {
        (Some(a), Some(b)) if a != b => format!("steps {a} to {b}"),
        (Some(a), _) => format!("step {a}"),
        _ => "none yet".into(),
    };
    let n = rec.snapshots.len();
    println!(
        "{n} snapshot{} ({span}); probe set {} examples, {} samples",
        if n == 1 { "" } else { "s" },
        rec.header.probe_size,
        rec.header.num_samples()
    );
    println!("source: {}", rec.header.source);
    match session::model_of_recording(path, &rec.header) {
        Some(m) => println!("model: {} (the viewer attaches it for tracing and lesions)", m.display()),
        None => println!("model: {}", rec.header.model.as_deref().map_or("not named".into(), |m| format!("{m} (not found)"))),
    }
    println!("{} bytes, read and decoded in {decode_ms:.1} ms", bytes.len());
    if let Some(s) = last {
        println!("last snapshot: step {}, test accuracy {:.4}", s.step, s.test_accuracy);
    }
    if let Some(t) = rec.torn_tail {
        println!("{t}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn bench_cmd(a: BenchArgs) -> anyhow::Result<ExitCode> {
    use crate::bench::Tick;
    let bar = progress::bar(0, "bench", a.json);
    let r = crate::bench::run(&a.opts()?, &mut |t| match t {
        Tick::Total(n) => bar.set_length(n),
        Tick::Step => bar.inc(1),
        Tick::Message(m) => bar.set_message(m.to_string()),
    })?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} | batch {} | {} threads | best of {} × {} steps", r.model, r.batch_size, r.threads, r.rounds, r.steps);
    if let (Some(f), Some(x)) = (r.fast_samples_per_s, r.fast_over_autograd) {
        println!("fast path (hand-written backward, fused):     {f:>8.0} samples/s");
        println!("autograd path (same parameters):               {:>8.0} samples/s", r.autograd_samples_per_s);
        println!("fast / autograd: {x:.2}×");
        if let (Some(g), Some(f)) = (r.gflop_per_s, r.flop_per_sample) {
            println!("fast path: {g:.1} GFLOP/s ({:.2} MFLOP a sample, forward and backward)", f / 1e6);
            if let (Some(p), Some(share)) = (&r.peak, r.percent_of_peak) {
                println!(
                    "  {share:.1} % of this machine's FMA peak: {:.1} GFLOP/s on {} threads ({}, measured)",
                    p.gflop_per_s, p.threads, p.isa
                );
            }
        }
    } else {
        println!("gatescope (autograd):                           {:>8.0} samples/s", r.autograd_samples_per_s);
    }
    if let (Some(rf), Some(x)) = (r.reference_samples_per_s, r.fast_over_reference) {
        println!("reference: {rf:.0} samples/s; gatescope / reference: {x:.2}×");
    }
    for p in &r.references {
        println!("{:<46} {:>8.0} samples/s; gatescope / it: {:.2}×", format!("{}:", p.system), p.samples_per_s, p.ours_over_it);
    }
    if let Some(c) = &r.recording {
        println!(
            "recording ({} epochs, every {}, probe {} + {} samples): {:.0} samples/s without, {:.0} with: {:.1} % overhead; {} snapshots, {} bytes",
            c.epochs, c.cadence, c.probe_examples, c.samples, c.plain_samples_per_s, c.recording_samples_per_s, c.overhead_percent, c.snapshots, c.file_bytes
        );
        let rounds: Vec<String> = c.round_overhead_percent.iter().map(|v| format!("{v:.1} %")).collect();
        println!("  round by round: {}", rounds.join(", "));
        println!(
            "  inside the recorded run: handing snapshots over took {:.2} % of its time; probing them beside the training, {:.1} %",
            c.handover_percent, c.probe_percent
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Lesions every layer of the model at `path` with a progress bar.
fn lesion_model(path: &Path, data_dir: Option<&Path>, device: DeviceChoice) -> anyhow::Result<crate::report::LesionReport> {
    let m = session::open_model(path, data_dir, device)?;
    m.lesionable().with_context(|| format!("{}", path.display()))?;
    let bar = progress::bar(0, "lesioning", false);
    let mut count = progress::counter(&bar);
    let report = m.lesion_all(&mut |p| {
        count(p.done, p.total);
        true
    })?;
    let Some(report) = report else { anyhow::bail!("the lesion analysis stopped before its end") };
    bar.finish_and_clear();
    Ok(report)
}

pub fn lesion_cmd(a: LesionArgs) -> anyhow::Result<ExitCode> {
    session::expect_model(&a.model, "lesion")?;
    set_threads(a.threads);
    let report = lesion_model(&a.model, a.data_dir.as_deref(), a.device)?;
    let wrapped = Report::Lesion(report);
    if let Some(out) = &a.out {
        write_json(out, &wrapped)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&wrapped)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Report::Lesion(report) = wrapped else { unreachable!("wrapped just above") };
    let (bt, be) = (report.baseline_train, report.baseline_test);
    println!(
        "{}: {} layers lesioned on {} training examples in {:.1} s, and on {} test examples ({:.1} s in all)",
        report.model,
        report.layers.len(),
        report.train_examples,
        report.train_seconds,
        report.test_examples,
        report.seconds
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
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)?).with_context(|| format!("writing {}", path.display()))
}

/// The shared recipe of a study's runs, and the dataset.
fn study_setup(a: &StudyArgs) -> anyhow::Result<(TrainConfig, data::Dataset, sweep::Plan)> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let jobs = a.jobs.unwrap_or((cores / 2).max(1)).max(1);
    let base = a.config((cores / jobs).max(1));
    base.validate()?;
    anyhow::ensure!(a.search == 0 || a.search_epochs >= 1, "--search-epochs must be at least 1");
    anyhow::ensure!(
        a.search == 0 || a.search_examples >= a.batch_size,
        "--search-examples must hold at least one batch ({})",
        a.batch_size
    );
    let data = data::load(a.dataset, a.data_dir.as_deref())?.truncated(a.train_examples, a.test_examples);
    anyhow::ensure!(data.train.len() >= a.batch_size, "--train-examples {} is smaller than a batch ({})", data.train.len(), a.batch_size);
    Ok((
        base,
        data,
        sweep::Plan { search: a.search, search_epochs: a.search_epochs, search_examples: a.search_examples, jobs, seed: a.seed },
    ))
}

/// Runs a study's variants with progress bars; (runs, seconds).
fn run_study(variants: &[sweep::Variant], plan: &sweep::Plan, data: &data::Dataset) -> anyhow::Result<(Vec<RunResult>, f64)> {
    let stop = stop_flag("stopping after this batch, then saving (Ctrl-C again to abort without saving)")?;
    let t = std::time::Instant::now();
    let bars = StudyBars::new(variants.len());
    let runs = sweep::run_study(variants, plan, data, &stop, &bars)?;
    bars.overall.finish_and_clear();
    Ok((runs, t.elapsed().as_secs_f64()))
}

fn print_runs(runs: &[RunResult]) {
    println!(
        "{:<32} {:>6} {:>8} {:>10} {:>9} {:>10} {:>9} {:>7}",
        "run", "depth", "params", "train loss", "train acc", "test loss", "test acc", "secs"
    );
    for r in runs {
        println!(
            "{:<32} {:>6} {:>8} {:>10.4} {:>9.4} {:>10.4} {:>9.4} {:>7.0}{}",
            r.name,
            r.depth,
            r.params,
            r.train.loss,
            r.train.accuracy,
            r.test.loss,
            r.test.accuracy,
            r.seconds,
            if r.diverged { "  (diverged)" } else { "" }
        );
    }
}

pub fn sweep_cmd(a: SweepArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!a.depths.is_empty() && a.depths.iter().all(|&d| d >= 1), "--depths needs depths of at least 1");
    let (base, data, plan) = study_setup(&a.study)?;
    let variants = sweep::depth_sweep(&base, &a.families, &a.depths);
    let (runs, seconds) = run_study(&variants, &plan, &data)?;
    let r = SweepReport { dataset: data.kind.name().into(), epochs: base.epochs, depths: a.depths.clone(), runs, seconds };
    let report = Report::Sweep(r.clone());
    write_json(&a.out, &report)?;
    if a.study.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("training cross-entropy after {} ({}):", count(r.epochs, "epoch"), r.dataset);
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
    println!("report written to {} ({})", a.out.display(), secs(r.seconds));
    Ok(ExitCode::SUCCESS)
}

pub fn ablate_cmd(a: AblateArgs) -> anyhow::Result<ExitCode> {
    let (base, data, plan) = study_setup(&a.study)?;
    let base = TrainConfig {
        depth: a.depth,
        width: Some(a.study.width.unwrap_or(crate::recipe::default_width(crate::arch::Family::Highway))),
        ..base
    };
    base.arch(&data).validate()?;
    crate::arch::Arch { gate: crate::arch::GateMode::Fixed, fixed_gate: a.fixed_gate, ..base.arch(&data) }.validate()?;
    let variants = sweep::gate_ablation(&base, a.fixed_gate);
    let (runs, seconds) = run_study(&variants, &plan, &data)?;
    let r = AblationReport { dataset: data.kind.name().into(), epochs: base.epochs, depth: a.depth, runs, seconds };
    let report = Report::Ablation(r.clone());
    write_json(&a.out, &report)?;
    if a.study.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("gate ablation, depth {}, {} each ({}):", r.depth, count(r.epochs, "epoch"), r.dataset);
    print_runs(&r.runs);
    println!("report written to {} ({})", a.out.display(), secs(r.seconds));
    Ok(ExitCode::SUCCESS)
}

/// `export --animate`: Figure 2 or 3 over every snapshot of `rec`, as a GIF.
fn animate_cmd(rec: &record::Recording, figure: u8, sample: usize, gif: &Path, name: &str) -> anyhow::Result<ExitCode> {
    use crate::animate::{self, Animated};
    let which = if figure == 2 { Animated::Gates { sample } } else { Animated::Classes };
    let bar = progress::bar(rec.snapshots.len() as u64, "frames", false);
    let t = std::time::Instant::now();
    let frames = animate::save_gif(&rec.header, &rec.snapshots, which, gif, &mut |d, _| bar.set_position(d as u64))?;
    bar.finish_and_clear();
    let bytes = std::fs::metadata(gif).map_or(0, |m| m.len());
    println!(
        "{}: figure {figure} of {name}, {} ({} bytes, {})",
        gif.display(),
        count(frames, "frame"),
        bytes,
        secs(t.elapsed().as_secs_f64())
    );
    Ok(ExitCode::SUCCESS)
}

pub fn export_cmd(a: ExportArgs) -> anyhow::Result<ExitCode> {
    use crate::export::{self, Figure};
    set_threads(a.threads);
    let out = a.out.clone().unwrap_or_else(|| format!("figure{}.png", a.figure).into());
    let name = a.path.display();
    let kind = session::sniff(&a.path)?;
    anyhow::ensure!(kind != FileKind::Other, "{name} is {}; export draws from a recording, a model or a report", kind.described());
    let is_model = kind.is_model();
    anyhow::ensure!(
        a.animate.is_none() || matches!(a.figure, 2 | 3),
        "--animate draws figure 2 or 3 over a recording's snapshots, not figure {}",
        a.figure
    );
    let report = match (a.figure, kind) {
        (1 | 4, FileKind::Report) => Some(Report::read(&a.path)?),
        (4, _) if is_model => Some(Report::Lesion(lesion_model(&a.path, a.data_dir.as_deref(), a.device)?)),
        (2 | 3, FileKind::Report) => anyhow::bail!("{name}: figures 2 and 3 are drawn from a recording or a model file, not a report"),
        (1, _) => anyhow::bail!("{name}: figure 1 is drawn from a sweep or ablation report (gatescope sweep / ablate write one)"),
        (4, _) => anyhow::bail!("{name}: figure 4 is drawn from a model file or a lesion report (gatescope lesion --out)"),
        _ => None,
    };
    if let Some(report) = report {
        let figure = match (&report, a.figure) {
            (Report::Sweep(r), 1) => Figure::Sweep(r),
            (Report::Ablation(r), 1) => Figure::Ablation(r),
            (Report::Lesion(r), 4) => Figure::Lesion(r),
            (Report::Lesion(_), _) => anyhow::bail!("{name}: a lesion report draws figure 4"),
            _ => anyhow::bail!("{name}: figure 4 is drawn from a model file or a lesion report (gatescope lesion --out)"),
        };
        export::save(&figure, &out)?;
        println!("{}: figure {} of {name}", out.display(), a.figure);
        return Ok(ExitCode::SUCCESS);
    }
    let rec = if kind == FileKind::Recording {
        record::open(&a.path)?
    } else if a.animate.is_some() {
        anyhow::bail!("{name} is {}; an animation is drawn from a recording (a model has one moment only)", kind.described())
    } else {
        let m = session::open_model(&a.path, a.data_dir.as_deref(), a.device)?;
        m.probe(&m.probe_set(ProbeOpts::default()), None)
    };
    let n = rec.snapshots.len() as i64;
    anyhow::ensure!(n > 0, "{name}: the recording has no snapshots");
    if let Some(gif) = &a.animate {
        return animate_cmd(&rec, a.figure, a.sample, gif, &name.to_string());
    }
    let i = if a.snapshot < 0 { n + a.snapshot } else { a.snapshot };
    anyhow::ensure!((0..n).contains(&i), "{name}: --snapshot {} is out of range (the recording has {n})", a.snapshot);
    let snap = &rec.snapshots[i as usize];
    let figure = if a.figure == 2 {
        let k = rec.header.num_samples();
        anyhow::ensure!(a.sample < k.max(1), "{name}: --sample {} is out of range (the recording has {k} probe samples)", a.sample);
        Figure::Gates { header: &rec.header, snapshot: snap, sample: a.sample }
    } else {
        Figure::Classes { header: &rec.header, snapshot: snap }
    };
    export::save(&figure, &out)?;
    println!("{}: figure {} of {name} (snapshot {i}, step {})", out.display(), a.figure, snap.step);
    Ok(ExitCode::SUCCESS)
}
