//! Fuzzes the recording/stream decoder: any bytes must decode to messages or one error,
//! never a panic, both whole (`read_bytes`) and fed in pieces (`Decoder`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gatescope::record::read_bytes(data);
    let mut d = gatescope::record::Decoder::new();
    for chunk in data.chunks(97) {
        d.push(chunk);
        loop {
            match d.next() {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }
});
