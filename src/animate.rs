//! Gate evolution over training as an animated GIF: Figure 2 or 3 drawn for every snapshot of
//! a recording (by `export`), on one colour scale across all frames, encoded by the `gif`
//! crate (its NeuQuant palette per frame).

use std::path::Path;

use anyhow::Context;

use crate::colormap::Scale;
use crate::export::{self, Figure, FixedScales};
use crate::snapshot::{Header, Snapshot};

/// Which figure the animation shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Animated {
    /// Figure 2, with probe sample `sample`'s T and block outputs.
    Gates { sample: usize },
    /// Figure 3: the class deviations.
    Classes,
}

/// Hundredths of a second each frame shows; the last one stays longer.
const FRAME_DELAY: u16 = 50;
const LAST_FRAME_DELAY: u16 = 200;

/// The scales every frame shares: for Figure 2, T on [0, 1] and the biases and block outputs
/// symmetric around 0 over all snapshots; for Figure 3, one symmetric scale over all
/// snapshots' class deviations.
pub fn shared_scales(header: &Header, snapshots: &[Snapshot], figure: Animated) -> FixedScales {
    match figure {
        Animated::Gates { sample } => {
            let biases: Vec<f32> = snapshots.iter().flat_map(|s| s.gate_bias.data.iter().copied()).collect();
            let blocks: Vec<f32> = snapshots
                .iter()
                .filter(|s| s.sample_blocks.shape.len() == 3 && sample < s.sample_blocks.shape[0])
                .flat_map(|s| s.sample_blocks.row(sample).iter().copied())
                .collect();
            FixedScales { gates: Some([Scale::symmetric(&biases), Scale::unit(), Scale::unit(), Scale::symmetric(&blocks)]), classes: None }
        }
        Animated::Classes => {
            let all: Vec<f32> =
                snapshots.iter().flat_map(|s| crate::figures::figure3(header, s).classes.into_iter().flat_map(|(_, d)| d)).collect();
            FixedScales { gates: None, classes: Some(Scale::symmetric(&all)) }
        }
    }
}

/// Writes the animation of `figure` over `snapshots` to `path` (a .gif); `progress(done,
/// total)` after each frame. Returns the number of frames.
pub fn save_gif(
    header: &Header,
    snapshots: &[Snapshot],
    figure: Animated,
    path: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<usize> {
    anyhow::ensure!(
        path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gif")),
        "{}: the animation file must end in .gif",
        path.display()
    );
    anyhow::ensure!(!snapshots.is_empty(), "the recording has no snapshots to animate");
    if let Animated::Gates { sample } = figure {
        let k = header.num_samples();
        anyhow::ensure!(sample < k.max(1), "probe sample {sample} is out of range (the recording has {k})");
    }
    let fixed = shared_scales(header, snapshots, figure);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = None;
    for (i, snap) in snapshots.iter().enumerate() {
        let fig = match figure {
            Animated::Gates { sample } => Figure::Gates { header, snapshot: snap, sample },
            Animated::Classes => Figure::Classes { header, snapshot: snap },
        };
        let (w, h, rgb) = export::render_rgb(&fig, &fixed)?;
        let (w16, h16) = (u16::try_from(w).context("frame too wide for a GIF")?, u16::try_from(h).context("frame too tall for a GIF")?);
        let enc = match &mut encoder {
            Some(e) => e,
            None => {
                let mut e = gif::Encoder::new(std::io::BufWriter::new(&file), w16, h16, &[])
                    .with_context(|| format!("writing {}", path.display()))?;
                e.set_repeat(gif::Repeat::Infinite)?;
                encoder.insert(e)
            }
        };
        let mut frame = gif::Frame::from_rgb_speed(w16, h16, &rgb, 10);
        frame.delay = if i + 1 == snapshots.len() { LAST_FRAME_DELAY } else { FRAME_DELAY };
        enc.write_frame(&frame).with_context(|| format!("writing {}", path.display()))?;
        progress(i + 1, snapshots.len());
    }
    drop(encoder);
    Ok(snapshots.len())
}
