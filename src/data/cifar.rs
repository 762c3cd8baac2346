//! The CIFAR-10 and CIFAR-100 "binary version" formats.
//!
//! CIFAR-10: records of 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B), in
//! data_batch_1..5.bin and test_batch.bin. CIFAR-100: records of 1 coarse + 1 fine label byte +
//! 3072 pixel bytes, in train.bin and test.bin. Class names come from the meta files when they
//! are present, else from the published lists below.

use std::path::Path;

use super::{find_file, read_file, DataError, Dataset, DatasetKind, Split};

pub const PIXELS: usize = 3 * 32 * 32;

pub const CIFAR10_CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

pub const CIFAR100_COARSE: [&str; 20] = [
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
];

pub const CIFAR100_FINE: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// Parses CIFAR records with `label_bytes` (1 or 2) leading label bytes.
/// Returns (pixels, labels, coarse labels for 2-byte records).
pub fn parse_records(file: &str, b: &[u8], label_bytes: usize, classes: usize, coarse_classes: usize) -> Result<Records, DataError> {
    let rec = label_bytes + PIXELS;
    if b.is_empty() {
        return Err(DataError::new(file, "empty file"));
    }
    if !b.len().is_multiple_of(rec) {
        return Err(DataError::new(
            file,
            format!(
                "truncated: {} bytes is not a whole number of {rec}-byte records ({} whole, {} left over)",
                b.len(),
                b.len() / rec,
                b.len() % rec
            ),
        ));
    }
    let n = b.len() / rec;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut fine = Vec::with_capacity(n);
    let mut coarse = Vec::new();
    for (i, r) in b.chunks_exact(rec).enumerate() {
        let label = r[label_bytes - 1];
        if label as usize >= classes {
            return Err(DataError::new(file, format!("record {i}: label {label} is out of range 0..{classes}")));
        }
        if label_bytes == 2 {
            if r[0] as usize >= coarse_classes {
                return Err(DataError::new(file, format!("record {i}: coarse label {} is out of range 0..{coarse_classes}", r[0])));
            }
            coarse.push(r[0]);
        }
        fine.push(label);
        pixels.extend_from_slice(&r[label_bytes..]);
    }
    Ok((pixels, fine, coarse))
}

fn names_file(dir: &Path, file: &str, fallback: &[&str]) -> Result<Vec<String>, DataError> {
    let p = dir.join(file);
    if !p.is_file() {
        return Ok(fallback.iter().map(|s| s.to_string()).collect());
    }
    let text = String::from_utf8(read_file(&p)?).map_err(|_| DataError::new(p.display().to_string(), "not UTF-8 text"))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() != fallback.len() {
        return Err(DataError::new(p.display().to_string(), format!("{} class names, expected {}", names.len(), fallback.len())));
    }
    Ok(names)
}

fn load_split(dir: &Path, files: &[&str], label_bytes: usize, classes: usize, coarse: usize) -> Result<Split, DataError> {
    let mut split = Split { images: vec![], labels: vec![], coarse_labels: None };
    let mut coarse_labels = Vec::new();
    for f in files {
        let p = find_file(dir, &[f])?;
        let (x, y, c) = parse_records(&p.display().to_string(), &read_file(&p)?, label_bytes, classes, coarse)?;
        split.images.extend(x);
        split.labels.extend(y);
        coarse_labels.extend(c);
    }
    if label_bytes == 2 {
        split.coarse_labels = Some(coarse_labels);
    }
    Ok(split)
}

/// CIFAR-10 from a folder with data_batch_{1..5}.bin and test_batch.bin.
pub fn cifar10_dir(dir: &Path) -> Result<Dataset, DataError> {
    let train_files = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    Ok(Dataset {
        kind: DatasetKind::Cifar10,
        train: load_split(dir, &train_files, 1, 10, 0)?,
        test: load_split(dir, &["test_batch.bin"], 1, 10, 0)?,
        image_shape: [3, 32, 32],
        class_names: names_file(dir, "batches.meta.txt", &CIFAR10_CLASSES)?,
        coarse_class_names: None,
    })
}

/// A split's images, fine labels and coarse labels (CIFAR-100; empty for CIFAR-10).
type Records = (Vec<u8>, Vec<u8>, Vec<u8>);

/// CIFAR-100 from a folder with train.bin and test.bin (fine labels are the classes).
pub fn cifar100_dir(dir: &Path) -> Result<Dataset, DataError> {
    Ok(Dataset {
        kind: DatasetKind::Cifar100,
        train: load_split(dir, &["train.bin"], 2, 100, 20)?,
        test: load_split(dir, &["test.bin"], 2, 100, 20)?,
        image_shape: [3, 32, 32],
        class_names: names_file(dir, "fine_label_names.txt", &CIFAR100_FINE)?,
        coarse_class_names: Some(names_file(dir, "coarse_label_names.txt", &CIFAR100_COARSE)?),
    })
}
