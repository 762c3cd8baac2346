//! Probe passes against a direct computation, and snapshots through a real training process.

use gatescope::data::{self, DatasetKind};
use gatescope::model::{Arch, ForwardOpts, Model};
use gatescope::probe::{self, ProbeSet, ProbeSize, Progress};
use tch::{Kind, Tensor};

fn to_vec(t: &Tensor) -> Vec<f32> {
    let t = t.to_kind(Kind::Float).contiguous().view([-1]);
    let n = t.size()[0] as usize;
    let mut v = vec![0f32; n];
    t.copy_data(&mut v, n);
    v
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn a_probe_pass_reproduces_a_direct_computation() {
    let data = data::load(DatasetKind::Mnist, None).unwrap();
    let arch = Arch { depth: 8, width: 12, ..Arch::figure2() };
    let model = Model::new(arch, 5).unwrap();
    let probe = ProbeSet::new(&data, ProbeSize::Count(6000), 13);
    assert_eq!(probe.len(), 6000);
    // K samples spread across the classes
    assert_eq!(probe.sample_labels[..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(probe.sample_labels[10..], [0, 1, 2]);
    for (&i, &l) in probe.sample_indices.iter().zip(&probe.sample_labels) {
        assert_eq!(data.train.labels[i as usize] as u32, l);
    }
    let progress = Progress { step: 7, epoch: 0.5, train_loss: 1.0, train_accuracy: 0.5, test_accuracy: None };
    let snap = probe::snapshot(&model, &probe, progress, None);

    // the direct computation: one autograd-free pass of the generic forward over all 6000
    // (the probe set keeps its pixels as u8)
    assert_eq!(probe.x.kind(), Kind::Uint8);
    let x = gatescope::model::images_f32(&probe.x);
    let direct = tch::no_grad(|| model.forward_with(&model.flat, &x, ForwardOpts { trace: true, lesion: None, ..Default::default() }));
    let t = Tensor::stack(&direct.gates, 1); // [N, L, W]
    assert!(!t.requires_grad());
    assert_eq!(snap.mean_gate.shape, [7, 12]);
    assert!(close(&snap.mean_gate.data, &to_vec(&t.mean_dim([0i64].as_slice(), false, Kind::Float)), 1e-5));
    let labels: Vec<i64> = (0..6000).map(|i| data.train.labels[i] as i64).collect();
    for c in [0usize, 3, 9] {
        let idx: Vec<i64> = (0..6000).filter(|&i| labels[i as usize] == c as i64).collect();
        let tc = t.index_select(0, &Tensor::from_slice(&idx)).mean_dim([0i64].as_slice(), false, Kind::Float);
        assert!(close(snap.class_mean_gate.row(c), &to_vec(&tc), 1e-5), "class {c}");
    }
    let open = to_vec(&t.gt(0.5).to_kind(Kind::Float).mean_dim([0i64, 2].as_slice(), false, Kind::Float));
    let y = Tensor::stack(&direct.blocks, 1); // [N, depth, W]
    let change = to_vec(&(y.narrow(1, 1, 7) - y.narrow(1, 0, 7)).abs().mean_dim([0i64, 2].as_slice(), false, Kind::Float));
    for (i, l) in snap.layers.iter().enumerate() {
        assert_eq!(l.layer as usize, i + 1);
        assert!((l.open_fraction - open[i]).abs() < 1e-6);
        assert!((l.mean_change - change[i]).abs() < 1e-5, "{} vs {}", l.mean_change, change[i]);
        let m: f32 = snap.mean_gate.row(i).iter().sum::<f32>() / 12.0;
        assert!((l.mean_gate - m).abs() < 1e-6);
    }
    // the samples' own maps
    let sf =
        tch::no_grad(|| model.forward_with(&model.flat, &probe.sample_x, ForwardOpts { trace: true, lesion: None, ..Default::default() }));
    assert!(close(&snap.sample_gates.data, &to_vec(&Tensor::stack(&sf.gates, 1)), 1e-6));
    assert!(close(&snap.sample_blocks.data, &to_vec(&Tensor::stack(&sf.blocks, 1)), 1e-6));
    assert_eq!(snap.sample_blocks.shape, [13, 8, 12]);
    let preds: Vec<u32> = to_vec(&sf.logits.argmax(-1, false)).iter().map(|&p| p as u32).collect();
    assert_eq!(snap.sample_predictions, preds);
    assert!(close(&snap.gate_bias.data, &[-2.0; 7 * 12], 0.0));
    assert_eq!((snap.step, snap.epoch), (7, 0.5));
    // the test split is kept as pixels
    assert_eq!(probe.test_x.kind(), Kind::Uint8);
    let (_, acc) = model.evaluate(&(probe.test_x.to_kind(Kind::Float) / 255.0), &probe.test_y, ForwardOpts::default());
    assert_eq!(snap.test_accuracy, acc);

    // a lesioned probe closes that layer's gates
    let les = probe::snapshot(&model, &probe, progress, Some(3));
    assert!(les.mean_gate.row(2).iter().all(|&v| v == 0.0));
    assert_eq!(les.layers[2].mean_change, 0.0);
}

/// Keeps a copy of the parameters at every step that is a multiple of `every`.
struct KeepParams {
    every: usize,
    kept: Vec<(usize, Tensor)>,
}

impl gatescope::train::Observer for KeepParams {
    fn on_start(&mut self, _: usize, _: usize, m: &Model) -> anyhow::Result<()> {
        self.kept.push((0, m.flat.copy()));
        Ok(())
    }
    fn on_batch(&mut self, s: &gatescope::train::BatchStats, m: &Model) -> anyhow::Result<()> {
        if s.step.is_multiple_of(self.every) {
            self.kept.push((s.step, m.flat.copy()));
        }
        Ok(())
    }
}

/// The prober takes its snapshots beside the training, while the parameters go on changing:
/// each one recorded is still exactly the probe of the parameters at its step.
#[test]
fn snapshots_probed_beside_the_training_are_those_of_their_steps() {
    use gatescope::recipe::{Cadence, ProbeOpts, TrainConfig};
    let data = data::load(DatasetKind::Mnist, None).unwrap().truncated(Some(6400), Some(1000));
    let cfg = TrainConfig { depth: 10, width: Some(20), epochs: 1, max_steps: Some(40), threads: 2, ..TrainConfig::default_recipe() };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.gsrec");
    let probe = ProbeOpts { size: ProbeSize::Count(3000), samples: 8 };
    let capture =
        gatescope::session::CaptureOpts { record: Some(path.clone()), every: Some(Cadence::Steps(5)), probe, ..Default::default() };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut keep = KeepParams { every: 5, kept: Vec::new() };
    let run = gatescope::session::train_recorded(&cfg, &data, capture, "test", &stop, &mut keep).unwrap();
    assert_eq!(run.snapshots, 9, "steps 0, 5, …, 40");
    assert!(run.probe_seconds > 0.0);
    let rec = gatescope::record::open(&path).unwrap();
    let steps: Vec<u64> = rec.snapshots.iter().map(|s| s.step).collect();
    assert_eq!(steps, (0..=40).step_by(5).collect::<Vec<u64>>(), "in order, none lost");
    let set = ProbeSet::new(&data, probe.size, probe.samples);
    for ((step, flat), snap) in keep.kept.iter().zip(&rec.snapshots) {
        assert_eq!(snap.step, *step as u64);
        let model = Model::from_flat(run.outcome.model.arch.clone(), flat.shallow_clone()).unwrap();
        let progress = Progress { step: 0, epoch: 0.0, train_loss: 0.0, train_accuracy: 0.0, test_accuracy: Some(0.0) };
        let inline = probe::snapshot(&model, &set, progress, None);
        // mean T is stored as f32: bit for bit; the samples' T to within its 128 levels
        assert_eq!(snap.mean_gate.data, inline.mean_gate.data, "step {step}");
        assert!(close(&snap.sample_gates.data, &inline.sample_gates.data, 1.0 / 127.0), "step {step}");
        assert_eq!(snap.sample_predictions, inline.sample_predictions, "step {step}");
    }
    // the parameters did change between the snapshots
    assert_ne!(rec.snapshots[1].mean_gate.data, rec.snapshots[8].mean_gate.data);
}
