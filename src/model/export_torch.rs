//! The way back to PyTorch: a gatescope model as a `state_dict` with the reference module's
//! tensor names (docs/pytorch-import.md), plus the import spec that opens it again.
//!
//! `gatescope.torch.load(spec)` (python/) builds the reference module with these weights; the
//! spec also opens the pair here, so the round trip is checked in both directions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use safetensors::{tensor::TensorView, Dtype};
use tch::Kind;

use super::import::{key_map, KeyPattern, PyTorchSpec, SPEC_FORMAT};
use super::Model;
use crate::arch::{Family, GateMode};
use crate::card::ModelCard;

/// File names written into the output folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const SPEC_FILE: &str = "model.json";

/// Writes `DIR/model.safetensors` (F32, reference names) and `DIR/model.json` (the spec);
/// returns the spec's path.
pub fn write(model: &Model, card: &ModelCard, dir: &Path) -> anyhow::Result<PathBuf> {
    let arch = &model.arch;
    anyhow::ensure!(
        matches!(arch.family, Family::Highway | Family::Conv) && arch.gate == GateMode::Adaptive,
        "only highway MLPs with adaptive gates and conv highway nets have a PyTorch reference module (this model is a {} net{})",
        arch.family.name(),
        match (arch.family, arch.gate) {
            (Family::Highway, GateMode::Learned) => " with learned per-unit gates",
            (Family::Highway, GateMode::Fixed) => " with fixed gates",
            _ => "",
        }
    );
    let keys = KeyPattern::default();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (ours, theirs) in key_map(&keys, arch.depth) {
        let spec = model.spec(&ours).with_context(|| format!("parameter {ours} missing from the layout"))?;
        let t = model.param(&ours).expect("spec exists").to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous();
        let mut values = vec![0f32; spec.numel()];
        t.view([-1]).copy_data(&mut values, spec.numel());
        tensors.push((theirs, spec.shape.clone(), values.iter().flat_map(|v| v.to_le_bytes()).collect()));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| Ok((name.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = dir.join(WEIGHTS_FILE);
    safetensors::tensor::serialize_to_file(views, &Some(meta), &weights).with_context(|| format!("writing {}", weights.display()))?;
    let spec = PyTorchSpec {
        format: SPEC_FORMAT.into(),
        weights: WEIGHTS_FILE.into(),
        family: arch.family,
        stages: arch.conv_stages.clone(),
        pooling: (arch.family == Family::Conv).then(|| "max2".to_string()),
        depth: arch.depth,
        width: arch.width,
        activation: arch.activation,
        input_dim: arch.input_dim,
        classes: arch.classes,
        dataset: card.dataset.name,
        keys,
        metrics: card.metrics.clone(),
    };
    let spec_path = dir.join(SPEC_FILE);
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)? + "\n").with_context(|| format!("writing {}", spec_path.display()))?;
    Ok(spec_path)
}
