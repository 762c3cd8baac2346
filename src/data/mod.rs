//! Datasets as plain bytes: MNIST (IDX), CIFAR-10 and CIFAR-100 (binary versions).
//!
//! Nothing here touches libtorch: a [`Dataset`] is `u8` pixels plus labels and class names.
//! `model`/`train` turn it into tensors.

pub mod cifar;
pub mod idx;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// An error reading a dataset file: always names the file and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct DataError {
    pub file: String,
    pub problem: String,
}

impl DataError {
    pub fn new(file: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { file: file.into(), problem: problem.into() }
    }
}

/// Which dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    Mnist,
    Cifar10,
    Cifar100,
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
        }
    }
}

/// One split (train or test): `n` images of `dim` bytes each, row-major, and their labels.
#[derive(Debug, Clone)]
pub struct Split {
    /// [n, dim] pixel bytes (CIFAR: channel-major within an image)
    pub images: Vec<u8>,
    /// [n] class indices
    pub labels: Vec<u8>,
    /// [n] coarse class indices (CIFAR-100 only)
    pub coarse_labels: Option<Vec<u8>>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A dataset: both splits, the image shape and the class names.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub kind: DatasetKind,
    pub train: Split,
    pub test: Split,
    /// [channels, height, width]
    pub image_shape: [usize; 3],
    pub class_names: Vec<String>,
    /// CIFAR-100 only: the 20 superclass names.
    pub coarse_class_names: Option<Vec<String>>,
}

impl Dataset {
    /// Bytes per image (= input width of an MLP).
    pub fn input_dim(&self) -> usize {
        self.image_shape.iter().product()
    }
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Keeps the first `train` training and `test` test examples (quick runs and tests).
    pub fn truncated(mut self, train: Option<usize>, test: Option<usize>) -> Self {
        let dim = self.input_dim();
        let cut = |s: &mut Split, n: Option<usize>| {
            if let Some(n) = n.filter(|&n| n < s.len()) {
                s.images.truncate(n * dim);
                s.labels.truncate(n);
                if let Some(c) = &mut s.coarse_labels {
                    c.truncate(n);
                }
            }
        };
        cut(&mut self.train, train);
        cut(&mut self.test, test);
        self
    }
}

/// Loads a dataset. MNIST without `dir` is the copy embedded in the binary (assets/mnist).
pub fn load(kind: DatasetKind, dir: Option<&Path>) -> anyhow::Result<Dataset> {
    Ok(match (kind, dir) {
        (DatasetKind::Mnist, None) => idx::mnist_embedded()?,
        (DatasetKind::Mnist, Some(d)) => idx::mnist_dir(d)?,
        (DatasetKind::Cifar10, Some(d)) => cifar::cifar10_dir(d)?,
        (DatasetKind::Cifar100, Some(d)) => cifar::cifar100_dir(d)?,
        (k, None) => anyhow::bail!("dataset {} is not bundled: pass --data-dir with its binary files", k.name()),
    })
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::new(path.display().to_string(), e.to_string()))
}

pub(crate) fn find_file(dir: &Path, names: &[&str]) -> Result<PathBuf, DataError> {
    for n in names {
        let p = dir.join(n);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(DataError::new(dir.join(names[0]).display().to_string(), "file not found"))
}
