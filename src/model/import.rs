//! Opening highway MLPs trained in PyTorch: a safetensors `state_dict` and a small JSON spec.
//!
//! The spec (docs/pytorch-import.md) gives the shapes (depth, width, activation, input size,
//! classes), the dataset and, optionally, the tensor names. The default names are those of the
//! reference module in the docs:
//!
//! ```text
//! inp.weight, inp.bias                      the plain first layer   [width, input], [width]
//! layers.{i}.h.weight, layers.{i}.h.bias    block H of highway layer i (0-based)
//! layers.{i}.t.weight, layers.{i}.t.bias    gate T of highway layer i
//! out.weight, out.bias                      the classifier          [classes, width], [classes]
//! ```
//!
//! The weights are mapped onto gatescope's own layout, so an imported model runs the same
//! forward, probe, lesion and viewer code as a trained one. F32, F16, BF16 and F64 tensors are
//! read (and kept as f32).

use std::path::{Path, PathBuf};

use anyhow::Context;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::Model;
use crate::arch::{Activation, Arch, Family, GateMode};
use crate::card::{DatasetInfo, Metrics, ModelCard};
use crate::data::DatasetKind;

/// The `format` value that marks a spec file.
pub const SPEC_FORMAT: &str = "gatescope-pytorch-spec";

/// Tensor names in the state_dict; `{i}` is the 0-based index of a highway layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyPattern {
    pub input_weight: String,
    pub input_bias: String,
    pub block_weight: String,
    pub block_bias: String,
    pub gate_weight: String,
    pub gate_bias: String,
    pub output_weight: String,
    pub output_bias: String,
}

impl Default for KeyPattern {
    fn default() -> Self {
        KeyPattern {
            input_weight: "inp.weight".into(),
            input_bias: "inp.bias".into(),
            block_weight: "layers.{i}.h.weight".into(),
            block_bias: "layers.{i}.h.bias".into(),
            gate_weight: "layers.{i}.t.weight".into(),
            gate_bias: "layers.{i}.t.bias".into(),
            output_weight: "out.weight".into(),
            output_bias: "out.bias".into(),
        }
    }
}

/// The JSON spec beside a PyTorch state_dict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PyTorchSpec {
    /// Must be "gatescope-pytorch-spec".
    pub format: String,
    /// The safetensors file, relative to the spec's folder.
    pub weights: PathBuf,
    /// `highway` (an MLP: the default) or `conv` (the conv highway net of the paper's Table 1).
    #[serde(default = "highway")]
    pub family: Family,
    /// Conv nets: highway layers per stage (they sum to depth − 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<usize>,
    /// Conv nets: the pooling between stages; `max2` (2×2 max pooling, stride 2) is the one kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<String>,
    /// Hidden layers, counting the plain first layer (1 plain + depth − 1 highway layers).
    pub depth: usize,
    pub width: usize,
    pub activation: Activation,
    pub input_dim: usize,
    pub classes: usize,
    pub dataset: DatasetKind,
    /// Tensor names (defaults: the reference module's).
    #[serde(default)]
    pub keys: KeyPattern,
    /// Optional figures of the run to show beside the model.
    #[serde(default)]
    pub metrics: Option<Metrics>,
}

fn highway() -> Family {
    Family::Highway
}

/// True if the file at `path` looks like a spec (a JSON object with the spec's `format`).
pub fn is_spec(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
        && serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v.get("format").and_then(|f| f.as_str()).map(|f| f == SPEC_FORMAT))
            .unwrap_or(false)
}

/// Class names and image shape of a dataset, without loading it.
pub fn dataset_info(kind: DatasetKind) -> DatasetInfo {
    let (class_names, image_shape) = match kind {
        DatasetKind::Mnist => (crate::data::idx::mnist_class_names(), [1, 28, 28]),
        DatasetKind::Cifar10 => (crate::data::cifar::CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(), [3, 32, 32]),
        DatasetKind::Cifar100 => (crate::data::cifar::CIFAR100_FINE.iter().map(|s| s.to_string()).collect(), [3, 32, 32]),
    };
    DatasetInfo { name: kind, class_names, image_shape }
}

/// Reads a spec and its weights: a model in gatescope's layout and a card describing it.
/// gatescope's parameter names → the state_dict's, for a net of `depth` hidden layers.
pub(crate) fn key_map(k: &KeyPattern, depth: usize) -> Vec<(String, String)> {
    let mut map =
        vec![("layers.0.block.weight".to_string(), k.input_weight.clone()), ("layers.0.block.bias".to_string(), k.input_bias.clone())];
    for l in 1..depth {
        let i = (l - 1).to_string();
        for (ours, theirs) in
            [("block.weight", &k.block_weight), ("block.bias", &k.block_bias), ("gate.weight", &k.gate_weight), ("gate.bias", &k.gate_bias)]
        {
            map.push((format!("layers.{l}.{ours}"), theirs.replace("{i}", &i)));
        }
    }
    map.push(("output.weight".into(), k.output_weight.clone()));
    map.push(("output.bias".into(), k.output_bias.clone()));
    map
}

pub fn load(spec_path: &Path) -> anyhow::Result<(Model, ModelCard)> {
    let name = spec_path.display();
    let text = std::fs::read_to_string(spec_path).with_context(|| format!("reading {name}"))?;
    let spec = parse_spec(spec_path, &text)?;
    let weights = spec_path.parent().unwrap_or(Path::new(".")).join(&spec.weights);
    let bytes = std::fs::read(&weights).with_context(|| format!("{name}: reading the weights {}", weights.display()))?;
    load_parts(spec_path, &spec, &weights, &bytes)
}

/// Parses an import spec (`path` names it in errors).
pub fn parse_spec(path: &Path, text: &str) -> anyhow::Result<PyTorchSpec> {
    let name = path.display();
    let spec: PyTorchSpec = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text))
        .map_err(|e| anyhow::anyhow!("{name}: not a valid PyTorch import spec: {e}"))?;
    anyhow::ensure!(spec.format == SPEC_FORMAT, "{name}: format is {:?}, expected {SPEC_FORMAT:?}", spec.format);
    Ok(spec)
}

/// The architecture a spec describes, checked against the limits and the dataset.
fn spec_arch(spec_path: &Path, spec: &PyTorchSpec, info: &DatasetInfo) -> anyhow::Result<Arch> {
    let name = spec_path.display();
    match spec.family {
        Family::Highway => {
            anyhow::ensure!(spec.stages.is_empty() && spec.pooling.is_none(), "{name}: stages and pooling are for conv nets")
        }
        Family::Conv => {
            anyhow::ensure!(!spec.stages.is_empty(), "{name}: a conv spec needs \"stages\" (highway layers per stage, e.g. [3, 3, 3])");
            let pooling = spec.pooling.as_deref().unwrap_or("max2");
            anyhow::ensure!(pooling == "max2", "{name}: pooling {pooling:?} is not one gatescope runs (\"max2\": 2x2 max pooling)");
        }
        other => anyhow::bail!("{name}: family {:?}: only highway MLPs and conv highway nets are imported", other.name()),
    }
    let conv = spec.family == Family::Conv;
    let arch = Arch {
        family: spec.family,
        depth: spec.depth,
        width: spec.width,
        input_dim: spec.input_dim,
        classes: spec.classes,
        activation: spec.activation,
        gate_bias: 0.0,
        residual_block_layers: 2,
        gate: GateMode::Adaptive,
        fixed_gate: 0.5,
        conv_stages: if conv { spec.stages.clone() } else { vec![] },
        image_shape: conv.then_some(info.image_shape),
    };
    arch.validate().with_context(|| format!("{name}"))?;
    anyhow::ensure!(
        info.class_names.len() == spec.classes,
        "{name}: {} has {} classes, the spec says {}",
        spec.dataset.name(),
        info.class_names.len(),
        spec.classes
    );
    anyhow::ensure!(
        info.image_shape.iter().product::<usize>() == spec.input_dim,
        "{name}: {} images have {} values, the spec says input_dim {}",
        spec.dataset.name(),
        info.image_shape.iter().product::<usize>(),
        spec.input_dim
    );
    Ok(arch)
}

/// A model from a parsed spec and its weights held in memory: the architecture is checked
/// against the limits, and its size against the weights, before anything is allocated.
pub fn load_parts(spec_path: &Path, spec: &PyTorchSpec, weights: &Path, bytes: &[u8]) -> anyhow::Result<(Model, ModelCard)> {
    let name = spec_path.display();
    let info = dataset_info(spec.dataset);
    let arch = spec_arch(spec_path, spec, &info)?;
    let wname = weights.display();
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("{wname}: not a valid safetensors file ({e})"))?;

    let map = key_map(&spec.keys, arch.depth);

    let specs = arch.param_specs();
    let total = arch.num_params();
    // the spec's architecture must fit in the weights (2 bytes a value at least: F16, BF16)
    anyhow::ensure!(
        total.saturating_mul(2) <= bytes.len(),
        "{name}: the spec implies {total} parameters (depth {}, width {}), more than the {} bytes of {wname} can hold",
        spec.depth,
        spec.width,
        bytes.len()
    );
    let mut values = vec![0f32; total];
    let mut used = std::collections::HashSet::new();
    for s in &specs {
        let theirs = &map.iter().find(|(o, _)| o == &s.name).expect("every parameter is mapped").1;
        let t = st.tensor(theirs).map_err(|_| {
            let mut have: Vec<String> = st.names().into_iter().cloned().collect();
            have.sort();
            have.truncate(6);
            anyhow::anyhow!(
                "{wname}: tensor {theirs:?} (for {}) is missing; the file has {:?}...; set \"keys\" in the spec to map other names",
                s.name,
                have
            )
        })?;
        anyhow::ensure!(t.shape() == s.shape.as_slice(), "{wname}: {theirs} has shape {:?}, the spec implies {:?}", t.shape(), s.shape);
        let dst = &mut values[s.offset..s.offset + s.numel()];
        decode(t.dtype(), t.data(), dst).with_context(|| format!("{wname}: {theirs}"))?;
        anyhow::ensure!(dst.iter().all(|v| v.is_finite()), "{wname}: {theirs} holds a non-finite value");
        used.insert(theirs.clone());
    }
    let extra: Vec<&String> = st.names().into_iter().filter(|n| !used.contains(*n)).collect();
    anyhow::ensure!(extra.is_empty(), "{wname}: tensors the spec does not account for: {extra:?} (is depth {} right?)", spec.depth);
    let mut card = ModelCard::new(
        arch.clone(),
        info,
        serde_json::json!({ "imported_from": "pytorch", "spec": spec_path.display().to_string(), "weights": weights.display().to_string() }),
    );
    card.metrics = spec.metrics.clone();
    Ok((Model::from_flat(arch, Tensor::from_slice(&values))?, card))
}

/// Little-endian tensor bytes of `dtype` into f32s.
fn decode(dtype: Dtype, data: &[u8], dst: &mut [f32]) -> anyhow::Result<()> {
    let size = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        Dtype::F64 => 8,
        other => anyhow::bail!("dtype {other:?} is not a float type gatescope reads (F32, F16, BF16, F64)"),
    };
    anyhow::ensure!(data.len() == size * dst.len(), "{} bytes for {} values", data.len(), dst.len());
    for (d, c) in dst.iter_mut().zip(data.chunks_exact(size)) {
        *d = match dtype {
            Dtype::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            Dtype::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f32(),
            Dtype::BF16 => half::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
            _ => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
        };
    }
    Ok(())
}
