//! The viewer, rendered headless with egui_kittest: open the bundled recording, find widgets by
//! their labels, move the timeline and the sample picker, and check what the views show.

use crate::common;

use eframe::egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use gatescope::view::app::{Command, Persisted, ViewerApp};

fn app_with_default_recording() -> ViewerApp {
    let mut app = ViewerApp::new(Persisted::default());
    app.open_recording_now(&gatescope::recipe::default_recording()).unwrap();
    app
}

fn harness(app: ViewerApp) -> Harness<'static, ViewerApp> {
    Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut ViewerApp| app.show(ui), app)
}

#[test]
fn timeline_and_sample_picker_drive_the_figure_2_view() {
    let app = app_with_default_recording();
    let n = app.store.snapshots.len();
    assert!(n >= 30, "the bundled recording has {n} snapshots");
    let steps: Vec<u64> = app.store.snapshots.iter().map(|s| s.step).collect();
    let mut h = harness(app);
    h.run();
    h.get_by_label("Figure 2: gates per layer");
    for title in ["Transform gate biases", "Mean transform gate outputs", "Transform gate outputs (sample)", "Block outputs (sample)"] {
        h.get_by_label(title);
    }
    h.get_by_label_contains(&format!("step {} (epoch", steps[n - 1]));
    assert_eq!(h.state().current, n - 1);

    // drawing again without a change uploads no texture
    let uploads = h.state().uploads();
    assert!(uploads >= 4);
    h.run();
    assert_eq!(h.state().uploads(), uploads);

    // one step back on the timeline: the label and the heatmaps follow
    h.get_by_role_and_label(Role::Slider, "snapshot").focus();
    h.run();
    h.key_press(eframe::egui::Key::ArrowLeft);
    h.run();
    assert_eq!(h.state().current, n - 2);
    h.get_by_label_contains(&format!("step {} (epoch", steps[n - 2]));
    assert!(h.state().uploads() > uploads, "the maps were redrawn for the new snapshot");
    assert!(!h.state().follow_live);

    // the sample picker: the next probe sample is of class 1
    h.get_by_role_and_label(Role::Slider, "probe sample").focus();
    h.run();
    h.key_press(eframe::egui::Key::ArrowRight);
    h.run();
    assert_eq!(h.state().sample, 1);
    h.get_by_label("label 1");
    let pred = h.state().store.snapshots[n - 2].sample_predictions[1];
    h.get_by_label(&format!("prediction {pred}"));
}

#[test]
fn figure_3_in_the_paper_layout_all_classes_and_a_difference_and_the_layer_inspector() {
    let mut h = harness(app_with_default_recording());
    h.run();
    h.get_by_label("Figure 3: classes").click();
    h.run();
    h.get_by_label_contains("Mean T per class minus mean T over all 10000 probe examples");
    // the paper's layout: the mean map, then the two classes that deviate most
    let snap = h.state().store.snapshots.last().unwrap().clone();
    let fig = gatescope::figures::figure3(h.state().store.header.as_ref().unwrap(), &snap);
    let order = fig.by_deviation();
    assert_eq!(h.state().panels.figure3.compare, (order[0], order[1]));
    h.get_by_label("Mean T (all classes)");
    h.get_by_label(&format!("class {}", order[0]));
    h.get_by_label(&format!("class {}", order[1]));
    // every class, the most deviating first; a click puts a class beside the mean
    h.get_by_label("All classes").click();
    h.run();
    for c in 0..10 {
        h.get_by_label(&c.to_string());
    }
    let first = h.get_by_label(&order[0].to_string()).rect();
    let last = h.get_by_label(&order[9].to_string()).rect();
    assert!((first.top(), first.left()) < (last.top(), last.left()), "ordered by deviation");
    h.get_by_label("7").click();
    h.run();
    assert_eq!(h.state().panels.figure3.layout, gatescope::view::panels::Figure3Layout::Paper);
    assert_eq!(h.state().panels.figure3.compare.0, 7);
    h.get_by_label("class 7");
    h.get_by_label("A minus B").click();
    h.run();
    h.get_by_label(&format!("class 7 minus class {}", order[1]));

    h.get_by_label("Layer inspector").click();
    h.run();
    h.get_by_label("mean change of block output");
    h.get_by_label("fraction of open gates (T > 0.5)");
}

#[test]
fn the_maps_fill_the_window_zoom_and_pan_together_and_share_a_crosshair() {
    use eframe::egui::{Event, MouseWheelUnit, PointerButton, Pos2, Vec2};
    let mut h = Harness::builder()
        .with_size([1600.0, 1000.0])
        .with_step_dt(1.0 / 60.0)
        .build_ui_state(|ui, app: &mut ViewerApp| app.show(ui), app_with_default_recording());
    h.run_steps(8);
    let rects = h.state().panels.figure2.map_rects();
    assert_eq!(rects.len(), 4);
    let area: f32 = rects.iter().map(|r| r.area()).sum();
    assert!(rects.iter().all(|r| r.height() > 500.0), "full-height maps: {rects:?}");
    assert!(area > 4.0 * 200.0 * 500.0, "the maps fill the space: {rects:?}");
    // hover over layer 10 (row 9 of 49), unit 25 of the mean-T map: the crosshair is in all four
    let r = rects[1];
    let at = Pos2::new(r.left() + r.width() * 25.5 / 50.0, r.top() + r.height() * 9.5 / 49.0);
    h.event(Event::PointerMoved(at));
    h.run_steps(8);
    assert_eq!(h.state().panels.figure2.link.hover, Some((10, 25)));
    // one tooltip with the four values of that cell
    for _ in 0..40 {
        h.step();
    }
    for part in
        ["layer 10, unit 25", "Transform gate biases: ", "Mean transform gate outputs: ", "Transform gate outputs: ", "Block outputs: "]
    {
        assert!(h.query_all_by_label_contains(part).count() > 0, "the tooltip shows {part:?}");
    }
    // the wheel zooms every map about the pointer
    h.event(Event::MouseWheel {
        unit: MouseWheelUnit::Point,
        delta: Vec2::new(0.0, 200.0),
        phase: eframe::egui::TouchPhase::Move,
        source: eframe::egui::MouseWheelSource::Wheel,
        modifiers: Default::default(),
    });
    h.run_steps(120); // the wheel's delta is smoothed over frames
    let link = h.state().panels.figure2.link;
    assert!(link.is_zoomed(), "{link:?}");
    assert!(link.y[1] - link.y[0] < 0.9);
    // drag pans them
    h.event(Event::PointerButton { pos: at, button: PointerButton::Primary, pressed: true, modifiers: Default::default() });
    h.event(Event::PointerMoved(at + Vec2::new(40.0, 60.0)));
    h.run_steps(8);
    h.event(Event::PointerButton {
        pos: at + Vec2::new(40.0, 60.0),
        button: PointerButton::Primary,
        pressed: false,
        modifiers: Default::default(),
    });
    h.run_steps(8);
    let panned = h.state().panels.figure2.link;
    assert!(panned.y[0] < link.y[0] && panned.x[0] < link.x[0], "{link:?} -> {panned:?}");
    // a double-click shows the whole maps again
    h.event(Event::PointerMoved(at));
    h.step();
    for pressed in [true, false, true, false] {
        h.event(Event::PointerButton { pos: at, button: PointerButton::Primary, pressed, modifiers: Default::default() });
        h.step();
    }
    h.run_steps(8);
    assert!(!h.state().panels.figure2.link.is_zoomed(), "{:?} (was {panned:?})", h.state().panels.figure2.link);
    // a click on a row opens that layer in the inspector
    for _ in 0..30 {
        h.step(); // past the double-click interval
    }
    h.event(Event::PointerMoved(at));
    h.step();
    h.event(Event::PointerButton { pos: at, button: PointerButton::Primary, pressed: true, modifiers: Default::default() });
    h.step();
    h.event(Event::PointerButton { pos: at, button: PointerButton::Primary, pressed: false, modifiers: Default::default() });
    h.run_steps(30); // a click is a click once no second one follows
    assert_eq!(h.state().tab, gatescope::view::app::Tab::Layers);
    assert_eq!(h.state().panels.layers.highlight, Some(10));
    h.get_by_label_contains("layer 10: mean T");
}

#[test]
fn arrow_keys_step_through_snapshots_and_probe_samples() {
    let mut h = harness(app_with_default_recording());
    h.run();
    let n = h.state().store.snapshots.len();
    h.key_press(eframe::egui::Key::ArrowLeft);
    h.run();
    h.key_press(eframe::egui::Key::ArrowLeft);
    h.run();
    assert_eq!(h.state().current, n - 3);
    h.key_press(eframe::egui::Key::ArrowRight);
    h.run();
    assert_eq!(h.state().current, n - 2);
    h.key_press(eframe::egui::Key::ArrowDown);
    h.run();
    h.key_press(eframe::egui::Key::ArrowDown);
    h.run();
    assert_eq!(h.state().sample, 2);
    h.key_press(eframe::egui::Key::ArrowUp);
    h.run();
    assert_eq!(h.state().sample, 1);
    assert_eq!(h.state().title(), "default.gsrec - gatescope");
}

#[test]
fn a_bad_file_shows_an_error_and_the_viewer_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.gsrec");
    std::fs::write(&bad, b"GATESCP\0\x09\x00\x00\x00").unwrap();
    let mut app = app_with_default_recording();
    let before = app.store.snapshots.len();
    app.queue(Command::Open(bad));
    let mut h = harness(app);
    for _ in 0..200 {
        h.step(); // (a spinner keeps repainting while the file opens)
        if h.query_by_label_contains("could not open").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    h.get_by_label_contains("version 9.0 is newer");
    // nothing lost: the recording that was open is still there
    assert_eq!(h.state().store.snapshots.len(), before);
    h.get_by_label("Figure 2: gates per layer");
}

/// A file dropped on the window.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl eframe::egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn hostile_files_show_one_error_each_and_what_was_open_stays() {
    use crate::hostile;
    let dir = tempfile::tempdir().unwrap();
    let files = [
        hostile::model_with_card(dir.path(), "absurd.safetensors", |c| c["arch"]["depth"] = hostile::HUGE.into()),
        hostile::spec_with(dir.path(), hostile::HUGE, 50),
        hostile::absurd_recording(dir.path()),
        hostile::disagreeing_recording(dir.path()),
    ];
    let mut h = harness(app_with_default_recording());
    h.run();
    let before = h.state().store.snapshots.len();
    for (i, f) in files.iter().enumerate() {
        if i % 2 == 0 {
            h.state_mut().queue(Command::Open(f.clone())); // as File > Open and the command line do
        } else {
            h.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(f.clone())));
        }
        h.state_mut().error = None;
        step_until(&mut h, |a| a.error.is_some());
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let e = h.state().error.clone().unwrap();
        assert!(e.starts_with("could not open") && e.contains(&name), "{e}");
        h.get_by_label_contains(&format!("Error: could not open {}", f.display()));
        assert_eq!(h.state().store.snapshots.len(), before, "the open recording stays");
        assert!(h.state().store.source.ends_with("default.gsrec"));
    }
    h.get_by_label("Figure 2: gates per layer").click();
    h.run();
    h.get_by_label("Transform gate biases");
}

#[test]
fn snapshot_images_of_every_tab() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut app = app_with_default_recording();
    app.queue(Command::Open(root.join("docs/results/lesion-default.json")));
    app.queue(Command::Open(root.join("docs/results/sweep.json")));
    app.queue(Command::OpenOther(root.join("recordings/default.gsrec")));
    let mut h = harness(app);
    step_until(&mut h, |a| a.panels.lesion.report.is_some() && a.panels.studies.report.is_some() && a.panels.compare.other.is_some());
    // the status names files by their absolute paths, which differ from clone to clone
    h.state_mut().status.clear();
    for (tab, name) in [
        ("Figure 2: gates per layer", "figure2"),
        ("Figure 3: classes", "figure3"),
        ("Layer inspector", "layers"),
        ("Figure 4: lesions", "lesion"),
        ("Sweep / ablation", "studies"),
        ("Compare runs", "compare"),
    ] {
        h.get_by_label(tab).click();
        h.run();
        h.snapshot(name);
    }
}

/// Steps the harness (without waiting for it to settle) until `done` or 120 s pass.
fn step_until(h: &mut Harness<'static, ViewerApp>, done: impl Fn(&ViewerApp) -> bool) {
    step_until_within(h, 120, done)
}

/// `step_until` with a deadline of `secs` (for work that takes long in a debug build).
fn step_until_within(h: &mut Harness<'static, ViewerApp>, secs: u64, done: impl Fn(&ViewerApp) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done(h.state()) {
        assert!(std::time::Instant::now() < deadline, "timed out; status: {}", h.state().status);
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    h.step();
}

#[test]
fn a_model_file_opens_by_probing_and_any_example_can_be_traced() {
    let mut app = ViewerApp::new(Persisted::default());
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/default.safetensors");
    app.queue(Command::Open(model));
    let mut h = harness(app);
    step_until(&mut h, |a| a.store.header.is_some() && a.example.is_some());
    assert_eq!(h.state().store.snapshots.len(), 1);
    assert_eq!(h.state().example.as_ref().unwrap().index, 0);
    h.get_by_label_contains("opened model");
    // trace training example 7 (label 3 in MNIST's training order)
    h.state_mut().queue(Command::TraceExample(7));
    step_until(&mut h, |a| a.example.as_ref().is_some_and(|e| e.index == 7));
    let ex = h.state().example.as_ref().unwrap();
    assert_eq!(ex.label, 3);
    assert_eq!((ex.gates.shape.clone(), ex.blocks.shape.clone()), (vec![49, 50], vec![50, 50]));
    h.get_by_label_contains("training example #7: label 3");
}

#[test]
fn the_training_panel_streams_a_run_keeps_it_under_runs_and_attaches_its_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = ViewerApp::new(Persisted::default());
    app.runs_dir = dir.path().join("runs");
    // epochs enough that the run cannot end before Stop: snapshots are probed beside the
    // training, and the trainer runs at most two snapshots ahead of those the viewer has
    (app.panels.side.form.depth, app.panels.side.form.width, app.panels.side.form.epochs, app.panels.side.form.every_steps) =
        (4, 16, 5, 100);
    let mut h = harness(app);
    h.run();
    h.get_by_label("Start training").click();
    step_until(&mut h, |a| a.store.snapshots.len() >= 3);
    assert_eq!(h.state().store.source, "viewer training panel");
    assert_eq!(h.state().store.header.as_ref().unwrap().card.arch.depth, 4);
    h.get_by_label("Stop training").click();
    step_until(&mut h, |a| a.status.starts_with("training stopped"));
    h.get_by_label("Start training");
    assert!(h.state().store.snapshots.last().unwrap().test_accuracy > 0.2);
    // kept: a recording and a model under runs/, named for the run, the model attached
    let (rec, model) = h.state().last_run.clone().unwrap();
    assert!(rec.starts_with(dir.path().join("runs")) && rec.extension().unwrap() == "gsrec", "{}", rec.display());
    let name = rec.file_stem().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("highway-d4-w16-20"), "{name}");
    assert_eq!(model, rec.with_extension("safetensors"));
    assert_eq!(h.state().model_path(), Some(model.as_path()));
    assert!(h.state().is_attached());
    assert_eq!(h.state().persisted.recent[0], rec);
    assert_eq!(h.state().store.source, rec.display().to_string());
    let (_, card) = gatescope::model::file::load(&model).unwrap();
    assert!(card.metrics.unwrap().interrupted, "stopped early: marked as interrupted");
    let kept = gatescope::record::open(&rec).unwrap();
    assert_eq!(kept.snapshots.len(), h.state().store.snapshots.len());
    assert_eq!(kept.header.model.as_deref(), Some(model.file_name().unwrap().to_str().unwrap()));
    // tracing works at once
    h.state_mut().queue(Command::TraceExample(3));
    step_until(&mut h, |a| a.example.as_ref().is_some_and(|e| e.index == 3));
    // Save as: both files, elsewhere
    let to = dir.path().join("keep/mine.safetensors");
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    h.state_mut().queue(Command::SaveRunAs(Some(to.clone())));
    h.run();
    assert!(to.is_file() && to.with_extension("gsrec").is_file(), "{}", h.state().status);
}

#[test]
fn a_recording_attaches_its_model_so_examples_trace_and_layers_lesion() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (rec, model) = (dir.path().join("run.gsrec"), dir.path().join("run.safetensors"));
    std::fs::copy(root.join("recordings/default.gsrec"), &rec).unwrap();
    std::fs::copy(root.join("recordings/default.safetensors"), &model).unwrap();
    let mut app = ViewerApp::new(Persisted::default());
    app.queue(Command::Open(rec.clone()));
    let mut h = harness(app);
    step_until(&mut h, |a| a.model_path().is_some());
    assert_eq!(h.state().model_path(), Some(model.as_path()));
    assert!(h.state().is_attached());
    let n = h.state().store.snapshots.len();
    assert!(n > 1, "the recording's timeline stays");
    h.get_by_label_contains("attached its model");
    h.state_mut().queue(Command::TraceExample(7));
    step_until(&mut h, |a| a.example.as_ref().is_some_and(|e| e.index == 7));
    // a lesion shows the lesioned model; clearing it brings the recording back
    h.state_mut().queue(Command::Lesion(Some(5)));
    step_until(&mut h, |a| a.lesioned == Some(5));
    assert_eq!(h.state().store.snapshots.len(), 1);
    h.state_mut().queue(Command::Lesion(None));
    step_until(&mut h, |a| a.lesioned.is_none() && a.store.snapshots.len() == n);
    h.get_by_label("Figure 4: lesions").click();
    h.run();
    h.get_by_label("Lesion every layer (train and test sets)");

    // a model of another net beside a recording is not attached
    let other = dir.path().join("other.gsrec");
    std::fs::copy(root.join("recordings/default.gsrec"), &other).unwrap();
    std::fs::copy(root.join("recordings/conv.safetensors"), dir.path().join("other.safetensors")).unwrap();
    h.state_mut().queue(Command::Open(other));
    step_until(&mut h, |a| a.status.starts_with("no model attached"));
    assert!(h.state().model_path().is_none());
    assert!(h.state().status.contains("is not the model of"), "{}", h.state().status);
}

#[test]
fn every_empty_tab_offers_what_fills_it() {
    let mut h = harness(ViewerApp::new(Persisted::default()));
    h.run();
    // the Examples menu lists the bundled files
    h.get_by_label("Examples").click();
    h.run();
    for e in gatescope::recipe::EXAMPLES {
        h.get_by_label(e.label);
    }
    h.key_press(eframe::egui::Key::Escape);
    h.run();
    // Studies: the bundled sweep report
    h.get_by_label("Sweep / ablation").click();
    h.run();
    h.get_by_label("Open the bundled figure 1: depth sweep report").click();
    step_until(&mut h, |a| a.panels.studies.report.is_some());
    // Figure 4: the bundled lesion report
    h.get_by_label("Figure 4: lesions").click();
    h.run();
    h.get_by_label("Open the bundled figure 4: lesion report of the 50-layer net").click();
    step_until(&mut h, |a| a.panels.lesion.report.is_some());
    // Figure 2: the bundled recording
    h.get_by_label("Figure 2: gates per layer").click();
    h.run();
    h.get_by_label_contains("Open the bundled example").click();
    step_until(&mut h, |a| a.store.snapshots.len() > 1);
    // Compare: B from the bundled recordings
    h.get_by_label("Compare runs").click();
    h.run();
    h.get_by_label("B = 50-layer highway net on MNIST: training recording").click();
    step_until(&mut h, |a| a.panels.compare.other.is_some());
    h.get_by_label("A minus B");
    h.get_by_label_contains("largest |A - B|: 0.0000");
}

#[test]
fn a_model_shows_its_gate_biases_first_then_its_probe_which_can_be_cancelled() {
    let mut app = ViewerApp::new(Persisted::default());
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/default.safetensors");
    app.queue(Command::Open(model));
    let mut h = harness(app);
    step_until(&mut h, |a| !a.store.snapshots.is_empty());
    let first = h.state().store.snapshots[0].clone();
    assert_eq!(first.gate_bias.shape, vec![49, 50], "the first picture: the gate biases");
    assert!(first.mean_gate.is_empty(), "before the probe pass has finished");
    assert!(h.state().probing().is_some());
    step_until(&mut h, |a| !a.store.snapshots[0].mean_gate.is_empty());
    assert!(h.state().probing().is_none());
    assert_eq!(h.state().store.snapshots[0].gate_bias, first.gate_bias);
    // probe again and cancel at once: the pass stops and says so
    h.state_mut().queue(Command::Probe);
    h.state_mut().queue(Command::Cancel);
    // frames, not `run`: how many the UI takes to settle depends on when the worker answers
    // (a fresh clone's run once needed 6, over `run`'s limit of 4)
    step_until(&mut h, |a| a.status.starts_with("probe cancelled"));
    assert!(h.state().probing().is_none());
}

#[test]
fn figure_2_animates_over_the_snapshots_into_a_gif() {
    let dir = tempfile::tempdir().unwrap();
    let gif_path = dir.path().join("gates.gif");
    let mut app = app_with_default_recording();
    let n = app.store.snapshots.len();
    app.queue(Command::ExportAnimation(Some(gif_path.clone())));
    let mut h = harness(app);
    h.run();
    assert!(h.state().status.starts_with(&format!("exported an animation of {n} snapshots")), "{}", h.state().status);
    let frames = crate::common::gif_frames(&gif_path);
    assert_eq!(frames.len(), n);
    let snap = &h.state().store.snapshots[0];
    let size = gatescope::export::Figure::Gates { header: h.state().store.header.as_ref().unwrap(), snapshot: snap, sample: 0 }.size();
    assert!(frames.iter().all(|f| (f.0, f.1) == size));
    assert_ne!(frames[0].2, frames[n - 1].2, "the gates change over training");
}

fn write_recording(path: &std::path::Path, header: &gatescope::snapshot::Header, snaps: &[gatescope::snapshot::Snapshot]) {
    use gatescope::snapshot::Message;
    let mut w = gatescope::record::Writer::create(path, header).unwrap();
    for s in snaps {
        w.write(&Message::Snapshot(Box::new(s.clone()))).unwrap();
    }
}

#[test]
fn the_lesion_panel_lesions_a_layer_live_and_exports_figure_4() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = ViewerApp::new(Persisted::default());
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/default.safetensors");
    app.queue(Command::Open(model));
    let mut h = harness(app);
    step_until(&mut h, |a| a.store.header.is_some() && a.example.is_some());
    let before = h.state().store.snapshots[0].clone();
    h.get_by_label("Figure 4: lesions").click();
    h.run();
    h.get_by_label("No layer lesioned.");
    // pick layer 7 and lesion it: every map of the open model follows
    h.state_mut().panels.lesion.pick = 7;
    h.get_by_label("Lesion this layer").click();
    step_until(&mut h, |a| a.lesioned == Some(7) && a.example.is_some());
    h.get_by_label("layer 7 lesioned");
    let after = h.state().store.snapshots[0].clone();
    let w = 50;
    assert!(after.mean_gate.data[6 * w..7 * w].iter().all(|&t| t == 0.0), "layer 7 (row 6) has its gates closed");
    assert!(before.mean_gate.data[6 * w..7 * w].iter().any(|&t| t > 0.01));
    assert_eq!(after.mean_gate.data[..6 * w], before.mean_gate.data[..6 * w], "layers before 7 are untouched");
    assert!(
        after.test_accuracy < before.test_accuracy,
        "lesioning layer 7 costs accuracy ({} vs {})",
        after.test_accuracy,
        before.test_accuracy
    );
    h.get_by_label("Figure 2: gates per layer").click();
    h.run();
    let uploads = h.state().uploads();
    h.get_by_label("Figure 4: lesions").click();
    h.run();
    h.get_by_label("Clear lesion").click();
    step_until(&mut h, |a| a.lesioned.is_none() && a.status == "no layer lesioned");
    assert_eq!(h.state().store.snapshots[0].mean_gate, before.mean_gate);
    h.get_by_label("Figure 2: gates per layer").click();
    h.run();
    assert!(h.state().uploads() > uploads, "the heatmaps were redrawn after the lesion changed");

    // every layer in turn: the bar chart of Figure 4, then its export
    h.get_by_label("Figure 4: lesions").click();
    h.run();
    // an analysis cancelled midway leaves no report
    h.get_by_label("Lesion every layer (train and test sets)").click();
    step_until(&mut h, |a| a.panels.lesion.progress.is_some_and(|(d, _)| d > 0));
    h.get_by_label("Cancel").click();
    step_until(&mut h, |a| a.status == "lesion analysis cancelled");
    let p = &h.state().panels.lesion;
    assert!(p.report.is_none() && p.progress.is_none() && p.so_far.is_none() && !p.waiting);
    h.get_by_label("Lesion every layer (train and test sets)").click();
    // while it runs, Figure 4 over the examples done so far
    step_until_within(&mut h, 900, |a| a.panels.lesion.so_far.is_some() || a.panels.lesion.report.is_some());
    let so_far = h.state().panels.lesion.so_far.clone().expect("Figure 4 so far, before the report");
    assert!(so_far.train_examples > 0 && so_far.train_examples + so_far.test_examples < 70_000, "{so_far:?}");
    assert_eq!(so_far.layers.len(), 49);
    h.get_by_label_contains("Figure 4 so far, over");
    // 49 layers on 70,000 examples: seconds in release, about a minute in the test profile
    step_until_within(&mut h, 900, |a| a.panels.lesion.report.is_some());
    assert!(h.state().panels.lesion.so_far.is_none(), "the estimate goes with the report");
    let r = h.state().panels.lesion.report.clone().unwrap();
    assert_eq!(r.layers.len(), 49);
    assert_eq!(r.train_examples, 60_000);
    let worst = r.worst().unwrap();
    assert!(worst.layer < 15 && worst.train.error() > 2.0 * r.baseline_train.error(), "an early layer matters most: {worst:?}");
    h.get_by_label_contains("Click a bar to lesion that layer");
    let png = dir.path().join("f4.png");
    h.state_mut().queue(Command::Export(Some(png.clone())));
    h.run();
    assert!(h.state().status.starts_with("exported figure 4"), "{}", h.state().status);
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), gatescope::export::Figure::Lesion(&r).size());
}

#[test]
fn reports_open_in_the_viewer_as_a_table() {
    use gatescope::report::{AblationReport, Report, RunResult, Score};
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, loss: f64| RunResult {
        name: name.into(),
        family: "highway".into(),
        depth: 50,
        width: 50,
        params: 1000,
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 5e-4,
        gate_bias: -2.0,
        epoch_train_loss: vec![1.0, loss],
        train: Score { loss, accuracy: 0.9 },
        test: Score { loss: loss * 2.0, accuracy: 0.875 },
        seconds: 3.0,
        trials: 1,
        diverged: false,
    };
    let report = Report::Ablation(AblationReport {
        dataset: "mnist".into(),
        epochs: 2,
        depth: 50,
        runs: vec![run("highway, adaptive T(x)", 0.125), run("residual", 0.25)],
        seconds: 6.0,
    });
    let path = dir.path().join("ablation.json");
    std::fs::write(&path, serde_json::to_string(&report).unwrap()).unwrap();
    let mut app = app_with_default_recording();
    app.queue(Command::Open(path));
    let mut h = harness(app);
    step_until(&mut h, |a| a.panels.studies.report.is_some());
    h.run();
    assert_eq!(h.state().tab, gatescope::view::app::Tab::Studies);
    h.get_by_label_contains("Gate ablation on mnist: depth 50");
    assert!(h.query_all_by_label("highway, adaptive T(x)").count() >= 1);
    assert!(h.query_all_by_label("residual").count() >= 1);
    h.get_by_label("0.1250");
    assert_eq!(h.query_all_by_label("0.8750").count(), 2, "test accuracy of both runs");
    let svg = dir.path().join("ablation.svg");
    h.state_mut().queue(Command::Export(Some(svg.clone())));
    h.run();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("Gate ablation"), "{}", h.state().status);
    // the figure-2 recording is still open beside the report
    assert!(h.state().store.snapshots.len() >= 30);
}

#[test]
fn two_recordings_side_by_side_and_their_difference() {
    let dir = tempfile::tempdir().unwrap();
    let rec = gatescope::record::open(&gatescope::recipe::default_recording()).unwrap();
    let mut snaps = rec.snapshots.clone();
    for s in &mut snaps {
        s.mean_gate.data[0] += 0.5; // mean T is stored exactly (f32)
    }
    let other = dir.path().join("other.gsrec");
    write_recording(&other, &rec.header, &snaps);
    let small = dir.path().join("small.gsrec");
    write_recording(&small, &common::header(4), &[common::snapshot(1, 4)]);

    let mut h = harness(app_with_default_recording());
    h.run();
    h.get_by_label("Compare runs").click();
    h.run();
    h.get_by_label_contains("Open a second recording (B)");
    h.state_mut().panels.compare.other_path = other.display().to_string();
    h.get_by_label("Open B").click();
    step_until(&mut h, |a| a.panels.compare.other.is_some());
    h.run();
    h.get_by_label_contains("A: default.gsrec (step");
    h.get_by_label_contains("B: other.gsrec (step");
    h.get_by_label("largest |A - B|: 0.5000");
    // another map: the gate biases are the same in both
    h.state_mut().panels.compare.quantity = gatescope::view::panels::Quantity::GateBias;
    h.run();
    h.get_by_label("largest |A - B|: 0.0000");
    // a run of another shape: side by side, but no difference
    h.state_mut().panels.compare.quantity = gatescope::view::panels::Quantity::MeanGate;
    h.state_mut().queue(Command::OpenOther(small));
    step_until(&mut h, |a| a.panels.compare.other.as_ref().is_some_and(|o| o.snapshots.len() == 1));
    h.run();
    h.get_by_label_contains("The maps differ in shape (A: 49 x 50, B: 3 x 3)");
    // a broken file: one error, the comparison stays
    h.state_mut().queue(Command::OpenOther(dir.path().join("missing.gsrec")));
    step_until(&mut h, |a| a.error.is_some());
    h.get_by_label_contains("could not open");
    assert!(h.state().panels.compare.other.is_some());
}

#[test]
fn figure_2_exports_from_the_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(app_with_default_recording());
    h.run();
    let png = dir.path().join("f2.png");
    h.state_mut().queue(Command::Export(Some(png.clone())));
    h.run();
    assert!(h.state().status.starts_with("exported figure 2"), "{}", h.state().status);
    let img = image::open(&png).unwrap();
    let app = h.state();
    let fig = gatescope::export::Figure::Gates {
        header: app.store.header.as_ref().unwrap(),
        snapshot: app.store.snapshots.last().unwrap(),
        sample: 0,
    };
    assert_eq!((img.width(), img.height()), fig.size());
    // a view without a paper figure says so
    h.get_by_label("Layer inspector").click();
    h.run();
    h.state_mut().queue(Command::Export(Some(dir.path().join("x.png"))));
    h.run();
    h.get_by_label_contains("this view has no paper figure");
}

#[test]
fn a_conv_model_shows_a_spatial_gate_map_for_the_traced_example() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("conv.safetensors");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gatescope"))
        .args([
            "train",
            "--quiet",
            "--arch",
            "conv",
            "--depth",
            "3",
            "--width",
            "4",
            "--stages",
            "2",
            "--epochs",
            "1",
            "--max-steps",
            "3",
            "--batch-size",
            "16",
        ])
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut app = ViewerApp::new(Persisted::default());
    app.queue(Command::Open(model));
    let mut h = harness(app);
    step_until_within(&mut h, 300, |a| a.store.header.is_some() && a.example.is_some());
    h.run();
    let ex = h.state().example.as_ref().unwrap();
    assert_eq!(ex.spatial.len(), 2);
    assert_eq!(ex.spatial[0].shape, vec![4, 28, 28]);
    assert_eq!(ex.spatial[1].shape, vec![4, 14, 14], "pooled between the two stages");
    // the snapshot keeps the layer x channel shape of the MLP views
    assert_eq!(h.state().store.snapshots[0].mean_gate.shape, vec![2, 4]);
    h.get_by_label_contains("Spatial transform gate map (conv net)");
    assert_eq!(h.state().panels.figure2.map_rects().len(), 4);
    h.get_by_label_contains("layer 1, channel 0: 28 x 28, mean T");
    h.state_mut().panels.figure2.spatial_pick = (1, 3);
    h.run();
    h.get_by_label_contains("layer 2, channel 3: 14 x 14, mean T");
}

/// A recording written by the Python package (`gatescope.Writer`, from a 2-rank torchrun DDP
/// run of python/examples/train_ddp.py) opens and draws like one of ours.
#[test]
fn a_recording_written_from_pytorch_opens_in_the_viewer() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch-ddp.gsrec");
    let mut app = ViewerApp::new(Persisted::default());
    app.open_recording_now(&path).unwrap();
    assert_eq!(app.store.snapshots.iter().map(|s| s.step).collect::<Vec<_>>(), [0, 100, 200, 300]);
    let mut h = harness(app);
    h.run();
    h.get_by_label("Figure 2: gates per layer");
    h.get_by_label("Mean transform gate outputs");
    h.get_by_label_contains("step 300 (epoch");
    assert!(h.state().uploads() >= 4, "the four maps were drawn");
}

/// A conv highway net through a PyTorch import spec (the bundled conv model written out by
/// `export_torch`: a state_dict with the reference names and its spec) opens, probes and traces.
#[test]
fn a_conv_net_imported_from_a_pytorch_spec_opens_and_traces() {
    let dir = tempfile::tempdir().unwrap();
    let conv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/conv.safetensors");
    let (model, card) = gatescope::model::file::load(&conv).unwrap();
    let spec = gatescope::model::export_torch::write(&model, &card, dir.path()).unwrap();
    let mut app = ViewerApp::new(Persisted::default());
    app.queue(Command::Open(spec));
    let mut h = harness(app);
    step_until(&mut h, |a| a.store.header.is_some() && a.example.is_some());
    let header = h.state().store.header.clone().unwrap();
    assert_eq!(header.card.arch.family, gatescope::arch::Family::Conv);
    assert_eq!(header.card.arch.conv_stages, [3, 3, 3]);
    h.state_mut().queue(Command::TraceExample(7));
    step_until(&mut h, |a| a.example.as_ref().is_some_and(|e| e.index == 7));
    assert_eq!(h.state().example.as_ref().unwrap().gates.shape, vec![9, 16]);
}
