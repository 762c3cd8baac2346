//! The IDX format of the MNIST database, gzipped or raw.
//!
//! Layout (big-endian): magic `0x0000_08TT` with TT = number of dimensions (0x08 = u8 data),
//! then one u32 per dimension, then the data. Labels are 1-d, images 3-d.

use std::io::Read;
use std::path::Path;

use super::{find_file, read_file, DataError, Dataset, DatasetKind, Split};

const LABELS_MAGIC: u32 = 0x0000_0801;
const IMAGES_MAGIC: u32 = 0x0000_0803;

const EMBEDDED: [&[u8]; 4] = [
    include_bytes!("../../assets/mnist/train-images-idx3-ubyte.gz"),
    include_bytes!("../../assets/mnist/train-labels-idx1-ubyte.gz"),
    include_bytes!("../../assets/mnist/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../assets/mnist/t10k-labels-idx1-ubyte.gz"),
];
const FILES: [&str; 4] = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

pub fn mnist_class_names() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// The MNIST copy compiled into the binary from assets/mnist.
pub fn mnist_embedded() -> Result<Dataset, DataError> {
    let name = |i: usize| format!("embedded assets/mnist/{}.gz", FILES[i]);
    let load = |i: usize| decompress(&name(i), EMBEDDED[i]);
    mnist_from_bytes([load(0)?, load(1)?, load(2)?, load(3)?], name)
}

/// MNIST from a folder holding the four IDX files (each gzipped or raw).
pub fn mnist_dir(dir: &Path) -> Result<Dataset, DataError> {
    let mut bytes: [Vec<u8>; 4] = Default::default();
    let mut paths: Vec<String> = Vec::new();
    for (i, f) in FILES.iter().enumerate() {
        let gz = format!("{f}.gz");
        let p = find_file(dir, &[f, &gz, &f.replace("-idx", ".idx")])?;
        let label = p.display().to_string();
        bytes[i] = decompress(&label, &read_file(&p)?)?;
        paths.push(label);
    }
    mnist_from_bytes(bytes, |i| paths[i].clone())
}

fn mnist_from_bytes([tr_x, tr_y, te_x, te_y]: [Vec<u8>; 4], name: impl Fn(usize) -> String) -> Result<Dataset, DataError> {
    let (train_images, rows, cols) = parse_images(&name(0), &tr_x)?;
    let train_labels = parse_labels(&name(1), &tr_y, 10)?;
    let (test_images, trows, tcols) = parse_images(&name(2), &te_x)?;
    let test_labels = parse_labels(&name(3), &te_y, 10)?;
    if (rows, cols) != (trows, tcols) {
        return Err(DataError::new(name(2), format!("images are {trows}x{tcols}, but the training images are {rows}x{cols}")));
    }
    for (xi, yi, x, y) in [(0, 1, &train_images, &train_labels), (2, 3, &test_images, &test_labels)] {
        let n = x.len() / (rows * cols);
        if n != y.len() {
            return Err(DataError::new(name(yi), format!("{} labels for {} images in {}", y.len(), n, name(xi))));
        }
    }
    Ok(Dataset {
        kind: DatasetKind::Mnist,
        train: Split { images: train_images, labels: train_labels, coarse_labels: None },
        test: Split { images: test_images, labels: test_labels, coarse_labels: None },
        image_shape: [1, rows, cols],
        class_names: mnist_class_names(),
        coarse_class_names: None,
    })
}

/// An IDX file decompresses to at most this many bytes (MNIST's largest: 47 MB): 512 MiB.
pub const MAX_IDX_BYTES: usize = 512 << 20;
/// Pixels of one image: 2^24 (e.g. 4096 × 4096).
pub const MAX_IMAGE_PIXELS: usize = 1 << 24;

/// Gunzips `bytes` if they start with the gzip magic (to at most [`MAX_IDX_BYTES`]), else
/// returns them as they are.
pub fn decompress(file: &str, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(MAX_IDX_BYTES));
        let limit = MAX_IDX_BYTES as u64 + 1;
        flate2::read::GzDecoder::new(bytes)
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| DataError::new(file, format!("corrupt gzip data: {e}")))?;
        if out.len() > MAX_IDX_BYTES {
            return Err(DataError::new(file, format!("decompresses to over {MAX_IDX_BYTES} bytes, the limit for an IDX file")));
        }
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

fn header(file: &str, b: &[u8], magic: u32, ndim: usize) -> Result<Vec<usize>, DataError> {
    let need = 4 + 4 * ndim;
    if b.len() < 4 {
        return Err(DataError::new(file, format!("truncated IDX header: {} bytes", b.len())));
    }
    let word = |i: usize| u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    let got = word(0);
    if got != magic {
        return Err(DataError::new(file, format!("bad IDX magic 0x{got:08x}, expected 0x{magic:08x}")));
    }
    if b.len() < need {
        return Err(DataError::new(file, format!("truncated IDX header: {} bytes, need {need}", b.len())));
    }
    let dims: Vec<usize> = (1..=ndim).map(|i| word(i) as usize).collect();
    let body = b.len() - need;
    let Some(count) = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) else {
        return Err(DataError::new(file, format!("header dimensions {dims:?} overflow: the file has {body} bytes of data")));
    };
    if body != count {
        let what = if body < count { "truncated" } else { "trailing bytes" };
        return Err(DataError::new(file, format!("{what}: header says {dims:?} = {count} bytes of data, file has {body}")));
    }
    Ok(dims)
}

/// Parses an IDX label file; every label must be < `classes`.
pub fn parse_labels(file: &str, b: &[u8], classes: usize) -> Result<Vec<u8>, DataError> {
    header(file, b, LABELS_MAGIC, 1)?;
    let labels = b[8..].to_vec();
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
        return Err(DataError::new(file, format!("label {l} at index {i} is out of range 0..{classes}")));
    }
    Ok(labels)
}

/// Parses an IDX image file: returns the pixels and (rows, cols).
pub fn parse_images(file: &str, b: &[u8]) -> Result<(Vec<u8>, usize, usize), DataError> {
    let dims = header(file, b, IMAGES_MAGIC, 3)?;
    if dims[1] == 0 || dims[2] == 0 {
        return Err(DataError::new(file, format!("empty image dimensions {dims:?}")));
    }
    if dims[1] * dims[2] > MAX_IMAGE_PIXELS {
        return Err(DataError::new(
            file,
            format!("images of {}x{} pixels are over the limit of {MAX_IMAGE_PIXELS} pixels", dims[1], dims[2]),
        ));
    }
    Ok((b[16..].to_vec(), dims[1], dims[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut v = LABELS_MAGIC.to_be_bytes().to_vec();
        v.extend((labels.len() as u32).to_be_bytes());
        v.extend(labels);
        v
    }

    #[test]
    fn labels_roundtrip_and_range() {
        assert_eq!(parse_labels("l", &labels_file(&[1, 2, 9]), 10).unwrap(), vec![1, 2, 9]);
        let e = parse_labels("l", &labels_file(&[1, 10]), 10).unwrap_err();
        assert!(e.to_string().contains("label 10 at index 1"), "{e}");
    }

    #[test]
    fn truncated_and_bad_magic() {
        let mut f = labels_file(&[1, 2, 3]);
        f.pop();
        let e = parse_labels("x.idx", &f, 10).unwrap_err().to_string();
        assert!(e.starts_with("x.idx: truncated"), "{e}");
        let e = parse_labels("x.idx", &f[..5], 10).unwrap_err().to_string();
        assert!(e.contains("truncated IDX header"), "{e}");
        let e = parse_images("x.idx", &labels_file(&[1])).unwrap_err().to_string();
        assert!(e.contains("bad IDX magic 0x00000801"), "{e}");
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let e = decompress("f.gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap_err().to_string();
        assert!(e.contains("corrupt gzip"), "{e}");
    }

    #[test]
    fn embedded_mnist_is_the_real_one() {
        let d = mnist_embedded().unwrap();
        assert_eq!((d.train.len(), d.test.len()), (60_000, 10_000));
        assert_eq!(d.image_shape, [1, 28, 28]);
        assert_eq!(&d.train.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
        assert_eq!(&d.test.labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    }
}
