//! Lesioning (Figure 4): the cached-input replay against full forwards, and a layer whose
//! gates are already shut.

use gatescope::lesion::lesion_all;
use gatescope::model::{Activation, Arch, Family, ForwardOpts, GateMode, Model};
use gatescope::train::Tensors;
use tch::{Kind, Tensor};

fn arch(family: Family, activation: Activation) -> Arch {
    Arch {
        family,
        depth: 7,
        width: 9,
        input_dim: 12,
        classes: 4,
        activation,
        gate_bias: -1.0,
        residual_block_layers: 2,
        gate: GateMode::Adaptive,
        fixed_gate: 0.5,
        conv_stages: vec![],
        image_shape: None,
    }
}

/// 300 inputs spread enough that the gates differ across examples, labels from a fixed rule.
fn data(seed: i64) -> Tensors {
    rows(seed, 300)
}

/// `n` inputs as [`data`]'s.
fn rows(seed: i64, n: i64) -> Tensors {
    tch::manual_seed(seed);
    let x = Tensor::randn([n, 12], (Kind::Float, tch::Device::Cpu)) * 1.5;
    let y = x.narrow(1, 0, 4).argmax(-1, false);
    Tensors { x, y }
}

fn scramble_biases(model: &Model) {
    // Gate biases spread around 0 so some gates are open and lesions matter.
    tch::no_grad(|| {
        for l in 1..model.arch.depth {
            if let Some(mut b) = model.param(&format!("layers.{l}.gate.bias")) {
                b.copy_(&(Tensor::randn([model.arch.width as i64], (Kind::Float, tch::Device::Cpu)) * 1.5));
            }
        }
    });
}

#[test]
fn replay_equals_full_lesioned_forwards() {
    for act in [Activation::Tanh, Activation::Relu] {
        let model = Model::new(arch(Family::Highway, act), 3).unwrap();
        scramble_biases(&model);
        let (tr, te) = (data(1), data(2));
        let report = lesion_all(&model, "test", "synthetic", &tr, &te, &mut |_| true).unwrap().unwrap();
        assert_eq!(report.layers.len(), 6);
        let (base_loss, base_acc) = model.evaluate(&tr.x, &tr.y, ForwardOpts::default());
        assert!((report.baseline_train.loss - base_loss).abs() < 1e-5, "{act:?}: {} vs {base_loss}", report.baseline_train.loss);
        assert_eq!(report.baseline_train.accuracy, base_acc);
        let mut any_change = false;
        for row in &report.layers {
            let (loss, acc) = model.evaluate(&tr.x, &tr.y, ForwardOpts { trace: false, lesion: Some(row.layer), ..Default::default() });
            assert!((row.train.loss - loss).abs() < 1e-5, "{act:?} layer {}: {} vs {loss}", row.layer, row.train.loss);
            // `evaluate` runs the CPU kernels here; libtorch's forward agrees with them
            let logits = tch::no_grad(|| model.forward(&tr.x, ForwardOpts { lesion: Some(row.layer), ..Default::default() }).logits);
            let torch_loss = f64::try_from(logits.cross_entropy_for_logits(&tr.y)).unwrap();
            assert!((torch_loss - loss).abs() < 1e-5, "{act:?} layer {}: libtorch {torch_loss} vs {loss}", row.layer);
            assert!((row.train.accuracy - acc).abs() <= 1.0 / 300.0 + 1e-12, "{act:?} layer {}", row.layer);
            let (tl, _) = model.evaluate(&te.x, &te.y, ForwardOpts { trace: false, lesion: Some(row.layer), ..Default::default() });
            assert!((row.test.loss - tl).abs() < 1e-5);
            any_change |= (row.train.loss - base_loss).abs() > 1e-3;
        }
        assert!(any_change, "{act:?}: no lesion changed the loss, the test proves nothing");
    }
}

#[test]
fn lesioning_a_layer_whose_gates_are_shut_changes_nothing() {
    let model = Model::new(arch(Family::Highway, Activation::Tanh), 5).unwrap();
    scramble_biases(&model);
    // Shut every gate of layer 3: T = sigmoid(−1e4) = 0 exactly, for every input.
    tch::no_grad(|| {
        let _ = model.param("layers.3.gate.bias").unwrap().fill_(-1e4);
        let _ = model.param("layers.3.gate.weight").unwrap().fill_(0.0);
    });
    let (tr, te) = (data(1), data(2));
    let report = lesion_all(&model, "test", "synthetic", &tr, &te, &mut |_| true).unwrap().unwrap();
    let shut = report.layers.iter().find(|r| r.layer == 3).unwrap();
    assert_eq!(shut.train, report.baseline_train);
    assert_eq!(shut.test, report.baseline_test);
    // ... while lesioning an open layer does change the loss.
    let open = report.layers.iter().find(|r| r.layer == 2).unwrap();
    assert_ne!(open.train.loss, report.baseline_train.loss);
}

#[test]
fn residual_lesions_drop_a_branch_and_plain_nets_are_refused() {
    let model = Model::new(arch(Family::Residual, Activation::Relu), 4).unwrap();
    let (tr, te) = (data(1), data(2));
    let report = lesion_all(&model, "test", "synthetic", &tr, &te, &mut |_| true).unwrap().unwrap();
    let (loss, _) = model.evaluate(&tr.x, &tr.y, ForwardOpts { trace: false, lesion: Some(4), ..Default::default() });
    assert!((report.layers[3].train.loss - loss).abs() < 1e-6);
    assert_ne!(report.layers[3].train.loss, report.baseline_train.loss);

    let plain = Model::new(arch(Family::Plain, Activation::Tanh), 4).unwrap();
    let err = lesion_all(&plain, "test", "synthetic", &tr, &te, &mut |_| true).unwrap_err();
    assert!(err.to_string().contains("plain net"), "{err}");
}

/// The CPU kernels report Figure 4 as they sum it, a block of rows at a time: the training set
/// first (the test set's scores NaN until it begins), then the test set; the figure over all
/// the rows is the report's.
#[test]
fn the_kernels_lesion_shows_figure_4_so_far() {
    let model = Model::new(arch(Family::Highway, Activation::Tanh), 3).unwrap();
    scramble_biases(&model);
    assert!(gatescope::model::infer::runs(&model), "the test is of the CPU kernels' pass");
    // many blocks of rows each
    let (tr, te) = (rows(1, 4000), rows(2, 1500));
    let mut seen = Vec::new();
    let report = lesion_all(&model, "test", "synthetic", &tr, &te, &mut |p| {
        seen.push(p);
        true
    })
    .unwrap()
    .unwrap();
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done), "progress only grows");
    assert!(seen.iter().all(|p| p.total == 5500), "the total is both splits' examples");
    let so_far: Vec<_> = seen.iter().map(|p| p.so_far.as_ref().expect("the kernels sum as they go")).collect();
    for (p, r) in seen.iter().zip(&so_far) {
        assert_eq!(p.done, r.train_examples + r.test_examples);
        assert_eq!(r.layers.len(), report.layers.len());
        // every estimate counts whole examples right
        let correct = r.baseline_train.accuracy * r.train_examples as f64;
        assert!((correct - correct.round()).abs() < 1e-6, "{correct} correct predictions");
        if r.test_examples == 0 {
            assert!(r.baseline_test.loss.is_nan() && r.layers.iter().all(|l| l.test.accuracy.is_nan()), "no test examples yet: NaN");
        } else {
            assert_eq!(r.train_examples, 4000, "the test set comes after the whole training set");
        }
    }
    assert!(so_far.iter().any(|r| r.train_examples > 0 && r.train_examples < 4000), "an estimate before the training set was done");
    assert!(so_far.iter().any(|r| r.test_examples > 0 && r.test_examples < 1500), "an estimate before the test set was done");
    // the figure over all the training rows, then over all the rows, is the report's
    let trained = so_far.iter().rfind(|r| r.test_examples == 0).expect("the training set's figure");
    assert_eq!(trained.train_examples, 4000);
    assert_eq!(
        (trained.baseline_train, &trained.layers.iter().map(|l| l.train).collect::<Vec<_>>()),
        (report.baseline_train, &report.layers.iter().map(|l| l.train).collect())
    );
    let last = so_far.last().unwrap();
    assert_eq!((last.baseline_train, last.baseline_test, &last.layers), (report.baseline_train, report.baseline_test, &report.layers));
}

/// A progress callback that returns false stops the analysis there, with no report: on the
/// CPU kernels (a block of rows at a time) and on libtorch's full passes (a pass at a time).
#[test]
fn a_lesion_analysis_stops_when_asked() {
    let (tr, te) = (rows(1, 4000), rows(2, 1500));
    for family in [Family::Highway, Family::Residual] {
        let model = Model::new(arch(family, Activation::Tanh), 3).unwrap();
        let mut calls = 0;
        let all = lesion_all(&model, "test", "synthetic", &tr, &te, &mut |_| {
            calls += 1;
            true
        })
        .unwrap();
        assert!(all.is_some());
        let mut stopped = 0;
        let none = lesion_all(&model, "test", "synthetic", &tr, &te, &mut |_| {
            stopped += 1;
            stopped < 3
        })
        .unwrap();
        assert!(none.is_none(), "{family:?}: stopped, no report");
        assert!(stopped >= 3 && stopped < calls / 2, "{family:?}: {stopped} calls after asking to stop, of {calls} in all");
    }
}
