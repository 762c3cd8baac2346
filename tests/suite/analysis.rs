//! The analyses end to end through the binary, on the real MNIST and tiny configurations:
//! sweep, ablation (with its random search), lesioning, and the figures they export.

use crate::common;

use std::path::Path;
use std::process::Command;

use gatescope::export::{self, Figure};
use gatescope::report::{LesionReport, LesionRow, Report, Score};

fn gatescope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gatescope"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A PNG decodes to an image of the expected size that is not blank.
fn check_png(path: &Path, size: (u32, u32)) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    assert_eq!(img.dimensions(), size, "{}", path.display());
    let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(inked > (size.0 * size.1 / 50) as usize, "{}: only {inked} non-white pixels", path.display());
}

/// An SVG parses as XML with an <svg> root of the expected size and holds `texts`.
fn check_svg(path: &Path, size: (u32, u32), texts: &[&str]) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some(size.0.to_string().as_str()));
    assert_eq!(root.attribute("height"), Some(size.1.to_string().as_str()));
    let all_text: String = doc.descendants().filter(|n| n.is_text()).map(|n| n.text().unwrap_or("")).collect::<Vec<_>>().join(" ");
    for t in texts {
        assert!(all_text.contains(t), "{}: no text {t:?} in {all_text:?}", path.display());
    }
    // the bundled font travels inside the file, and every text is set in it
    let style: String = doc.descendants().filter(|n| n.has_tag_name("style")).filter_map(|n| n.text()).collect();
    assert!(style.contains("@font-face") && style.contains("data:font/ttf;base64,AAEAAA"), "{}: no embedded font", path.display());
    for n in doc.descendants().filter(|n| n.has_tag_name("text")) {
        assert!(
            n.attribute("font-family").is_some_and(|f| f.starts_with("gatescope-ubuntu-light")),
            "{}: {:?}",
            path.display(),
            n.attribute("font-family")
        );
    }
    doc.descendants().filter(|n| n.has_tag_name("rect")).count()
}

#[test]
fn figures_2_and_3_export_as_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (header, snap) = (common::header(4), common::snapshot(7, 4));
    let fig2 = Figure::Gates { header: &header, snapshot: &snap, sample: 1 };
    let fig3 = Figure::Classes { header: &header, snapshot: &snap };
    for (name, fig) in [("f2", &fig2), ("f3", &fig3)] {
        let png = dir.path().join(format!("{name}.png"));
        export::save(fig, &png).unwrap();
        check_png(&png, fig.size());
        let svg = dir.path().join(format!("{name}.svg"));
        export::save(fig, &svg).unwrap();
        let rects = check_svg(&svg, fig.size(), &["layer", "unit"]);
        // every heatmap cell is a rectangle: 4 maps of 3 × 3 (and 4 × 3) cells, or 2 classes of 3 × 3
        assert!(rects >= if name == "f2" { 39 } else { 18 }, "{name}: {rects} rects");
    }
    let svg = dir.path().join("f2.svg");
    check_svg(&svg, fig2.size(), &["Transform gate biases", "Block outputs (sample 1, class one)", "step 7"]);
    check_svg(&dir.path().join("f3.svg"), fig3.size(), &["zero", "one", "class mean T minus overall mean T"]);
    let err = export::save(&fig2, &dir.path().join("f2.jpg")).unwrap_err();
    assert!(err.to_string().contains(".png or .svg"), "{err}");
}

#[test]
fn figure_4_exports_from_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let s = |e: f64| Score { loss: e * 3.0, accuracy: 1.0 - e };
    let report = LesionReport {
        model: "m".into(),
        dataset: "mnist".into(),
        train_examples: 60_000,
        test_examples: 10_000,
        baseline_train: s(0.01),
        baseline_test: s(0.02),
        layers: (1..10).map(|l| LesionRow { layer: l, train: s(0.01 + 0.05 / l as f64), test: s(0.02 + 0.05 / l as f64) }).collect(),
        train_seconds: 1.0,
        seconds: 1.0,
    };
    let fig = Figure::Lesion(&report);
    let png = dir.path().join("f4.png");
    export::save(&fig, &png).unwrap();
    check_png(&png, fig.size());
    let svg = dir.path().join("f4.svg");
    export::save(&fig, &svg).unwrap();
    let bars = check_svg(&svg, fig.size(), &["lesioned layer", "error rate", "no lesion (1.00 %)"]);
    assert!(bars >= 9, "{bars} bars");
}

#[test]
fn a_conv_sweep_starts_at_the_conv_gate_bias_and_a_given_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sweep.json");
    let tiny = ["--epochs", "1", "--train-examples", "128", "--test-examples", "64", "--batch-size", "64", "--depths", "3"];
    run_ok(gatescope().args(["sweep", "--families", "conv,highway"]).args(tiny).arg("--out").arg(&json));
    let Report::Sweep(r) = Report::read(&json).unwrap() else { panic!("not a sweep report") };
    let bias = |family: &str| r.runs.iter().find(|x| x.family == family).unwrap_or_else(|| panic!("no {family} run")).gate_bias;
    assert_eq!((bias("conv-highway"), bias("highway")), (-1.0, -2.0));
    run_ok(gatescope().args(["sweep", "--families", "conv", "--gate-bias", "-3"]).args(tiny).arg("--out").arg(&json));
    let Report::Sweep(r) = Report::read(&json).unwrap() else { panic!("not a sweep report") };
    assert_eq!(r.runs[0].gate_bias, -3.0);
}

#[test]
fn sweep_runs_end_to_end_and_draws_figure_1() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sweep.json");
    let tiny = ["--epochs", "2", "--train-examples", "512", "--test-examples", "256", "--batch-size", "64"];
    run_ok(gatescope().args(["sweep", "--depths", "2,4"]).args(tiny).arg("--out").arg(&json));
    let Report::Sweep(r) = Report::read(&json).unwrap() else { panic!("not a sweep report") };
    assert_eq!(r.runs.len(), 6, "3 families × 2 depths");
    for family in ["plain", "highway", "residual"] {
        for depth in [2, 4] {
            let run = r.run(family, depth).unwrap_or_else(|| panic!("no {family}-{depth}"));
            assert_eq!(run.epoch_train_loss.len(), 2, "{}", run.name);
            assert!(run.epoch_train_loss.iter().all(|l| l.is_finite() && *l > 0.0 && *l < 5.0), "{}: {:?}", run.name, run.epoch_train_loss);
            assert!(run.train.accuracy > 0.15, "{}: it learned something ({})", run.name, run.train.accuracy);
        }
    }
    // plain nets are wider (71), so a layer has as many parameters as a highway layer
    assert_eq!(r.run("plain", 4).unwrap().width, 71);
    let svg = dir.path().join("f1.svg");
    run_ok(gatescope().arg("export").arg(&json).args(["--figure", "1", "--out"]).arg(&svg));
    check_svg(&svg, Figure::Sweep(&r).size(), &["plain networks", "highway networks", "residual networks", "4 layers", "epoch"]);
    let png = dir.path().join("f1.png");
    run_ok(gatescope().arg("export").arg(&json).args(["--figure", "1", "--out"]).arg(&png));
    check_png(&png, Figure::Sweep(&r).size());

    // the wrong figure for a source gets one clear error
    let out = gatescope().arg("export").arg(&json).args(["--figure", "2"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("figures 2 and 3 are drawn from a recording or a model file"), "{err}");
}

#[test]
fn ablation_with_search_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ablation.json");
    let out = run_ok(
        gatescope()
            .args([
                "ablate",
                "--depth",
                "4",
                "--width",
                "16",
                "--epochs",
                "2",
                "--train-examples",
                "512",
                "--test-examples",
                "256",
                "--batch-size",
                "64",
            ])
            .args(["--search", "2", "--search-epochs", "1", "--search-examples", "256", "--json", "--out"])
            .arg(&json),
    );
    let printed: Report = serde_json::from_str(&out).unwrap();
    let Report::Ablation(r) = Report::read(&json).unwrap() else { panic!("not an ablation report") };
    assert_eq!(printed, Report::Ablation(r.clone()), "--json prints the report it writes");
    let names: Vec<&str> = r.runs.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["highway, adaptive T(x)", "highway, learned T per unit", "highway, fixed T = 0.5", "residual"]);
    for run in &r.runs {
        assert_eq!(run.trials, 2);
        assert_eq!(run.epoch_train_loss.len(), 2);
        assert!(run.train.loss.is_finite() && run.test.accuracy > 0.1, "{}: {:?}", run.name, run.test);
    }
    // A fixed gate has no gate parameters; a learned one has only biases.
    let p = |i: usize| r.runs[i].params;
    assert_eq!(p(0) - p(1), 3 * 16 * 16, "adaptive minus learned: the gate weights of 3 layers");
    assert_eq!(p(1) - p(2), 3 * 16, "learned minus fixed: the gate biases");
    // the search picked its own hyper-parameters
    assert!(r.runs.iter().any(|x| x.lr != 0.1));
}

#[test]
fn lesion_command_reports_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    run_ok(
        gatescope()
            .args(["train", "--quiet", "--depth", "6", "--width", "16", "--epochs", "1", "--max-steps", "100"])
            .arg("--out")
            .arg(&model),
    );
    let json = dir.path().join("lesion.json");
    let out = run_ok(gatescope().arg("lesion").arg(&model).arg("--json").arg("--out").arg(&json));
    let Report::Lesion(r) = serde_json::from_str(&out).unwrap() else { panic!("not a lesion report") };
    assert_eq!(r.layers.iter().map(|x| x.layer).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!((r.train_examples, r.test_examples), (60_000, 10_000));
    let (_, eval) = (0, run_ok(gatescope().arg("eval").arg(&model).arg("--json")));
    let v: serde_json::Value = serde_json::from_str(&eval).unwrap();
    assert!((r.baseline_test.accuracy - v["test_accuracy"].as_f64().unwrap()).abs() < 2e-4, "baseline agrees with eval");
    let png = dir.path().join("f4.png");
    run_ok(gatescope().arg("export").arg(&json).args(["--figure", "4", "--out"]).arg(&png));
    check_png(&png, Figure::Lesion(&r).size());
}

#[test]
fn the_bundled_conv_recording_exports_with_channels_across() {
    let dir = tempfile::tempdir().unwrap();
    let rec = gatescope::record::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/conv.gsrec")).unwrap();
    let snap = rec.snapshots.last().unwrap();
    assert_eq!(snap.mean_gate.shape, vec![9, 16], "9 gated layers × 16 channels");
    for fig in [Figure::Gates { header: &rec.header, snapshot: snap, sample: 0 }, Figure::Classes { header: &rec.header, snapshot: snap }] {
        let svg = dir.path().join("conv.svg");
        export::save(&fig, &svg).unwrap();
        check_svg(&svg, fig.size(), &["layer", "channel"]);
    }
    let svg = dir.path().join("f2.svg");
    export::save(&Figure::Gates { header: &rec.header, snapshot: snap, sample: 0 }, &svg).unwrap();
    check_svg(&svg, (1600, 760), &["10-layer Conv net on mnist", "test accuracy 99.47 %"]);
}
