//! The viewer, rendered headless with egui_kittest: open the bundled recording, find widgets by
//! their labels, move the timeline and the sample picker, and check what the views show.

use eframe::egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use gatescope::view::app::{Command, Persisted, ViewerApp};

fn app_with_default_recording() -> ViewerApp {
    let mut app = ViewerApp::new(Persisted::default());
    app.open_recording_now(&gatescope::commands::default_recording()).unwrap();
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
fn figure_3_and_the_layer_inspector() {
    let mut h = harness(app_with_default_recording());
    h.run();
    h.get_by_label("Figure 3: classes").click();
    h.run();
    h.get_by_label_contains("Mean T per class minus mean T over all 10000 probe examples");
    for c in 0..10 {
        h.get_by_label(&c.to_string());
    }
    h.get_by_label("7").click();
    h.run();
    assert_eq!(h.state().enlarged, Some(7));
    h.get_by_label("class 7");
    h.get_by_label("back to all classes").click();
    h.run();
    h.get_by_label("show A minus B").click();
    h.run();
    h.get_by_label("class 0 minus class 1");

    h.get_by_label("Layer inspector").click();
    h.run();
    h.get_by_label("mean change of block output");
    h.get_by_label("fraction of open gates (T > 0.5)");
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

#[test]
fn snapshot_images_of_figures_2_and_3() {
    let mut h = harness(app_with_default_recording());
    h.run();
    h.snapshot("figure2");
    h.get_by_label("Figure 3: classes").click();
    h.run();
    h.snapshot("figure3");
}

/// Steps the harness (without waiting for it to settle) until `done` or 120 s pass.
fn step_until(h: &mut Harness<'static, ViewerApp>, done: impl Fn(&ViewerApp) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
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
fn the_training_panel_streams_a_run_into_the_view() {
    let mut app = ViewerApp::new(Persisted::default());
    (app.form.depth, app.form.width, app.form.epochs, app.form.every_steps) = (4, 16, 1, 100);
    let mut h = harness(app);
    h.run();
    h.get_by_label("Start training").click();
    step_until(&mut h, |a| a.store.snapshots.len() >= 3);
    assert_eq!(h.state().store.source, "viewer training panel");
    assert_eq!(h.state().store.header.as_ref().unwrap().card.arch.depth, 4);
    h.get_by_label("Stop training").click();
    step_until(&mut h, |a| a.status.starts_with("training finished"));
    h.get_by_label("Start training");
    assert!(h.state().store.snapshots.last().unwrap().test_accuracy > 0.2);
}
