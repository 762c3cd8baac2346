//! The CPU inference of the bundled Figure-2 model, side by side: evaluation of the 10,000 test
//! images through the fused highway kernel and through the training step's product and
//! pointwise pass, and one snapshot's probe pass (10,000 probe examples and 32 samples) with and
//! without the test accuracy. Rounds alternate so that machine noise hits each alike; the best
//! round of each is printed. Two kernel threads, libtorch kept to one (as the trainer runs).
//! Last, the fused evaluation's rate is set against this machine's FMA peak (measured as
//! `gatescope bench` does), and so is a lesion of every layer (the training and test images): the
//! time its highway products alone would take at the peak, and at the rate measured here.
//! Run: `scripts/bench inference` (sets up libtorch first) or `cargo bench --bench inference`.

use std::path::Path;
use std::time::Instant;

use gatescope::model::{cpu, infer::Infer, ForwardOpts};
use gatescope::probe::{self, Progress};
use gatescope::recipe::ProbeOpts;
use gatescope::train::Tensors;

const ROUNDS: usize = 7;

fn main() {
    tch::set_num_threads(1);
    let _kernels = cpu::Threads::set(2);
    let m = gatescope::session::open_model(Path::new("recordings/default.safetensors"), None, Default::default())
        .expect("the bundled model (run from the repository's root)");
    let test = Tensors::test(&m.data);
    let set = m.probe_set(ProbeOpts::default());
    let progress = |test_accuracy| Progress { step: 0, epoch: 0.0, train_loss: 0.0, train_accuracy: 0.0, test_accuracy };
    let opts = ForwardOpts::default();
    let mut best = [f64::MAX; 4];
    let names = [
        "evaluate 10,000 test images, fused kernel",
        "evaluate 10,000 test images, product + pointwise",
        "snapshot: probe pass (10,000 + 32 samples)",
        "snapshot with the test accuracy (+ 10,000)",
    ];
    let mut accuracy = [0.0; 2];
    for _ in 0..ROUNDS {
        for (i, best) in best.iter_mut().enumerate() {
            let t = Instant::now();
            match i {
                0 | 1 => {
                    let infer = Infer::with_kernel(&m.model, 2, i == 0).expect("a CPU highway MLP");
                    accuracy[i] = infer.evaluate(&test.x, &test.y, opts.lesion).1;
                }
                2 => drop(probe::snapshot(&m.model, &set, progress(Some(0.5)), None)),
                _ => drop(probe::snapshot(&m.model, &set, progress(None), None)),
            }
            *best = best.min(t.elapsed().as_secs_f64());
        }
    }
    assert_eq!(accuracy[0], accuracy[1], "both paths give the same accuracy");
    println!("best of {ROUNDS} alternating rounds (test accuracy {:.4}):", accuracy[0]);
    for (name, s) in names.iter().zip(best) {
        println!("  {name:<50} {:>7.1} ms", s * 1e3);
    }
    println!("  fused kernel / product + pointwise: {:.2}× faster", best[1] / best[0]);

    // FLOP of a highway layer's products for one image: H and T, [w] × [w, w] each, 2 a MAC
    let (w, layers) = (m.model.arch.width as f64, (m.model.arch.depth - 1) as f64);
    let per_image_layer = 4.0 * w * w;
    let rate = test.x.size()[0] as f64 * layers * per_image_layer / best[0] / 1e9;
    // a lesion pass over the training and test images: every image through all layers once,
    // then each lesion l replays the layers after l: L + L(L − 1)/2 image-layers
    let (train, test_n) = (m.data.train.len(), m.data.test.len());
    let lesion_flop = (train + test_n) as f64 * (layers + layers * (layers - 1.0) / 2.0) * per_image_layer / 1e9;
    match gatescope::bench::peak::measure(2) {
        Some(peak) => {
            let p = peak.gflop_per_s;
            println!("this machine's FMA peak, 2 threads ({}): {p:.1} GFLOP/s", peak.isa);
            println!("  fused evaluation, highway products only: {rate:.1} GFLOP/s, {:.0} % of the peak", 100.0 * rate / p);
            println!(
                "  lesion of every layer, {train} + {test_n} images: {lesion_flop:.0} GFLOP of highway products, {:.1} s at the peak, {:.1} s at the rate above",
                lesion_flop / p,
                lesion_flop / rate
            );
        }
        None => println!("  (no AVX2 + FMA here: no FMA peak to compare with)"),
    }
}
