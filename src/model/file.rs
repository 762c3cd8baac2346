//! Model files: the weights as safetensors, with the JSON model card in the safetensors
//! header metadata (key `gatescope.card`). One file, one path; loading reads data only
//! (safetensors holds no code), and a card that does not match the weights is an error.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use tch::{Kind, Tensor};

use super::Model;
pub use crate::card::{DatasetInfo, Metrics, ModelCard, FORMAT, FORMAT_VERSION};

pub const CARD_KEY: &str = "gatescope.card";

/// Writes `model` with `card` to `path` (atomically: a temp file, then a rename).
pub fn save(model: &Model, card: &ModelCard, path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(card.arch == model.arch, "model card and model disagree on the architecture");
    let n = model.num_params();
    let mut values = vec![0f32; n];
    model.flat.to_device(tch::Device::Cpu).to_kind(Kind::Float).contiguous().copy_data(&mut values, n);
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut views = Vec::with_capacity(model.specs.len());
    for s in &model.specs {
        let data = &bytes[4 * s.offset..4 * (s.offset + s.numel())];
        views.push((s.name.clone(), TensorView::new(Dtype::F32, s.shape.clone(), data)?));
    }
    let meta = HashMap::from([(CARD_KEY.to_string(), serde_json::to_string(card)?)]);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::tensor::serialize_to_file(views, &Some(meta), &tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads the card alone (cheap for gatescope files: only the header is parsed; an imported
/// PyTorch model is loaded to check its weights against the spec).
pub fn read_card(path: &Path) -> anyhow::Result<ModelCard> {
    let bytes = std::fs::read(path).with_context(|| format!("reading model {}", path.display()))?;
    if super::import::is_spec(&bytes)
        || (SafeTensors::read_metadata(&bytes).is_ok() && card_from_bytes(path, &bytes).is_err() && path.with_extension("json").is_file())
    {
        return load(path).map(|(_, c)| c);
    }
    card_from_bytes(path, &bytes)
}

fn card_from_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<ModelCard> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file ({e:?})", path.display()))?;
    let Some(text) = meta.metadata().as_ref().and_then(|m| m.get(CARD_KEY)) else {
        bail!("{}: safetensors file without a gatescope model card (metadata key {CARD_KEY})", path.display());
    };
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{}: model card is not valid JSON", path.display()))?;
    let version = value.get("format_version").and_then(|v| v.as_u64());
    match version {
        Some(v) if v as u32 > FORMAT_VERSION => {
            bail!("{}: model format version {v} is newer than this gatescope reads ({FORMAT_VERSION}); upgrade gatescope", path.display())
        }
        None => bail!("{}: model card has no format_version", path.display()),
        _ => {}
    }
    let card: ModelCard =
        serde_path_to_error::deserialize(value).map_err(|e| anyhow::anyhow!("{}: model card is malformed: {e}", path.display()))?;
    anyhow::ensure!(card.format == FORMAT, "{}: card format is {:?}, expected {FORMAT:?}", path.display(), card.format);
    card.arch.validate().with_context(|| format!("{}: model card", path.display()))?;
    Ok(card)
}

/// Loads a model: a gatescope model file (card, then weights, checked against each other), or
/// a PyTorch import spec (JSON, `import`), or a PyTorch state_dict with its spec beside it
/// (`NAME.json` for `NAME.safetensors`).
pub fn load(path: &Path) -> anyhow::Result<(Model, ModelCard)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading model {}", path.display()))?;
    if super::import::is_spec(&bytes) {
        return super::import::load(path);
    }
    match card_from_bytes(path, &bytes) {
        Err(e) if e.to_string().contains("without a gatescope model card") => {
            let spec = path.with_extension("json");
            if spec.is_file() {
                return super::import::load(&spec);
            }
            bail!("{e}; if it is a PyTorch state_dict, write an import spec at {} (docs/pytorch-import.md)", spec.display());
        }
        _ => load_bytes(path, &bytes),
    }
}

/// Loads a gatescope model file held in memory (`path` names it in errors): the card, then
/// the weights, checked against each other and against the limits before allocating.
pub fn load_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<(Model, ModelCard)> {
    let card = card_from_bytes(path, bytes)?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("{}: corrupt safetensors data ({e})", path.display()))?;
    let specs = card.arch.param_specs();
    let mismatch = |what: String| anyhow::anyhow!("{}: model card does not match the weights: {what}", path.display());
    let expected: std::collections::HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    if let Some(extra) = st.names().into_iter().find(|n| !expected.contains(n.as_str())) {
        return Err(mismatch(format!("unexpected tensor {extra}")));
    }
    let total: usize = specs.iter().map(|s| s.numel()).sum();
    // the card's architecture must fit in the file before anything is allocated for it
    anyhow::ensure!(
        total.saturating_mul(4) <= bytes.len(),
        "{}: model card claims {total} parameters ({} bytes of f32), but the file has {} bytes",
        path.display(),
        total.saturating_mul(4),
        bytes.len()
    );
    let mut values = vec![0f32; total];
    for s in &specs {
        let t = st.tensor(&s.name).map_err(|_| mismatch(format!("tensor {} is missing", s.name)))?;
        if t.dtype() != Dtype::F32 {
            return Err(mismatch(format!("{} is {:?}, expected F32", s.name, t.dtype())));
        }
        if t.shape() != s.shape.as_slice() {
            return Err(mismatch(format!("{} has shape {:?}, the card implies {:?}", s.name, t.shape(), s.shape)));
        }
        for (dst, src) in values[s.offset..s.offset + s.numel()].iter_mut().zip(t.data().chunks_exact(4)) {
            *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        }
    }
    if let Some((i, _)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        let name = specs.iter().find(|s| s.offset <= i && i < s.offset + s.numel()).map(|s| s.name.as_str());
        bail!("{}: weight {} holds a non-finite value", path.display(), name.unwrap_or("?"));
    }
    let model = Model::from_flat(card.arch.clone(), Tensor::from_slice(&values))?;
    Ok((model, card))
}
