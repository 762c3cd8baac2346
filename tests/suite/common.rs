//! Fixtures shared by the integration tests.
#![allow(dead_code)]

use gatescope::arch::{Activation, Arch, Family};
use gatescope::card::{DatasetInfo, ModelCard};
use gatescope::data::DatasetKind;
use gatescope::snapshot::{Array, Header, LayerStats, Snapshot};

/// A header for a depth-4, width-3 highway net on 2 classes with `k` probe samples.
pub fn header(k: usize) -> Header {
    let arch = Arch {
        family: Family::Highway,
        depth: 4,
        width: 3,
        input_dim: 4,
        classes: 2,
        activation: Activation::Tanh,
        gate_bias: -2.0,
        residual_block_layers: 2,
        gate: gatescope::arch::GateMode::Adaptive,
        fixed_gate: 0.5,
        conv_stages: vec![],
        image_shape: None,
    };
    let info = DatasetInfo { name: DatasetKind::Mnist, class_names: vec!["zero".into(), "one".into()], image_shape: [1, 2, 2] };
    Header {
        card: ModelCard::new(arch, info, serde_json::json!({"lr": 0.1})),
        source: "test".into(),
        model: None,
        probe_size: 100,
        sample_indices: (0..k as u32).collect(),
        sample_labels: (0..k as u32).map(|i| i % 2).collect(),
        sample_images: (0..k * 4).map(|i| (i * 7) as u8).collect(),
    }
}

fn arr(shape: Vec<usize>, f: impl Fn(usize) -> f32) -> Array {
    let n = shape.iter().product();
    Array::new(shape, (0..n).map(f).collect())
}

pub fn snapshot(step: u64, k: usize) -> Snapshot {
    let (l, w, c, d) = (3, 3, 2, 4);
    Snapshot {
        step,
        epoch: step as f64 / 10.0,
        train_loss: if step == 0 { f64::NAN } else { 1.0 / step as f64 },
        train_accuracy: 0.5,
        test_accuracy: 0.25,
        gate_bias: arr(vec![l, w], |i| -2.0 + i as f32 * 0.01 + step as f32),
        mean_gate: arr(vec![l, w], |i| 0.1 + i as f32 / 100.0),
        sample_gates: arr(vec![k, l, w], |i| (i % 17) as f32 / 16.0),
        sample_blocks: arr(vec![k, d, w], |i| ((i as f32) * 0.37).sin()),
        sample_predictions: (0..k as u32).map(|i| (i + 1) % 2).collect(),
        class_mean_gate: arr(vec![c, l, w], |i| 0.1 + i as f32 / 64.0),
        layers: (1..4).map(|l| LayerStats { layer: l, mean_gate: 0.1 * l as f32, open_fraction: 0.01, mean_change: f32::NAN }).collect(),
    }
}

/// Trains as `cfg` says and returns the outcome with every batch's loss, in order.
pub fn train_with_losses(cfg: &gatescope::train::TrainConfig, data: &gatescope::data::Dataset) -> (gatescope::train::Outcome, Vec<f64>) {
    struct Losses(Vec<f64>);
    impl gatescope::train::Observer for Losses {
        fn on_batch(&mut self, s: &gatescope::train::BatchStats, _: &gatescope::model::Model) -> anyhow::Result<()> {
            self.0.push(s.loss);
            Ok(())
        }
    }
    let mut obs = Losses(vec![]);
    let out = gatescope::train::train(cfg, data, &std::sync::atomic::AtomicBool::new(false), &mut obs).unwrap();
    (out, obs.0)
}

/// The mean of the first and of the last `n` values.
pub fn first_and_last_mean(v: &[f64], n: usize) -> (f64, f64) {
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    (mean(&v[..n]), mean(&v[v.len() - n..]))
}

/// The frames of a GIF, composed: (width, height, RGBA pixels) each.
pub fn gif_frames(path: &std::path::Path) -> Vec<(u32, u32, Vec<u8>)> {
    let mut opts = gif::DecodeOptions::new();
    opts.set_color_output(gif::ColorOutput::RGBA);
    let mut d = opts.read_info(std::fs::File::open(path).unwrap()).unwrap();
    let (w, h) = (d.width() as u32, d.height() as u32);
    let mut out = Vec::new();
    while let Some(f) = d.read_next_frame().unwrap() {
        assert_eq!((f.left, f.top, f.width as u32, f.height as u32), (0, 0, w, h), "whole frames");
        out.push((w, h, f.buffer.to_vec()));
    }
    out
}
