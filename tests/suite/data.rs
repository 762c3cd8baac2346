//! Dataset readers on files the tests write: MNIST IDX (raw and gzipped), CIFAR-10, CIFAR-100,
//! and what happens with truncated or corrupt files.

use std::io::Write;
use std::path::Path;

use gatescope::data::{self, DatasetKind};

fn idx_images(n: usize, rows: usize, cols: usize) -> Vec<u8> {
    let mut v = 0x0000_0803u32.to_be_bytes().to_vec();
    for d in [n, rows, cols] {
        v.extend((d as u32).to_be_bytes());
    }
    v.extend((0..n * rows * cols).map(|i| (i % 251) as u8));
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = 0x0000_0801u32.to_be_bytes().to_vec();
    v.extend((labels.len() as u32).to_be_bytes());
    v.extend(labels);
    v
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write_mnist(dir: &Path, gzip: bool) {
    let files = [
        ("train-images-idx3-ubyte", idx_images(4, 3, 2)),
        ("train-labels-idx1-ubyte", idx_labels(&[0, 1, 2, 9])),
        ("t10k-images-idx3-ubyte", idx_images(2, 3, 2)),
        ("t10k-labels-idx1-ubyte", idx_labels(&[5, 7])),
    ];
    for (name, bytes) in files {
        if gzip {
            std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}

#[test]
fn mnist_from_a_folder_raw_and_gzipped() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), gzip);
        let d = data::load(DatasetKind::Mnist, Some(dir.path())).unwrap();
        assert_eq!(d.image_shape, [1, 3, 2]);
        assert_eq!(d.train.labels, vec![0, 1, 2, 9]);
        assert_eq!(d.test.labels, vec![5, 7]);
        assert_eq!(d.train.images[..7], [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(d.class_names.len(), 10);
    }
}

#[test]
fn mnist_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), false);
    let p = dir.path().join("t10k-labels-idx1-ubyte");
    // labels for 3 images, but there are 2 test images
    std::fs::write(&p, idx_labels(&[1, 2, 3])).unwrap();
    let e = data::load(DatasetKind::Mnist, Some(dir.path())).unwrap_err().to_string();
    assert!(e.contains("t10k-labels-idx1-ubyte") && e.contains("3 labels for 2 images"), "{e}");
    // truncated image file
    let img = dir.path().join("train-images-idx3-ubyte");
    let full = idx_images(4, 3, 2);
    std::fs::write(&img, &full[..full.len() - 1]).unwrap();
    let e = data::load(DatasetKind::Mnist, Some(dir.path())).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("truncated"), "{e}");
    // corrupt gzip
    std::fs::remove_file(&img).unwrap();
    std::fs::write(dir.path().join("train-images-idx3-ubyte.gz"), [0x1f, 0x8b, 8, 0, 0, 0, 9, 9]).unwrap();
    let e = data::load(DatasetKind::Mnist, Some(dir.path())).unwrap_err().to_string();
    assert!(e.contains("train-images-idx3-ubyte.gz") && e.contains("corrupt gzip"), "{e}");
    // missing file
    let empty = tempfile::tempdir().unwrap();
    let e = data::load(DatasetKind::Mnist, Some(empty.path())).unwrap_err().to_string();
    assert!(e.contains("file not found"), "{e}");
}

fn cifar_record(labels: &[u8], fill: u8) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend(std::iter::repeat_n(fill, 3072));
    r
}

#[test]
fn cifar10_reads_batches_and_class_names() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=5 {
        let mut f = cifar_record(&[i as u8], i as u8);
        f.extend(cifar_record(&[9], 200));
        std::fs::write(dir.path().join(format!("data_batch_{i}.bin")), f).unwrap();
    }
    std::fs::write(dir.path().join("test_batch.bin"), cifar_record(&[3], 7)).unwrap();
    let d = data::load(DatasetKind::Cifar10, Some(dir.path())).unwrap();
    assert_eq!(d.train.len(), 10);
    assert_eq!(d.train.labels, vec![1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
    assert_eq!(d.test.labels, vec![3]);
    assert_eq!(d.input_dim(), 3072);
    assert_eq!(d.train.images[3072], 200);
    assert_eq!(d.class_names[3], "cat");

    // meta file overrides names; wrong count is an error
    std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\n").unwrap();
    let e = data::load(DatasetKind::Cifar10, Some(dir.path())).unwrap_err().to_string();
    assert!(e.contains("batches.meta.txt") && e.contains("2 class names, expected 10"), "{e}");
    std::fs::remove_file(dir.path().join("batches.meta.txt")).unwrap();

    // out-of-range label and truncation
    std::fs::write(dir.path().join("test_batch.bin"), cifar_record(&[10], 0)).unwrap();
    let e = data::load(DatasetKind::Cifar10, Some(dir.path())).unwrap_err().to_string();
    assert!(e.contains("test_batch.bin") && e.contains("label 10 is out of range"), "{e}");
    let mut t = cifar_record(&[1], 0);
    t.truncate(3000);
    std::fs::write(dir.path().join("test_batch.bin"), t).unwrap();
    let e = data::load(DatasetKind::Cifar10, Some(dir.path())).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn cifar100_reads_fine_and_coarse_labels() {
    let dir = tempfile::tempdir().unwrap();
    let mut train = cifar_record(&[4, 99], 1);
    train.extend(cifar_record(&[19, 0], 2));
    std::fs::write(dir.path().join("train.bin"), train).unwrap();
    std::fs::write(dir.path().join("test.bin"), cifar_record(&[0, 55], 3)).unwrap();
    let d = data::load(DatasetKind::Cifar100, Some(dir.path())).unwrap();
    assert_eq!(d.train.labels, vec![99, 0]);
    assert_eq!(d.train.coarse_labels, Some(vec![4, 19]));
    assert_eq!(d.class_names.len(), 100);
    assert_eq!(d.class_names[99], "worm");
    assert_eq!(d.coarse_class_names.as_ref().unwrap()[19], "vehicles_2");
    std::fs::write(dir.path().join("test.bin"), cifar_record(&[20, 1], 3)).unwrap();
    let e = data::load(DatasetKind::Cifar100, Some(dir.path())).unwrap_err().to_string();
    assert!(e.contains("coarse label 20 is out of range"), "{e}");
}

#[test]
fn cifar_without_data_dir_says_so() {
    let e = data::load(DatasetKind::Cifar10, None).unwrap_err().to_string();
    assert!(e.contains("--data-dir"), "{e}");
}
