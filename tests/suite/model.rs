//! Models: the highway layer against a hand computation, the fast path against autograd,
//! save/load, determinism, and trainability at depth 100.

use crate::common;

use gatescope::model::{conv_cpu, cpu, fast, file, Activation, Arch, Family, ForwardOpts, Model};
use gatescope::train::{autograd_step, Stepper, TrainConfig};
use tch::{Kind, Tensor};

fn arch(family: Family, depth: usize, width: usize) -> Arch {
    Arch {
        family,
        depth,
        width,
        input_dim: 6,
        classes: 3,
        activation: Activation::Tanh,
        gate_bias: -2.0,
        residual_block_layers: 2,
        gate: gatescope::arch::GateMode::Adaptive,
        fixed_gate: 0.5,
        conv_stages: vec![],
        image_shape: None,
    }
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    let t = t.to_kind(Kind::Float).contiguous().view([-1]);
    let n = t.size()[0] as usize;
    let mut v = vec![0f32; n];
    t.copy_data(&mut v, n);
    v
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::try_from((a - b).abs().max()).unwrap()
}

#[test]
fn highway_layer_matches_hand_computation() {
    // input 2 → plain 2 → one highway layer of 2 → 2 classes
    let a = Arch { input_dim: 2, classes: 2, ..arch(Family::Highway, 2, 2) };
    let specs = a.param_specs();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "layers.0.block.weight",
            "layers.0.block.bias",
            "layers.1.block.weight",
            "layers.1.gate.weight",
            "layers.1.block.bias",
            "layers.1.gate.bias",
            "output.weight",
            "output.bias"
        ]
    );
    #[rustfmt::skip]
    let values: Vec<f32> = vec![
        1.0, 0.0, 0.0, 1.0,     0.0, 0.0,    // plain layer: identity, so a0 = tanh(x)
        0.5, -1.0, 2.0, 0.25,                 // W_H
        1.0, 0.5, -0.5, 1.5,                  // W_T
        0.1, -0.2,                            // b_H
        -2.0, 1.0,                            // b_T
        1.0, 0.0, 0.0, 1.0,     0.0, 0.0,    // output: identity
    ];
    let model = Model::from_flat(a, Tensor::from_slice(&values)).unwrap();
    let x = [0.3f64, -0.7];
    let a0 = [x[0].tanh(), x[1].tanh()];
    let mut expected_y = [0.0; 2];
    let mut expected_t = [0.0; 2];
    let (wh, wt, bh, bt) = ([[0.5, -1.0], [2.0, 0.25]], [[1.0, 0.5], [-0.5, 1.5]], [0.1, -0.2], [-2.0, 1.0]);
    for i in 0..2 {
        let h = (wh[i][0] * a0[0] + wh[i][1] * a0[1] + bh[i]).tanh();
        let t = 1.0 / (1.0 + (-(wt[i][0] * a0[0] + wt[i][1] * a0[1] + bt[i])).exp());
        expected_t[i] = t;
        expected_y[i] = h * t + a0[i] * (1.0 - t);
    }
    let xt = Tensor::from_slice(&[x[0] as f32, x[1] as f32]).view([1, 2]);
    for fwd in [
        model.forward(&xt, ForwardOpts { trace: true, lesion: None, ..Default::default() }),
        model.forward_with(&model.flat, &xt, ForwardOpts { trace: true, lesion: None, ..Default::default() }),
    ] {
        assert_eq!((fwd.gates.len(), fwd.blocks.len()), (1, 2));
        let (t, y, logits) = (to_vec(&fwd.gates[0]), to_vec(&fwd.blocks[1]), to_vec(&fwd.logits));
        for i in 0..2 {
            assert!((t[i] as f64 - expected_t[i]).abs() < 1e-6, "T {t:?} vs {expected_t:?}");
            assert!((y[i] as f64 - expected_y[i]).abs() < 1e-6, "y {y:?} vs {expected_y:?}");
            assert!((logits[i] as f64 - expected_y[i]).abs() < 1e-6);
        }
    }
    // lesioning the layer closes its gates: it copies its input
    let fwd = model.forward(&xt, ForwardOpts { trace: true, lesion: Some(1), ..Default::default() });
    assert_eq!(to_vec(&fwd.gates[0]), vec![0.0, 0.0]);
    let y = to_vec(&fwd.blocks[1]);
    assert!((y[0] as f64 - a0[0]).abs() < 1e-6 && (y[1] as f64 - a0[1]).abs() < 1e-6);
}

#[test]
fn fast_path_gives_the_same_gradients_and_trajectory_as_autograd() {
    for act in [Activation::Tanh, Activation::Relu] {
        let a = Arch { activation: act, ..arch(Family::Highway, 12, 8) };
        let model = Model::new(a.clone(), 3).unwrap();
        tch::manual_seed(7);
        // 40 rows: the CPU path splits them into two shards of 20
        let x = Tensor::rand([40, 6], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::randint(3, [40], (Kind::Int64, tch::Device::Cpu));
        let g_auto = model.flat.zeros_like();
        let (loss_auto, _) = autograd_step(&model, &x, &y, &g_auto);
        let g_fast = model.flat.zeros_like();
        let views = fast::Views::new(&model, &g_fast);
        let (loss_fast, _) = tch::no_grad(|| fast::loss_and_grad(&model, &x, &y, &views));
        let l = f64::try_from(&loss_auto).unwrap();
        assert!(max_abs_diff(&loss_auto, &loss_fast) <= 1e-6 * l.abs().max(1.0), "{act:?}: loss {l}");
        assert!(f64::try_from(g_auto.abs().sum(Kind::Float)).unwrap() > 1e-3, "gradient is not trivially zero");
        let scale = f64::try_from(g_auto.abs().max()).unwrap();
        let rel = max_abs_diff(&g_auto, &g_fast) / scale;
        assert!(rel < 2e-4, "{act:?}: gradients differ by {rel:e} of their largest value {scale}");

        // the CPU path (Rust kernels over the tensors' memory, two threads) agrees too
        let mut g_cpu = model.flat.zeros_like();
        let mut step = cpu::Step::new(&model, 2).expect("a CPU highway MLP");
        let (loss_cpu, correct_cpu) = step.loss_and_grad(&model, &x, &y, &mut g_cpu);
        assert!(max_abs_diff(&loss_auto, &loss_cpu) <= 1e-5 * l.abs().max(1.0), "{act:?}: CPU loss {loss_cpu:?} vs {l}");
        let rel = max_abs_diff(&g_auto, &g_cpu) / scale;
        assert!(rel < 2e-4, "{act:?}: CPU gradients differ by {rel:e} of their largest value {scale}");
        let logits = model.forward(&x, ForwardOpts::default()).logits;
        let correct = i64::try_from(logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64)).unwrap();
        assert_eq!(i64::try_from(&correct_cpu).unwrap(), correct, "{act:?}: correct predictions");

        // 30 SGD steps each way from the same start stay together (tanh: the untrained relu
        // net here has losses in the hundreds, where float rounding grows step by step)
        if act == Activation::Relu {
            continue;
        }
        let cfg = TrainConfig::default_recipe();
        // both from the same values (not two draws from libtorch's global RNG, which tests
        // running in parallel threads also draw from)
        let mut m1 = Model::new(a.clone(), 3).unwrap();
        let start = m1.flat.copy();
        let mut m2 = Model::from_flat(a.clone(), start.copy()).unwrap();
        let (mut s1, mut s2) = (Stepper::new(&m1, &cfg, true), Stepper::new(&m2, &cfg, false));
        let lr = 0.05;
        for _ in 0..30 {
            let (l1, _) = s1.step(&mut m1, &x, &y, lr);
            let (l2, _) = s2.step(&mut m2, &x, &y, lr);
            let l = f64::try_from(&l1).unwrap();
            assert!(max_abs_diff(&l1, &l2) <= 1e-4 * l.abs().max(1.0), "{act:?}: loss {l}");
        }
        assert!(max_abs_diff(&m1.flat, &m2.flat) < 1e-4);
        assert!(max_abs_diff(&m1.flat, &start) > 1e-3, "training moved the weights");
    }
}

#[test]
fn forward_hands_back_gates_and_blocks_for_every_family() {
    let x = Tensor::rand([5, 6], (Kind::Float, tch::Device::Cpu));
    for (family, gates) in [(Family::Highway, 6), (Family::Plain, 0), (Family::Residual, 0)] {
        let m = Model::new(arch(family, 7, 4), 1).unwrap();
        let f = tch::no_grad(|| m.forward(&x, ForwardOpts { trace: true, lesion: None, ..Default::default() }));
        assert_eq!(f.logits.size(), [5, 3]);
        assert_eq!(f.blocks.len(), 7);
        assert_eq!(f.gates.len(), gates);
        for t in &f.gates {
            assert_eq!(t.size(), [5, 4]);
            let v = to_vec(t);
            assert!(v.iter().all(|&g| (0.0..=1.0).contains(&g)));
        }
    }
    let m = Model::new(arch(Family::Highway, 7, 4), 1).unwrap();
    let b = m.gate_biases().unwrap();
    assert_eq!(b.size(), [6, 4]);
    assert!(to_vec(&b).iter().all(|&v| v == -2.0));
    assert!(m.param("layers.3.gate.bias").is_some());
}

#[test]
fn save_and_load_give_identical_logits() {
    let dir = tempfile::tempdir().unwrap();
    for family in [Family::Highway, Family::Plain, Family::Residual] {
        let model = Model::new(arch(family, 5, 4), 11).unwrap();
        let info = file::DatasetInfo {
            name: gatescope::data::DatasetKind::Mnist,
            class_names: vec!["a".into(), "b".into(), "c".into()],
            image_shape: [1, 2, 3],
        };
        let card = file::ModelCard::new(model.arch.clone(), info, serde_json::json!({"note": "test"}));
        let path = dir.path().join(format!("{family:?}.safetensors"));
        file::save(&model, &card, &path).unwrap();
        let (back, card2) = file::load(&path).unwrap();
        assert_eq!(card, card2);
        let x = Tensor::rand([9, 6], (Kind::Float, tch::Device::Cpu));
        let (l1, l2) = tch::no_grad(|| (model.forward(&x, ForwardOpts::default()).logits, back.forward(&x, ForwardOpts::default()).logits));
        assert_eq!(to_vec(&l1), to_vec(&l2));
    }
}

/// `bytes` with the one occurrence of `from` replaced by `to` (same length).
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes.windows(from.len()).position(|w| w == from).expect("pattern present");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn bad_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::new(arch(Family::Highway, 3, 4), 0).unwrap();
    let info = file::DatasetInfo { name: gatescope::data::DatasetKind::Mnist, class_names: vec!["a".into(); 3], image_shape: [1, 2, 3] };
    let card = file::ModelCard::new(model.arch.clone(), info, serde_json::Value::Null);
    let path = dir.path().join("m.safetensors");
    file::save(&model, &card, &path).unwrap();
    let good = std::fs::read(&path).unwrap();

    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let err = |p: &std::path::Path| format!("{:#}", file::load(p).err().expect("must fail"));

    assert!(err(&write("junk.safetensors", b"not a model at all")).contains("junk.safetensors: not a valid safetensors file"));
    let e = err(&write("trunc.safetensors", &good[..good.len() - 10]));
    assert!(e.contains("trunc.safetensors") && e.contains("safetensors"), "{e}");
    assert!(err(&dir.path().join("missing.safetensors")).contains("reading model"));

    // a card whose depth disagrees with the weights
    let mut wrong = card.clone();
    wrong.arch.depth = 4;
    let p = dir.path().join("wrong.safetensors");
    let m4 = Model::new(wrong.arch.clone(), 0).unwrap();
    file::save(&m4, &wrong, &p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    // the depth-4 weights under a depth-3 card (same header length)
    let e = err(&write("mismatch.safetensors", &replace(&bytes, br#"\"depth\":4"#, br#"\"depth\":3"#)));
    assert!(e.contains("does not match the weights"), "{e}");

    // a newer format version
    let e = err(&write("newer.safetensors", &replace(&good, br#"\"format_version\":1"#, br#"\"format_version\":9"#)));
    assert!(e.contains("newer than this gatescope reads"), "{e}");
}

#[test]
fn depth_100_highway_net_trains() {
    tch::set_num_threads(2);
    let data = gatescope::data::load(gatescope::data::DatasetKind::Mnist, None).unwrap();
    let mut cfg = TrainConfig::default_recipe();
    cfg.depth = 100;
    cfg.epochs = 1;
    cfg.max_steps = Some(300);
    let (out, losses) = common::train_with_losses(&cfg, &data);
    let (first, last) = common::first_and_last_mean(&losses, 20);
    assert!(first > 2.0, "starts near ln 10: {first}");
    assert!(last < 0.5 * first, "the 100-layer highway net's loss must fall clearly: {first} → {last}");
    let acc = out.card.metrics.unwrap().test_accuracy;
    assert!(acc > 0.6, "test accuracy after 300 steps: {acc}");
}

#[test]
fn a_stopped_run_still_returns_a_usable_model() {
    let data = gatescope::data::load(gatescope::data::DatasetKind::Mnist, None).unwrap();
    let mut cfg = TrainConfig::default_recipe();
    cfg.depth = 6;
    struct StopAt(usize, std::sync::Arc<std::sync::atomic::AtomicBool>);
    impl gatescope::train::Observer for StopAt {
        fn on_batch(&mut self, s: &gatescope::train::BatchStats, _: &Model) -> anyhow::Result<()> {
            if s.step == self.0 {
                self.1.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            Ok(())
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let out = gatescope::train::train(&cfg, &data, &stop, &mut StopAt(50, stop.clone())).unwrap();
    let m = out.card.metrics.unwrap();
    assert!(m.interrupted);
    assert_eq!(m.steps, 50);
    assert!(m.test_accuracy > 0.3, "{}", m.test_accuracy);
}

#[test]
fn conv_highway_forward_traces_channel_means_and_spatial_maps() {
    let a = Arch {
        family: Family::Conv,
        depth: 3,
        width: 4,
        input_dim: 64,
        classes: 3,
        conv_stages: vec![1, 1],
        image_shape: Some([1, 8, 8]),
        ..arch(Family::Highway, 3, 4)
    };
    a.validate().unwrap();
    let names: Vec<(String, Vec<usize>)> = a.param_specs().into_iter().map(|s| (s.name, s.shape)).collect();
    assert_eq!(names[0], ("layers.0.block.weight".to_string(), vec![4, 1, 3, 3]));
    assert_eq!(names[2], ("layers.1.block.weight".to_string(), vec![4, 4, 3, 3]));
    let model = Model::new(a, 1).unwrap();
    let x = Tensor::rand([5, 64], (Kind::Float, tch::Device::Cpu));
    let opts = ForwardOpts { trace: true, spatial: true, ..Default::default() };
    let f = tch::no_grad(|| model.forward(&x, opts));
    assert_eq!(f.logits.size(), [5, 3]);
    assert_eq!((f.gates.len(), f.blocks.len(), f.spatial_gates.len()), (2, 3, 2));
    assert_eq!(f.spatial_gates[0].size(), [5, 4, 8, 8]);
    assert_eq!(f.spatial_gates[1].size(), [5, 4, 4, 4], "max pooling between the two stages");
    for (g, s) in f.gates.iter().zip(&f.spatial_gates) {
        assert_eq!(g.size(), [5, 4]);
        assert!(max_abs_diff(g, &s.mean_dim([2i64, 3].as_slice(), false, Kind::Float)) < 1e-6, "T per channel is the spatial mean");
    }
    // a lesioned layer copies its input: T = 0 and its channel means equal its input's
    let l = tch::no_grad(|| model.forward(&x, ForwardOpts { trace: true, lesion: Some(1), ..Default::default() }));
    assert_eq!(f64::try_from(l.gates[0].abs().sum(Kind::Float)).unwrap(), 0.0);
    assert!(max_abs_diff(&l.blocks[1], &l.blocks[0]) < 1e-6);
    // and it trains: a few autograd SGD steps lower the loss on a fixed batch
    let mut model = model;
    let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1]);
    let grad = model.flat.zeros_like();
    let (first, _) = autograd_step(&model, &x, &y, &grad);
    for _ in 0..80 {
        let _ = autograd_step(&model, &x, &y, &grad);
        tch::no_grad(|| {
            let _ = model.flat.g_sub_(&(&grad * 0.5));
        });
    }
    let (last, _) = autograd_step(&model, &x, &y, &grad);
    let (first, last) = (f64::try_from(&first).unwrap(), f64::try_from(&last).unwrap());
    assert!(last < 0.6 * first, "conv net loss fell only from {first} to {last}");
}

#[test]
fn the_conv_cpu_step_gives_the_same_gradients_and_trajectory_as_autograd() {
    // 3-channel 9×7 images (odd sizes: pooling drops the last row and column), three stages
    // (pooling twice), both activations; 40 images: the step splits them into two shards of 20
    for act in [Activation::Relu, Activation::Tanh] {
        let a = Arch {
            family: Family::Conv,
            depth: 5,
            width: 5,
            input_dim: 3 * 9 * 7,
            classes: 3,
            activation: act,
            gate_bias: -1.0,
            conv_stages: vec![2, 1, 1],
            image_shape: Some([3, 9, 7]),
            ..arch(Family::Highway, 5, 5)
        };
        a.validate().unwrap();
        let model = Model::new(a.clone(), 4).unwrap();
        tch::manual_seed(11);
        let x = Tensor::rand([40, 3 * 9 * 7], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::randint(3, [40], (Kind::Int64, tch::Device::Cpu));
        let g_auto = model.flat.zeros_like();
        let (loss_auto, correct_auto) = autograd_step(&model, &x, &y, &g_auto);
        let mut g_cpu = model.flat.zeros_like();
        let mut step = conv_cpu::Step::new(&model, 2).expect("a CPU conv highway net");
        let (loss_cpu, correct_cpu) = step.loss_and_grad(&model, &x, &y, &mut g_cpu);
        let l = f64::try_from(&loss_auto).unwrap();
        assert!(max_abs_diff(&loss_auto, &loss_cpu) <= 1e-5 * l.abs().max(1.0), "{act:?}: loss {loss_cpu:?} vs {l}");
        assert_eq!(i64::try_from(&correct_cpu).unwrap(), i64::try_from(&correct_auto).unwrap(), "{act:?}: correct");
        // every parameter tensor's gradient, each against its own largest value
        for spec in model.specs.iter() {
            let (ga, gc) =
                (g_auto.narrow(0, spec.offset as i64, spec.numel() as i64), g_cpu.narrow(0, spec.offset as i64, spec.numel() as i64));
            let scale = f64::try_from(ga.abs().max()).unwrap();
            assert!(scale > 1e-7, "{act:?}: {} has a zero gradient", spec.name);
            let rel = max_abs_diff(&ga, &gc) / scale;
            assert!(rel < 2e-4, "{act:?}: {} differs by {rel:e} of its largest value {scale}", spec.name);
        }
        // evaluation (and a lesion) by the step's forward agrees with libtorch's
        for lesion in [None, Some(2)] {
            let (loss, acc) = model.evaluate(&x, &y, ForwardOpts { lesion, ..Default::default() });
            let logits = tch::no_grad(|| model.forward(&x, ForwardOpts { lesion, ..Default::default() }).logits);
            let want = f64::try_from(logits.cross_entropy_for_logits(&y)).unwrap();
            let right = i64::try_from(logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64)).unwrap();
            assert!((loss - want).abs() < 1e-5 * want.max(1.0), "{act:?} lesion {lesion:?}: loss {loss} vs {want}");
            assert_eq!((acc * 40.0).round() as i64, right, "{act:?} lesion {lesion:?}: accuracy");
        }
        let (lesioned, _) = model.evaluate(&x, &y, ForwardOpts { lesion: Some(2), ..Default::default() });
        assert!((lesioned - l).abs() > 1e-6, "{act:?}: a lesion changes the loss");
        // 30 SGD steps each way from the same start stay together
        let cfg = TrainConfig::default_recipe();
        let mut m1 = Model::new(a.clone(), 4).unwrap();
        let start = m1.flat.copy();
        let mut m2 = Model::from_flat(a.clone(), start.copy()).unwrap();
        let (mut s1, mut s2) = (Stepper::new(&m1, &cfg, true), Stepper::new(&m2, &cfg, false));
        assert!(s1.owns_threads() && !s2.owns_threads(), "the conv net takes the CPU step");
        for _ in 0..30 {
            let (l1, _) = s1.step(&mut m1, &x, &y, 0.05);
            let (l2, _) = s2.step(&mut m2, &x, &y, 0.05);
            let l = f64::try_from(&l1).unwrap();
            assert!(max_abs_diff(&l1, &l2) <= 1e-4 * l.abs().max(1.0), "{act:?}: loss {l}");
        }
        assert!(max_abs_diff(&m1.flat, &m2.flat) < 1e-4, "{act:?}: weights after 30 steps");
        assert!(max_abs_diff(&m1.flat, &start) > 1e-3, "training moved the weights");
    }
}

#[test]
fn the_bundled_conv_model_reaches_the_table_1_target_on_the_mnist_test_set() {
    tch::set_num_threads(2);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recordings/conv.safetensors");
    let (m, card) = file::load(&path).unwrap();
    assert_eq!((m.arch.family, m.arch.depth, m.arch.width), (Family::Conv, 10, 16));
    let data = gatescope::data::load(gatescope::data::DatasetKind::Mnist, None).unwrap();
    let test = gatescope::train::Tensors::test(&data);
    let (_, acc) = m.evaluate(&test.x, &test.y, ForwardOpts::default());
    assert!(acc >= 0.993, "Table 1 target: 99.3 % (the paper: 99.43 %); got {acc}");
    let recorded = card.metrics.unwrap().test_accuracy;
    assert!((acc - recorded).abs() < 1e-4, "the card's test accuracy {recorded} is this model's: {acc}");
}
