//! The CPU inference (`Infer`): the fused highway kernel against the training step's product
//! and pointwise pass, and both against libtorch's forward; u8 pixels against f32 features.

use gatescope::model::infer::Infer;
use gatescope::model::{Activation, Arch, ForwardOpts, Model};
use tch::{Kind, Tensor};

/// A highway MLP whose width (12) fills one 8-unit block of the kernel and part of another,
/// with gate biases spread around 0 so that gates differ.
fn model(activation: Activation) -> Model {
    let arch = Arch { depth: 7, width: 12, input_dim: 20, classes: 4, activation, gate_bias: -1.0, ..Arch::figure2() };
    let model = Model::new(arch, 11).unwrap();
    tch::no_grad(|| {
        for l in 1..model.arch.depth {
            let mut b = model.param(&format!("layers.{l}.gate.bias")).unwrap();
            b.copy_(&(Tensor::randn([12], (Kind::Float, tch::Device::Cpu)) * 1.5));
        }
    });
    model
}

/// 301 rows of pixels (two blocks of rows and a ragged tail) and labels from a fixed rule.
fn pixels() -> (Tensor, Tensor) {
    tch::manual_seed(4);
    let px = Tensor::randint(256, [301, 20], (Kind::Uint8, tch::Device::Cpu));
    let y = px.narrow(1, 0, 4).argmax(-1, false);
    (px, y)
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn the_fused_kernel_and_the_product_path_infer_alike_and_as_libtorch_does() {
    for act in [Activation::Tanh, Activation::Relu] {
        let m = model(act);
        let (px, y) = pixels();
        let x = px.to_kind(Kind::Float) / 255.0;
        let (fused, plain) = (Infer::with_kernel(&m, 2, true).unwrap(), Infer::with_kernel(&m, 2, false).unwrap());
        for lesion in [None, Some(1), Some(4), Some(6)] {
            let want = tch::no_grad(|| m.forward(&x, ForwardOpts { trace: false, lesion, ..Default::default() }).logits);
            let want_loss = f64::try_from(want.cross_entropy_for_logits(&y)).unwrap();
            let want_acc = f64::try_from(want.argmax(-1, false).eq_tensor(&y).to_kind(Kind::Float).mean(Kind::Float)).unwrap();
            for (name, infer) in [("fused", &fused), ("product", &plain)] {
                for (input, xs) in [("f32", &x), ("u8", &px)] {
                    let (loss, acc) = infer.evaluate(xs, &y, lesion);
                    assert!(close(loss, want_loss, 1e-5), "{act:?} {name} {input} lesion {lesion:?}: loss {loss} vs {want_loss}");
                    assert!(close(acc, want_acc, 1e-6), "{act:?} {name} {input} lesion {lesion:?}: accuracy {acc} vs {want_acc}");
                }
            }
        }
        // every lesion at once, the probe's sums and a trace: the two paths agree
        let (lf, lp) = (fused.lesion_sums(&px, &y, &mut |_, _| true).unwrap(), plain.lesion_sums(&px, &y, &mut |_, _| true).unwrap());
        assert_eq!(lf.len(), 7);
        // blocks are summed in their order: the same figures, bit for bit, on any thread count
        let one = Infer::with_kernel(&m, 1, true).unwrap();
        assert_eq!(one.lesion_sums(&px, &y, &mut |_, _| true).unwrap(), lf, "{act:?}: 1 thread against 2");
        assert_eq!(one.evaluate(&px, &y, Some(2)), fused.evaluate(&px, &y, Some(2)), "{act:?}: 1 thread against 2");
        for (l, (a, b)) in lf.iter().zip(&lp).enumerate() {
            assert!(close(a.0, b.0, 1e-5) && a.1 == b.1, "{act:?} lesion row {l}: {a:?} vs {b:?}");
        }
        let sums = |i: &Infer| i.probe_sums(&x, &y, 4, Some(2), &mut |_| true).unwrap();
        let (sf, sp) = (sums(&fused), sums(&plain));
        assert!(sf.class_sum.iter().zip(&sp.class_sum).all(|(a, b)| (a - b).abs() < 1e-4), "{act:?} class sums");
        assert_eq!(sf.open, sp.open, "{act:?} open gates");
        assert!(sf.change.iter().zip(&sp.change).all(|(&a, &b)| close(a, b, 1e-5)), "{act:?} changes");
        assert!(sf.class_sum[12 * 4..2 * 12 * 4].iter().all(|&t| t == 0.0), "the lesioned layer's gates are shut");
        let sample = x.narrow(0, 0, 9);
        let traced = tch::no_grad(|| m.forward(&sample, ForwardOpts { trace: true, lesion: Some(3), ..Default::default() }));
        for infer in [&fused, &plain] {
            let t = infer.trace(&sample, Some(3));
            let gates = Vec::<f32>::try_from(Tensor::stack(&traced.gates, 1).flatten(0, -1)).unwrap();
            let blocks = Vec::<f32>::try_from(Tensor::stack(&traced.blocks, 1).flatten(0, -1)).unwrap();
            assert!(t.gates.iter().zip(&gates).all(|(a, b)| (a - b).abs() < 1e-5) && t.gates.len() == gates.len(), "{act:?} gates");
            assert!(t.blocks.iter().zip(&blocks).all(|(a, b)| (a - b).abs() < 1e-5) && t.blocks.len() == blocks.len(), "{act:?} blocks");
            let preds = Vec::<i64>::try_from(traced.logits.argmax(-1, false)).unwrap();
            assert_eq!(t.predictions, preds.iter().map(|&p| p as u32).collect::<Vec<_>>(), "{act:?} predictions");
        }
    }
}

/// A NaN in one weight of a gate or of H (a diverged model) shows as a NaN loss on both paths,
/// as in libtorch's forward: neither σ's clamp nor relu passes it off as a number.
#[test]
fn a_nan_weight_is_not_hidden_by_either_path() {
    for (act, part) in [Activation::Tanh, Activation::Relu].into_iter().flat_map(|a| [(a, "gate"), (a, "block")]) {
        let m = model(act);
        tch::no_grad(|| {
            let _ = m.param(&format!("layers.3.{part}.weight")).unwrap().get(5).get(2).fill_(f64::NAN);
        });
        let (px, y) = pixels();
        let want = tch::no_grad(|| m.forward(&(px.to_kind(Kind::Float) / 255.0), ForwardOpts::default()).logits);
        assert!(f64::try_from(want.cross_entropy_for_logits(&y)).unwrap().is_nan(), "libtorch's loss is NaN");
        for fused in [true, false] {
            let infer = Infer::with_kernel(&m, 2, fused).unwrap();
            let (loss, _) = infer.evaluate(&px, &y, None);
            assert!(loss.is_nan(), "{act:?} {part} fused {fused}: loss {loss}, not NaN");
            // a lesion of the NaN layer replays from its clean input: finite again
            let sums = infer.lesion_sums(&px, &y, &mut |_, _| true).unwrap();
            assert!(sums[0].0.is_nan() && sums[5].0.is_nan() && sums[3].0.is_finite(), "{act:?} {part} fused {fused}: {sums:?}");
        }
    }
}
