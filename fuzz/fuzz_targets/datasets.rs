//! Fuzzes the dataset readers: IDX images and labels (raw and gzipped) and CIFAR-10/100
//! records. The first byte picks the reader.
#![no_main]

use gatescope::data::{cifar, idx};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    match pick % 5 {
        0 => {
            let _ = idx::parse_images("images", rest);
        }
        1 => {
            let _ = idx::parse_labels("labels", rest, 10);
        }
        2 => {
            if let Ok(bytes) = idx::decompress("images.gz", rest) {
                let _ = idx::parse_images("images.gz", &bytes);
            }
        }
        3 => {
            let _ = cifar::parse_records("data_batch_1.bin", rest, 1, 10, 0);
        }
        _ => {
            let _ = cifar::parse_records("train.bin", rest, 2, 100, 20);
        }
    }
});
