//! PyTorch import: a state_dict with the reference module's names (written here with the
//! safetensors crate, as `safetensors.torch.save_file` writes it) and a JSON spec. The gate and
//! block outputs are checked against a forward computed independently, in f64, in this file.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use gatescope::model::{file, images_tensor, ForwardOpts};
use safetensors::{tensor::TensorView, Dtype};

const DEPTH: usize = 5; // 1 plain + 4 highway layers
const WIDTH: usize = 12;

/// A deterministic pseudo-random stream in [-1, 1).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

/// The state_dict of the reference module: name → (shape, values).
fn state_dict(names: &dyn Fn(&str, Option<usize>) -> String) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut r = Lcg(42);
    let mut t = |shape: Vec<usize>, scale: f64, shift: f64| -> (Vec<usize>, Vec<f32>) {
        let n = shape.iter().product();
        (shape, (0..n).map(|_| (r.next() * scale + shift) as f32).collect())
    };
    let mut out = Vec::new();
    let mut push = |name: String, (shape, v): (Vec<usize>, Vec<f32>)| out.push((name, shape, v));
    push(names("input_weight", None), t(vec![WIDTH, 784], 0.08, 0.0));
    push(names("input_bias", None), t(vec![WIDTH], 0.1, 0.0));
    for i in 0..DEPTH - 1 {
        push(names("block_weight", Some(i)), t(vec![WIDTH, WIDTH], 0.5, 0.0));
        push(names("block_bias", Some(i)), t(vec![WIDTH], 0.2, 0.0));
        push(names("gate_weight", Some(i)), t(vec![WIDTH, WIDTH], 0.8, 0.0));
        push(names("gate_bias", Some(i)), t(vec![WIDTH], 1.0, -1.0));
    }
    push(names("output_weight", None), t(vec![10, WIDTH], 0.5, 0.0));
    push(names("output_bias", None), t(vec![10], 0.1, 0.0));
    out
}

fn default_names(what: &str, i: Option<usize>) -> String {
    let i = i.map(|i| i.to_string()).unwrap_or_default();
    match what {
        "input_weight" => "inp.weight".into(),
        "input_bias" => "inp.bias".into(),
        "block_weight" => format!("layers.{i}.h.weight"),
        "block_bias" => format!("layers.{i}.h.bias"),
        "gate_weight" => format!("layers.{i}.t.weight"),
        "gate_bias" => format!("layers.{i}.t.bias"),
        "output_weight" => "out.weight".into(),
        _ => "out.bias".into(),
    }
}

fn write_safetensors(path: &Path, sd: &[(String, Vec<usize>, Vec<f32>)], dtype: Dtype) {
    let bytes: Vec<Vec<u8>> = sd
        .iter()
        .map(|(_, _, v)| match dtype {
            Dtype::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
        .collect();
    let views: Vec<(String, TensorView)> =
        sd.iter().zip(&bytes).map(|((n, s, _), b)| (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap())).collect();
    safetensors::tensor::serialize_to_file(views, &None::<HashMap<String, String>>, path).unwrap();
}

fn spec(weights: &str, keys: Option<serde_json::Value>) -> String {
    let mut v = serde_json::json!({
        "format": "gatescope-pytorch-spec", "weights": weights, "depth": DEPTH, "width": WIDTH,
        "activation": "tanh", "input_dim": 784, "classes": 10, "dataset": "mnist",
    });
    if let Some(k) = keys {
        v["keys"] = k;
    }
    v.to_string()
}

/// The reference forward in f64: per highway layer, T and the block output y.
fn reference(
    sd: &[(String, Vec<usize>, Vec<f32>)],
    names: &dyn Fn(&str, Option<usize>) -> String,
    x: &[f64],
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let get = |n: String| sd.iter().find(|(m, _, _)| *m == n).map(|(_, _, v)| v.iter().map(|&f| f as f64).collect::<Vec<f64>>()).unwrap();
    let linear = |w: &[f64], b: &[f64], x: &[f64]| -> Vec<f64> {
        (0..b.len()).map(|o| b[o] + (0..x.len()).map(|i| w[o * x.len() + i] * x[i]).sum::<f64>()).collect()
    };
    let mut a: Vec<f64> = linear(&get(names("input_weight", None)), &get(names("input_bias", None)), x).iter().map(|v| v.tanh()).collect();
    let (mut gates, mut blocks) = (vec![], vec![a.clone()]);
    for i in 0..DEPTH - 1 {
        let h: Vec<f64> =
            linear(&get(names("block_weight", Some(i))), &get(names("block_bias", Some(i))), &a).iter().map(|v| v.tanh()).collect();
        let t: Vec<f64> = linear(&get(names("gate_weight", Some(i))), &get(names("gate_bias", Some(i))), &a)
            .iter()
            .map(|v| 1.0 / (1.0 + (-v).exp()))
            .collect();
        a = (0..WIDTH).map(|u| h[u] * t[u] + a[u] * (1.0 - t[u])).collect();
        gates.push(t);
        blocks.push(a.clone());
    }
    (gates, blocks)
}

fn check_against_reference(
    model_path: &Path,
    sd: &[(String, Vec<usize>, Vec<f32>)],
    names: &dyn Fn(&str, Option<usize>) -> String,
    tol: f64,
) {
    let (model, card) = file::load(model_path).unwrap();
    assert_eq!((card.arch.depth, card.arch.width), (DEPTH, WIDTH));
    let data = gatescope::data::load(gatescope::data::DatasetKind::Mnist, None).unwrap();
    for idx in [0usize, 7, 123] {
        let img = &data.train.images[idx * 784..(idx + 1) * 784];
        let x: Vec<f64> = img.iter().map(|&p| p as f64 / 255.0).collect();
        let (gates, blocks) = reference(sd, names, &x);
        let fwd = tch::no_grad(|| model.forward(&images_tensor(img, 784), ForwardOpts { trace: true, lesion: None, ..Default::default() }));
        assert_eq!((fwd.gates.len(), fwd.blocks.len()), (DEPTH - 1, DEPTH));
        let mut worst = 0f64;
        for (ours, theirs) in fwd.gates.iter().zip(&gates).chain(fwd.blocks.iter().zip(&blocks)) {
            let v: Vec<f32> = Vec::try_from(ours.view([-1])).unwrap();
            for (a, b) in v.iter().zip(theirs) {
                worst = worst.max((*a as f64 - b).abs());
            }
        }
        assert!(worst < tol, "example {idx}: largest difference {worst:e}");
        // the gates are not saturated everywhere, so the check means something
        assert!(gates.iter().flatten().any(|t| *t > 0.05 && *t < 0.95));
    }
}

#[test]
fn a_pytorch_state_dict_opens_with_its_spec_and_matches_an_independent_forward() {
    let dir = tempfile::tempdir().unwrap();
    let sd = state_dict(&default_names);
    write_safetensors(&dir.path().join("model.safetensors"), &sd, Dtype::F32);
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec("model.safetensors", None)).unwrap();
    check_against_reference(&spec_path, &sd, &default_names, 1e-5);
    // the spec beside the weights (model.json for model.safetensors) works too
    std::fs::copy(&spec_path, dir.path().join("model.json")).unwrap();
    check_against_reference(&dir.path().join("model.safetensors"), &sd, &default_names, 1e-5);
}

#[test]
fn the_spec_maps_other_names_and_half_precision_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let names = |what: &str, i: Option<usize>| -> String {
        let i = i.map(|i| i.to_string()).unwrap_or_default();
        match what {
            "input_weight" => "stem.weight".into(),
            "input_bias" => "stem.bias".into(),
            "block_weight" => format!("blocks.{i}.transform.weight"),
            "block_bias" => format!("blocks.{i}.transform.bias"),
            "gate_weight" => format!("blocks.{i}.gate.weight"),
            "gate_bias" => format!("blocks.{i}.gate.bias"),
            "output_weight" => "head.weight".into(),
            _ => "head.bias".into(),
        }
    };
    let sd = state_dict(&names);
    write_safetensors(&dir.path().join("w.safetensors"), &sd, Dtype::F16);
    let keys = serde_json::json!({
        "input_weight": "stem.weight", "input_bias": "stem.bias",
        "block_weight": "blocks.{i}.transform.weight", "block_bias": "blocks.{i}.transform.bias",
        "gate_weight": "blocks.{i}.gate.weight", "gate_bias": "blocks.{i}.gate.bias",
        "output_weight": "head.weight", "output_bias": "head.bias",
    });
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec("w.safetensors", Some(keys))).unwrap();
    // the reference uses the f16-rounded weights
    let rounded: Vec<_> =
        sd.iter().map(|(n, s, v)| (n.clone(), s.clone(), v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect())).collect();
    check_against_reference(&spec_path, &rounded, &names, 1e-5);
}

#[test]
fn a_wrong_spec_gets_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sd = state_dict(&default_names);
    write_safetensors(&dir.path().join("model.safetensors"), &sd, Dtype::F32);
    let err = |text: String| {
        let p = dir.path().join("bad.json");
        std::fs::write(&p, text).unwrap();
        format!("{:#}", file::load(&p).err().expect("must fail"))
    };
    let e = err(spec("model.safetensors", None).replace("\"depth\":5", "\"depth\":4"));
    assert!(e.contains("tensors the spec does not account for") && e.contains("layers.3.h.weight"), "{e}");
    let e = err(spec("model.safetensors", None).replace("\"width\":12", "\"width\":10"));
    assert!(e.contains("inp.weight has shape [12, 784], the spec implies [10, 784]"), "{e}");
    let e = err(spec("model.safetensors", Some(serde_json::json!({"gate_weight": "layers.{i}.gate.weight"}))));
    assert!(e.contains("\"layers.0.gate.weight\" (for layers.1.gate.weight) is missing"), "{e}");
    let e = err(spec("nothing.safetensors", None));
    assert!(e.contains("reading the weights") && e.contains("nothing.safetensors"), "{e}");
    // a state_dict without a spec says where the spec goes
    let lone = dir.path().join("lone.safetensors");
    std::fs::copy(dir.path().join("model.safetensors"), &lone).unwrap();
    let e = format!("{:#}", file::load(&lone).err().unwrap());
    assert!(e.contains("write an import spec at") && e.contains("lone.json"), "{e}");
}

#[test]
fn every_model_command_takes_an_imported_model() {
    let dir = tempfile::tempdir().unwrap();
    let sd = state_dict(&default_names);
    write_safetensors(&dir.path().join("model.safetensors"), &sd, Dtype::F32);
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec("model.safetensors", None)).unwrap();
    let bin = env!("CARGO_BIN_EXE_gatescope");
    let run = |args: &[&str]| {
        let out = Command::new(bin).args(args).arg(&spec_path).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&run(&["eval", "--json"])).unwrap();
    assert!(v["test_accuracy"].as_f64().unwrap() >= 0.0);
    assert!(run(&["info"]).contains("highway net, depth 5, width 12"));
    let lesion: serde_json::Value = serde_json::from_str(&run(&["lesion", "--json"])).unwrap();
    assert_eq!(lesion["layers"].as_array().unwrap().len(), 4);
    let rec = dir.path().join("p.gsrec");
    let out = Command::new(bin).arg("probe").arg(&spec_path).arg("--out").arg(&rec).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(gatescope::record::open(&rec).unwrap().header.card.arch.depth, DEPTH);
    let png = dir.path().join("f2.png");
    let out = Command::new(bin).arg("export").arg(&spec_path).args(["--figure", "2", "--out"]).arg(&png).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_viewer_opens_an_imported_model() {
    let dir = tempfile::tempdir().unwrap();
    let sd = state_dict(&default_names);
    write_safetensors(&dir.path().join("model.safetensors"), &sd, Dtype::F32);
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec("model.safetensors", None)).unwrap();
    use gatescope::view::app::{Command, Persisted, ViewerApp};
    let mut app = ViewerApp::new(Persisted::default());
    app.queue(Command::Open(spec_path));
    let mut h = egui_kittest::Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut ViewerApp| app.show(ui), app);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while h.state().example.is_none() {
        assert!(std::time::Instant::now() < deadline, "timed out; status: {}", h.state().status);
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let app = h.state();
    let rec = &app.store;
    assert_eq!(rec.header.as_ref().unwrap().card.arch.depth, DEPTH);
    assert_eq!(rec.snapshots[0].mean_gate.shape, vec![DEPTH - 1, WIDTH]);
    assert!(app.error.is_none(), "{:?}", app.error);
}
