//! Fuzzes the PyTorch import: a spec (JSON) and a state_dict (safetensors). The input is
//! split at its first two bytes (a little-endian length of the spec part).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (spec, weights) = data[2..].split_at(n);
    let Ok(text) = std::str::from_utf8(spec) else { return };
    if let Ok(spec) = gatescope::model::import::parse_spec(Path::new("spec.json"), text) {
        let _ = gatescope::model::import::load_parts(Path::new("spec.json"), &spec, Path::new("w.safetensors"), weights);
    }
});
