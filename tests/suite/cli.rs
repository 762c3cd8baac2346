//! The `gatescope` binary end to end: train a small net on the real MNIST, evaluate it,
//! and answer bad input with one clear error.

use std::process::Command;

fn gatescope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gatescope"))
}

#[test]
fn train_then_eval_on_real_mnist() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("small.safetensors");
    let out = gatescope()
        .args(["train", "--quiet", "--depth", "10", "--width", "32", "--epochs", "1", "--max-steps", "300"])
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "train failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("test accuracy"));

    let out = gatescope().arg("eval").arg(&model).arg("--json").output().unwrap();
    assert!(out.status.success(), "eval failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acc = v["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "300 steps of a 10-layer highway net should pass 85 % on MNIST, got {acc}");
    assert!(v["train_accuracy"].as_f64().unwrap() > 0.85);
    assert!(v["train_loss"].as_f64().unwrap() < 0.6 && v["test_loss"].as_f64().unwrap() < 0.6);

    // the card records what was trained
    let card = gatescope::model::file::read_card(&model).unwrap();
    assert_eq!((card.arch.depth, card.arch.width), (10, 32));
    assert_eq!(card.dataset.class_names.len(), 10);
    assert_eq!(card.metrics.unwrap().steps, 300);
}

#[test]
fn bad_input_gets_one_clear_error() {
    let out = gatescope().args(["train", "--depth", "many"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'many' for '--depth"));

    let out = gatescope().args(["eval", "/nonexistent/model.safetensors"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/model.safetensors") && !err.contains("panicked"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":").unwrap();
    let out = gatescope().arg("eval").arg(&junk).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("junk.safetensors") && !err.contains("panicked"), "{err}");

    let out = gatescope().args(["train", "--shift", "9", "--max-steps", "1"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--shift must be at most 8"), "{err}");

    let out = gatescope().args(["train", "--dataset", "cifar10", "--epochs", "1"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--data-dir"), "{err}");
}

#[test]
fn help_lists_every_command_and_flag() {
    let out = gatescope().args(["train", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--dataset",
        "--data-dir",
        "--arch",
        "--depth",
        "--width",
        "--activation",
        "--gate-bias",
        "--optimizer",
        "--schedule",
        "--batch-size",
        "--epochs",
        "--seed",
        "--threads",
        "--out",
    ] {
        assert!(help.contains(flag), "train --help lacks {flag}");
    }
    let out = gatescope().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["train", "eval", "bench"] {
        assert!(help.contains(cmd));
    }
}

#[test]
fn ctrl_c_stops_training_and_still_writes_a_usable_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("stopped.safetensors");
    let child = gatescope()
        .args(["train", "--quiet", "--depth", "6", "--width", "20", "--epochs", "50"])
        .arg("--out")
        .arg(&model)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4)); // well into training
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(interrupted)"));
    let card = gatescope::model::file::read_card(&model).unwrap();
    let m = card.metrics.unwrap();
    assert!(m.interrupted && m.steps > 0 && m.steps < 50 * 468);
    let (back, _) = gatescope::model::file::load(&model).unwrap();
    assert_eq!(back.arch.depth, 6);
}

#[test]
fn device_choice_cpu_auto_and_a_clear_error_for_cuda_without_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let out = gatescope()
        .args(["train", "--quiet", "--depth", "4", "--width", "16", "--epochs", "1", "--max-steps", "20", "--device", "auto"])
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let card = gatescope::model::file::read_card(&model).unwrap();
    assert_eq!(card.training["device"], "auto");
    if !tch::Cuda::is_available() {
        for args in [&["train", "--device", "cuda", "--max-steps", "1"][..], &["eval", "--device", "cuda"][..]] {
            let mut cmd = gatescope();
            cmd.args(args);
            if args[0] == "eval" {
                cmd.arg(&model);
            }
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("--device cuda: no CUDA device is available"), "{err}");
            assert_eq!(err.lines().count(), 1, "one error line: {err}");
        }
    }
}

#[test]
fn init_continues_from_a_saved_model_and_refuses_another_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first.safetensors"), dir.path().join("second.safetensors"));
    let train = |extra: &[&str], out: &std::path::Path| {
        gatescope()
            .args(["train", "--quiet", "--depth", "4", "--width", "16", "--epochs", "1"])
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let out = train(&["--max-steps", "100"], &first);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // one more step at a vanishing learning rate: the parameters are the first model's
    let out = train(&["--max-steps", "1", "--lr", "1e-12", "--warmup-epochs", "0", "--init", first.to_str().unwrap()], &second);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (a, _) = gatescope::model::file::load(&first).unwrap();
    let (b, card) = gatescope::model::file::load(&second).unwrap();
    let diff = f64::try_from((&a.flat - &b.flat).abs().max()).unwrap();
    assert!(diff < 1e-6, "continued from the saved parameters: max difference {diff}");
    assert_eq!(card.training["init"], first.to_str().unwrap());
    // 100 steps in, the continued model is already far better than a fresh one
    assert!(card.metrics.unwrap().test_accuracy > 0.7);

    let out = gatescope()
        .args(["train", "--quiet", "--depth", "5", "--width", "16", "--max-steps", "1", "--init"])
        .arg(&first)
        .arg("--out")
        .arg(&second)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--init") && err.contains("depth 4") && err.contains("depth 5"), "{err}");
    let out = train(&["--max-steps", "1", "--init", "/nonexistent/m.safetensors"], &second);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("/nonexistent/m.safetensors") && !err.contains("panicked"), "{err}");
}

/// Sends SIGINT to `pid` and to its process group.
fn interrupt(pid: u32) {
    // SAFETY: plain kill(2) calls on a child we started in its own process group.
    unsafe {
        libc::kill(pid as i32, libc::SIGINT);
        libc::kill(-(pid as i32), libc::SIGINT);
    }
}

fn no_dump(text: &str) {
    for bad in ["panicked", "RUST_BACKTRACE", "Exception raised", "frame #", "terminate called"] {
        assert!(!text.contains(bad), "{text}");
    }
}

#[test]
fn a_second_ctrl_c_aborts_cleanly_and_a_doubled_one_still_saves() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    // a conv net: its final evaluation takes seconds, so the second Ctrl-C lands inside it
    let train = |out: &std::path::Path| {
        gatescope()
            .args(["train", "--quiet", "--arch", "conv", "--depth", "4", "--width", "8", "--epochs", "50"])
            .arg("--out")
            .arg(out)
            .process_group(0)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // the same keypress delivered twice (to the process and to its group): saved
    let saved = dir.path().join("saved.safetensors");
    let child = train(&saved);
    std::thread::sleep(std::time::Duration::from_secs(4));
    interrupt(child.id());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    no_dump(&text);
    assert_eq!(out.status.code(), Some(130), "{text}");
    assert!(gatescope::model::file::read_card(&saved).unwrap().metrics.unwrap().interrupted);
    // a second Ctrl-C later on: aborted at once, nothing half-written
    let aborted = dir.path().join("aborted.safetensors");
    let child = train(&aborted);
    std::thread::sleep(std::time::Duration::from_secs(4));
    interrupt(child.id());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    interrupt(child.id());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    no_dump(&text);
    assert_eq!(out.status.code(), Some(131), "{text}");
    assert!(text.contains("aborted by a second Ctrl-C: the model was not saved"), "{text}");
    assert!(!aborted.exists() || gatescope::model::file::load(&aborted).is_ok(), "a half-written model");
}

#[test]
fn every_command_says_what_kind_of_file_it_got_and_what_it_needs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let recording = root.join("recordings/default.gsrec");
    let report = root.join("docs/results/ablation.json");
    let other = root.join("README.md");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = gatescope().args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout))
    };
    for cmd in ["eval", "probe", "lesion"] {
        for (file, what) in [(&recording, "is a recording"), (&report, "is a report"), (&other, "is not a gatescope file")] {
            let (ok, text) = run(&[cmd.as_ref(), file.as_os_str()]);
            assert!(!ok, "{cmd} {}", file.display());
            assert!(text.contains(what) && text.contains(&format!("{cmd} needs a model")), "{cmd} {}: {text}", file.display());
            assert!(!text.contains("HeaderTooLarge") && !text.contains("not a valid safetensors"), "{text}");
        }
    }
    let (ok, text) = run(&["info".as_ref(), other.as_os_str()]);
    assert!(!ok && text.contains("README.md is not a gatescope file"), "{text}");
    let (ok, text) = run(&["info".as_ref(), report.as_os_str()]);
    assert!(ok && text.contains("gate ablation on mnist") && text.contains("--figure 1"), "{text}");
    let (ok, text) = run(&["export".as_ref(), other.as_os_str(), "--figure".as_ref(), "2".as_ref()]);
    assert!(!ok && text.contains("is not a gatescope file"), "{text}");
}

#[test]
fn connect_without_a_viewer_says_it_never_connected_and_every_needs_a_unit() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // closed again at once
    let dir = tempfile::tempdir().unwrap();
    let out = gatescope()
        .args([
            "train",
            "--quiet",
            "--depth",
            "3",
            "--width",
            "8",
            "--epochs",
            "1",
            "--max-steps",
            "30",
            "--every",
            "10steps",
            "--probe",
            "500",
        ])
        .arg("--connect")
        .arg(free.to_string())
        .arg("--out")
        .arg(dir.path().join("m.safetensors"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("never reached a viewer at {free}")) && err.contains("4 snapshots not streamed"), "{err}");
    let out = gatescope().args(["train", "--every", "4"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("\"4\" needs a unit: 4steps or 4epochs"), "{err}");
}

#[test]
fn export_and_the_studies_take_a_device() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/default.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let out = gatescope()
        .arg("export")
        .arg(&model)
        .args(["--figure", "2", "--device", "cuda", "--out"])
        .arg(dir.path().join("f.png"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        assert!(err.contains("--device cuda: no CUDA device is available"), "{err}");
    }
    let help = String::from_utf8_lossy(&gatescope().args(["sweep", "--help"]).output().unwrap().stdout).to_string();
    assert!(help.contains("--device <DEVICE>"), "{help}");
}

#[test]
fn train_takes_train_and_test_examples_and_sweep_a_width() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.safetensors");
    let out = gatescope()
        .args(["train", "--quiet", "--depth", "3", "--width", "8", "--epochs", "1", "--train-examples", "640", "--test-examples", "100"])
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = gatescope::model::file::read_card(&model).unwrap().metrics.unwrap();
    assert_eq!(m.steps, 5, "640 examples are 5 batches of 128");
    let json = dir.path().join("s.json");
    let out = gatescope()
        .args([
            "sweep",
            "--families",
            "plain,highway",
            "--depths",
            "2",
            "--width",
            "12",
            "--epochs",
            "1",
            "--train-examples",
            "256",
            "--test-examples",
            "64",
        ])
        .arg("--out")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let gatescope::report::Report::Sweep(r) = gatescope::report::Report::read(&json).unwrap() else { panic!("not a sweep") };
    assert!(r.runs.iter().all(|x| x.width == 12), "{:?}", r.runs.iter().map(|x| x.width).collect::<Vec<_>>());
}

#[test]
fn human_output_has_no_rust_debug_text() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let (model, rec, report) =
        (root.join("recordings/default.safetensors"), root.join("recordings/conv.gsrec"), root.join("docs/results/sweep.json"));
    let svg = dir.path().join("f3.svg");
    let runs: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["info".into(), model.clone().into()],
        vec!["info".into(), rec.clone().into()],
        vec!["info".into(), report.clone().into()],
        vec!["probe".into(), model.clone().into(), "--probe".into(), "1000".into(), "--out".into(), dir.path().join("p.gsrec").into()],
        vec!["export".into(), rec.clone().into(), "--figure".into(), "3".into(), "--out".into(), svg.clone().into()],
        vec!["eval".into(), rec.clone().into()],
        vec!["train".into(), "--every".into(), "3".into()],
        vec![
            "train".into(),
            "--quiet".into(),
            "--depth".into(),
            "3".into(),
            "--max-steps".into(),
            "2".into(),
            "--init".into(),
            model.clone().into(),
            "--out".into(),
            dir.path().join("m.safetensors").into(),
        ],
    ];
    // the studies, the lesion, the bench and the rest, on a tiny model and tiny budgets
    let tiny = dir.path().join("tiny.safetensors");
    let tiny_rec = dir.path().join("tiny.gsrec");
    let small = |more: &[&str]| -> Vec<std::ffi::OsString> { more.iter().map(|s| s.into()).collect() };
    let d = |name: &str| -> std::ffi::OsString { dir.path().join(name).into() };
    let mut studies: Vec<Vec<std::ffi::OsString>> = vec![
        [
            small(&["train", "--quiet", "--depth", "4", "--width", "8", "--max-steps", "20", "--every", "10steps", "--record"]),
            vec![tiny_rec.clone().into(), "--out".into(), tiny.clone().into()],
        ]
        .concat(),
        vec!["lesion".into(), tiny.clone().into()],
        vec!["lesion".into(), tiny_rec.clone().into()],
        [
            small(&["sweep", "--depths", "3", "--families", "highway,plain", "--width", "8", "--epochs", "1"]),
            small(&["--train-examples", "256", "--test-examples", "256", "--out"]),
            vec![d("s.json")],
        ]
        .concat(),
        [
            small(&[
                "ablate",
                "--depth",
                "3",
                "--width",
                "8",
                "--epochs",
                "1",
                "--train-examples",
                "256",
                "--test-examples",
                "256",
                "--out",
            ]),
            vec![d("a.json")],
        ]
        .concat(),
        small(&["bench", "--steps", "5", "--warmup", "1", "--rounds", "1"]),
        [small(&["export"]), vec![tiny_rec.clone().into()], small(&["--figure", "3", "--animate"]), vec![d("t.gif")]].concat(),
        [small(&["dump"]), vec![tiny_rec.clone().into()], small(&["--out"]), vec![d("t.safetensors")]].concat(),
        [small(&["export-torch"]), vec![tiny.clone().into()], small(&["--out"]), vec![d("torch")]].concat(),
        [small(&["info"]), vec![d("s.json")]].concat(),
    ];
    studies.extend(runs);
    for args in studies {
        let out = gatescope().args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        for debug in ["Some(", "None", "Highway", "Conv ", "Tanh", "Relu", "Mnist", "Adaptive", "Corrupt {", "Error {"] {
            assert!(!text.contains(debug), "{args:?} prints {debug:?}: {text}");
        }
    }
    for made in ["tiny.safetensors", "s.json", "a.json", "t.gif", "t.safetensors", "torch/model.safetensors"] {
        assert!(dir.path().join(made).is_file(), "{made} was not written: a command above failed");
    }
    // nor a "-0.00" tick on Figure 3's colorbar
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(!text.contains(">-0.00<"), "a -0.00 tick");
}

/// `info` tells the truth: the gate mode, the bias where there are gates (the initial one of a
/// gatescope run, the mean learned one of an import), the parameters, where the weights came from.
#[test]
fn info_says_gate_mode_bias_parameters_and_origin() {
    let info = |path: &std::path::Path| {
        let out = gatescope().arg("info").arg(path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let default = info(&root.join("recordings/default.safetensors"));
    for want in ["289660 parameters", "gates: adaptive", "initial gate bias -2", "weights: trained by gatescope"] {
        assert!(default.contains(want), "{want:?} not in {default}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (model, card) = gatescope::model::file::load(&root.join("recordings/default.safetensors")).unwrap();
    let spec = gatescope::model::export_torch::write(&model, &card, dir.path()).unwrap();
    let mean = model.gate_biases().unwrap().mean(tch::Kind::Float).double_value(&[]);
    let imported = info(&spec);
    for want in [format!("mean gate bias {mean:.3}"), "imported from pytorch".into(), "289660 parameters".into()] {
        assert!(imported.contains(&want), "{want:?} not in {imported}");
    }
    assert!(!imported.contains("initial gate bias"));
    let plain = dir.path().join("plain.safetensors");
    let out = gatescope()
        .args(["train", "--quiet", "--arch", "plain", "--depth", "3", "--width", "8", "--max-steps", "2", "--train-examples", "512"])
        .arg("--out")
        .arg(&plain)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plain = info(&plain);
    assert!(plain.contains("plain net") && !plain.contains("gates:") && !plain.contains("gate bias"), "a plain net has no gates: {plain}");
}

#[test]
fn a_recorded_run_names_its_model_and_animates_into_a_gif() {
    let dir = tempfile::tempdir().unwrap();
    let (rec, model) = (dir.path().join("r.gsrec"), dir.path().join("m.safetensors"));
    let out = gatescope()
        .args(["train", "--quiet", "--depth", "6", "--width", "16", "--max-steps", "200", "--every", "50steps"])
        .arg("--record")
        .arg(&rec)
        .arg("--out")
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = gatescope::record::open(&rec).unwrap();
    assert_eq!(r.header.model.as_deref(), Some("m.safetensors"), "beside the recording: its bare name");
    assert_eq!(gatescope::session::model_of_recording(&rec, &r.header), Some(model.clone()));
    let info = gatescope().arg("info").arg(&rec).output().unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains(&format!("model: {} (the viewer attaches it", model.display())), "{text}");
    let n = r.snapshots.len();
    assert!(n >= 4, "{n} snapshots");
    for figure in ["2", "3"] {
        let gif = dir.path().join(format!("f{figure}.gif"));
        let out = gatescope().arg("export").arg(&rec).args(["--figure", figure, "--animate"]).arg(&gif).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{n} frames")));
        let frames = crate::common::gif_frames(&gif);
        assert_eq!(frames.len(), n);
        let snap = &r.snapshots[0];
        let size = match figure {
            "2" => gatescope::export::Figure::Gates { header: &r.header, snapshot: snap, sample: 0 }.size(),
            _ => gatescope::export::Figure::Classes { header: &r.header, snapshot: snap }.size(),
        };
        assert!(frames.iter().all(|f| (f.0, f.1) == size), "frames of {size:?}");
        assert_ne!(frames[0].2, frames[n - 1].2, "figure {figure}: the first and the last frame differ");
    }
    let out = gatescope().arg("export").arg(&rec).args(["--figure", "4", "--animate", "x.gif"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--animate draws figure 2 or 3"));
    let out = gatescope().arg("export").arg(&model).args(["--figure", "2", "--animate"]).arg(dir.path().join("m.gif")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("an animation is drawn from a recording"));
}

/// `bench --reference python` runs the project's PyTorch references (real torch, from the venv
/// of scripts/setup-python.sh, which scripts/test names in GATESCOPE_PYTHON) beside ours.
#[test]
fn bench_times_the_conv_net_beside_the_pytorch_references() {
    let out = gatescope()
        .args(["bench", "--arch", "conv", "--steps", "3", "--warmup", "1", "--rounds", "1", "--reference", "python", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["model"].as_str().unwrap().starts_with("conv highway"));
    // its CPU step, and autograd beside it
    let (ours, autograd) = (v["fast_samples_per_s"].as_f64().unwrap(), v["autograd_samples_per_s"].as_f64().unwrap());
    assert!(ours > 10.0 && autograd > 10.0, "{ours} {autograd}");
    assert!((v["fast_over_autograd"].as_f64().unwrap() - ours / autograd).abs() < 1e-9);
    // 85.8 MFLOP a sample: 14.3 million multiply-adds, each three times (the first layer's twice)
    assert_eq!(v["flop_per_sample"].as_f64().unwrap(), 85_801_920.0);
    // the share of this machine's FMA peak, measured on the same threads (AVX2 or AVX-512 here)
    let (peak, share) = (v["peak"]["gflop_per_s"].as_f64().unwrap(), v["percent_of_peak"].as_f64().unwrap());
    assert_eq!(v["peak"]["threads"].as_u64(), v["threads"].as_u64());
    assert!(["avx2", "avx512"].contains(&v["peak"]["isa"].as_str().unwrap()), "{}", v["peak"]);
    assert!(peak > 1.0 && share > 0.0 && share < 100.0, "{share} % of {peak} GFLOP/s");
    assert!((share - 100.0 * v["gflop_per_s"].as_f64().unwrap() / peak).abs() < 1e-9);
    let refs = v["references"].as_array().unwrap();
    let systems: Vec<&str> = refs.iter().map(|r| r["system"].as_str().unwrap()).collect();
    assert_eq!(systems, ["pytorch eager", "pytorch torch.compile"]);
    for r in refs {
        let (s, x) = (r["samples_per_s"].as_f64().unwrap(), r["ours_over_it"].as_f64().unwrap());
        assert!(s > 10.0 && (x - ours / s).abs() < 1e-9, "{r}");
    }
    // a Python that is not there: one clear error
    let out = gatescope()
        .args(["bench", "--arch", "conv", "--steps", "1", "--rounds", "1", "--reference", "/nonexistent/python"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("running the PyTorch reference with /nonexistent/python"), "{err}");
    let out = gatescope().args(["bench", "--reference=-3"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("a throughput must be a positive number"));
}

/// A recording that stops being writable mid-run (here the file-size limit, `ulimit -f`) ends
/// the run with one error that names the recording and the cause, and what was written before
/// still opens.
#[test]
#[cfg(target_os = "linux")]
fn a_recording_that_cannot_be_written_ends_the_run_with_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("r.gsrec");
    // SIGXFSZ ignored (an ignored signal stays ignored through exec): writes past 64 KiB fail
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -f 128; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_gatescope"))
        .args(["train", "--quiet", "--depth", "20", "--width", "50", "--max-steps", "60", "--every", "10steps", "--record"])
        .arg(&rec)
        .arg("--out")
        .arg(dir.path().join("m.safetensors"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("writing recording").count(), 1, "{err}");
    assert!(err.contains(&rec.display().to_string()) && err.contains("File too large"), "{err}");
    no_dump(&err);
    let r = gatescope::record::open(&rec).unwrap();
    assert!(r.snapshots.len() < 7, "{} snapshots", r.snapshots.len());
}
