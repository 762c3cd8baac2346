//! Fuzzes the model-file loader (safetensors + card): any bytes load or give one error,
//! never a panic, an abort or an allocation the file does not justify.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gatescope::model::file::load_bytes(std::path::Path::new("fuzz.safetensors"), data);
});
