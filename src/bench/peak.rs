//! The machine's FMA peak, measured: every thread runs a loop of 12 independent vector FMA
//! chains (enough to fill two FMA pipes of 4 cycles' latency) on the widest registers the CPU
//! has (AVX-512, else AVX2 + FMA), so "x GFLOP/s" can be read as a share of what the cores
//! can do at all. Counted as 2 FLOP per lane per FMA, as the models' FLOP are.

use std::time::Instant;

use serde::Serialize;

/// What the loop measured.
#[derive(Debug, Clone, Serialize)]
pub struct Peak {
    /// FLOP per second over all threads, in GFLOP/s (the best of the rounds).
    pub gflop_per_s: f64,
    pub threads: usize,
    /// The registers the loop ran on: "avx512" or "avx2".
    pub isa: &'static str,
}

/// Independent accumulators: FMA latency (4 cycles) × FMA pipes (2), with room to spare.
const CHAINS: usize = 12;
/// Seconds a round runs for, about.
const ROUND_SECONDS: f64 = 0.1;
const ROUNDS: usize = 3;

/// The FMA peak of `threads` threads, or None where the CPU has no AVX2 + FMA (or is not
/// x86_64): no vector loop to measure there.
pub fn measure(threads: usize) -> Option<Peak> {
    let (isa, flop_per_iteration) = isa()?;
    let threads = threads.max(1);
    // iterations for about ROUND_SECONDS on one thread, from a short calibration run
    let t = Instant::now();
    run(isa, 100_000);
    let per = t.elapsed().as_secs_f64().max(1e-6) / 100_000.0;
    let iterations = ((ROUND_SECONDS / per) as usize).max(1_000);
    let mut best = 0f64;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| run(isa, iterations));
            }
        });
        let flop = (threads * iterations) as f64 * flop_per_iteration;
        best = best.max(flop / t.elapsed().as_secs_f64() / 1e9);
    }
    Some(Peak { gflop_per_s: best, threads, isa })
}

/// The widest vector FMA this CPU runs, and the FLOP of one loop iteration on it.
fn isa() -> Option<(&'static str, f64)> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Some(("avx512", (CHAINS * 16 * 2) as f64));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Some(("avx2", (CHAINS * 8 * 2) as f64));
        }
    }
    None
}

/// `iterations` of the loop on `isa` (as [`isa`] chose it).
fn run(isa: &str, iterations: usize) -> f32 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `isa` names what `is_x86_feature_detected!` found on this CPU
    unsafe {
        let sum = if isa == "avx512" { x86::fma512(iterations) } else { x86::fma256(iterations) };
        std::hint::black_box(sum)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no vector loop for {isa} ({iterations} iterations)")
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::CHAINS;

    /// acc ← acc · a + b on CHAINS registers of 8 lanes; the lanes' sum, so nothing is dropped.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma256(iterations: usize) -> f32 {
        // from black_box, so that the compiler cannot fold the loop
        let (a, b) = (_mm256_set1_ps(std::hint::black_box(0.999_9)), _mm256_set1_ps(std::hint::black_box(1e-4)));
        let mut acc: [__m256; CHAINS] = std::array::from_fn(|i| _mm256_set1_ps(std::hint::black_box(i as f32)));
        for _ in 0..iterations {
            for v in &mut acc {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut out = [0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), acc.iter().fold(_mm256_setzero_ps(), |s, &v| _mm256_add_ps(s, v)));
        out.iter().sum()
    }

    /// [`fma256`] on registers of 16 lanes.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma512(iterations: usize) -> f32 {
        let (a, b) = (_mm512_set1_ps(std::hint::black_box(0.999_9)), _mm512_set1_ps(std::hint::black_box(1e-4)));
        let mut acc: [__m512; CHAINS] = std::array::from_fn(|i| _mm512_set1_ps(std::hint::black_box(i as f32)));
        for _ in 0..iterations {
            for v in &mut acc {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &v| _mm512_add_ps(s, v)))
    }
}
