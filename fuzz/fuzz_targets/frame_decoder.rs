//! Fuzzes the recording/stream decoder: any bytes must decode to messages or one error,
//! never a panic, both whole (`read_bytes`) and fed in pieces (`Decoder`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gatescope::record::read_bytes(data);
    // the same bytes as the body of a frame with a valid checksum, so that the JSON and
    // array decoding behind the CRC gets fuzzed too
    let mut framed = gatescope::record::preamble().to_vec();
    framed.extend((data.len() as u32).to_le_bytes());
    framed.extend(crc32fast::hash(data).to_le_bytes());
    framed.extend(data);
    let _ = gatescope::record::read_bytes(&framed);
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
