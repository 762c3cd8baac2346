//! CPU time of one viewer frame (egui layout, tessellation and texture updates) while the
//! timeline is scrubbed, with the Figure-2 and the Figure-3 view, at 1920×1080: over the
//! bundled recording, and over a recording of a 200-layer × 200-unit highway net (trained here
//! for a few steps, written to a temporary file), whose opening is timed too.
//! Run: `scripts/bench ui_frame` (sets up libtorch first) or `cargo bench --bench ui_frame`.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use egui_kittest::Harness;
use gatescope::recipe::{Cadence, ProbeOpts, ProbeSize, TrainConfig, RECIPE};
use gatescope::session::{self, CaptureOpts};
use gatescope::view::app::{Command, Persisted, Tab, ViewerApp};

/// Trains a 200 × 200 highway net for 40 steps, snapshotting every 2, into `path`.
fn write_big_recording(path: &Path) {
    let cfg = TrainConfig { depth: 200, width: Some(200), max_steps: Some(40), ..RECIPE };
    let data = gatescope::data::load(cfg.dataset, None).expect("the bundled MNIST");
    let capture = CaptureOpts {
        record: Some(path.to_path_buf()),
        every: Some(Cadence::Steps(2)),
        probe: ProbeOpts { size: ProbeSize::Count(2000), ..ProbeOpts::default() },
        ..Default::default()
    };
    session::train_recorded(&cfg, &data, capture, "ui_frame bench", &AtomicBool::new(false), &mut ()).expect("training");
}

/// Frames while scrubbing back and forth over every snapshot, per tab: "median, p95, max".
fn scrub(app: ViewerApp, label: &str) -> Vec<String> {
    let n = app.store.snapshots.len();
    let mut h = Harness::builder().with_size([1920.0, 1080.0]).build_ui_state(|ui, app: &mut ViewerApp| app.show(ui), app);
    let mut report = Vec::new();
    for tab in [Tab::Figure2, Tab::Figure3] {
        h.state_mut().tab = tab;
        h.run();
        let mut ms = Vec::new();
        for round in 0..4 {
            for j in 0..n {
                let i = if round % 2 == 0 { j } else { n - 1 - j };
                h.state_mut().current = i;
                let t = Instant::now();
                h.step();
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let pct = |p: f64| ms[((ms.len() as f64 - 1.0) * p).round() as usize];
        report.push(format!(
            "{label}, {tab:?}: {} frames while scrubbing at 1920x1080: median {:.2} ms, p95 {:.2} ms, max {:.2} ms",
            ms.len(),
            pct(0.5),
            pct(0.95),
            pct(1.0)
        ));
    }
    report
}

/// Opening the bundled model: seconds to the first picture (its gate biases drawn) and to the
/// full probe's maps.
fn first_picture() -> String {
    let t = Instant::now();
    let mut app = ViewerApp::new(Persisted::default());
    app.queue(Command::Open(gatescope::recipe::Example::first(gatescope::recipe::ExampleKind::Model).file()));
    let mut h = Harness::builder().with_size([1920.0, 1080.0]).build_ui_state(|ui, app: &mut ViewerApp| app.show(ui), app);
    let (mut first, mut full) = (None, None);
    while full.is_none() && t.elapsed().as_secs() < 60 {
        h.step();
        let drawn = h.state().panels.figure2.map_rects().len();
        let snap = h.state().store.snapshots.first();
        if first.is_none() && snap.is_some() && drawn >= 1 {
            first = Some(t.elapsed().as_secs_f64());
        }
        if snap.is_some_and(|s| !s.mean_gate.is_empty()) && drawn == 4 {
            full = Some(t.elapsed().as_secs_f64());
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    format!(
        "opening the bundled model: first picture (gate biases) after {:.3} s, the probe's maps after {:.3} s",
        first.unwrap_or(f64::NAN),
        full.unwrap_or(f64::NAN)
    )
}

/// Figure 4 inside the viewer: with the bundled model open and probed, "Lesion every layer"
/// (every layer on the 60,000 training and 10,000 test images) until the report is shown,
/// frames of the Figure-4 tab (its figure so far, then the report) drawn all along at a
/// display's 60 Hz.
fn lesion_in_viewer() -> String {
    let mut app = ViewerApp::new(Persisted::default());
    app.queue(Command::Open(gatescope::recipe::Example::first(gatescope::recipe::ExampleKind::Model).file()));
    let mut h = Harness::builder().with_size([1920.0, 1080.0]).build_ui_state(|ui, app: &mut ViewerApp| app.show(ui), app);
    let t = Instant::now();
    while h.state().store.snapshots.first().is_none_or(|s| s.mean_gate.is_empty()) && t.elapsed().as_secs() < 60 {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    h.state_mut().tab = Tab::Lesion;
    h.step();
    h.state_mut().queue(Command::LesionAll);
    let t = Instant::now();
    let (mut frames, mut first) = (0, None);
    while h.state().panels.lesion.report.is_none() && t.elapsed().as_secs() < 120 {
        let frame = Instant::now();
        h.step();
        frames += 1;
        if let (None, Some(r)) = (&first, &h.state().panels.lesion.so_far) {
            first = Some((t.elapsed().as_secs_f64(), r.train_examples));
        }
        std::thread::sleep(std::time::Duration::from_micros(16_667).saturating_sub(frame.elapsed()));
    }
    let s = t.elapsed().as_secs_f64();
    let first = first.map_or("no figure so far".into(), |(s, n)| format!("its first figure so far after {s:.2} s, over {n} examples"));
    match &h.state().panels.lesion.report {
        Some(r) => format!(
            "lesioning every layer of the bundled model in the viewer: {s:.2} s from the request to the report shown ({frames} frames; the analysis itself {:.2} s; {first})",
            r.seconds
        ),
        None => format!("lesioning every layer in the viewer: no report after {s:.0} s"),
    }
}

fn main() {
    let mut report = vec![first_picture(), lesion_in_viewer()];
    let mut app = ViewerApp::new(Persisted::default());
    app.open_recording_now(&gatescope::recipe::default_recording()).expect("bundled recording");
    report.extend(scrub(app, "default recording (50 x 50)"));

    let dir = std::env::temp_dir().join(format!("gatescope-ui-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = dir.join("big-200x200.gsrec");
    write_big_recording(&big);
    let bytes = std::fs::metadata(&big).map_or(0, |m| m.len());
    let mut app = ViewerApp::new(Persisted::default());
    let t = Instant::now();
    app.open_recording_now(&big).expect("the 200 x 200 recording");
    let open_s = t.elapsed().as_secs_f64();
    let n = app.store.snapshots.len();
    report.push(format!("200 x 200 recording: {n} snapshots, {bytes} bytes, opened (read, decoded, checked) in {open_s:.3} s"));
    report.extend(scrub(app, "200 x 200 recording"));
    let _ = std::fs::remove_dir_all(&dir);
    for r in report {
        println!("{r}");
    }
}
