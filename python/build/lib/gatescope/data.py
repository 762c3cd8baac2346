"""The datasets gatescope probes on, read with numpy alone: MNIST's IDX files (gzipped or not)."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _idx(path: str) -> np.ndarray:
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            opener = gzip.open if p.endswith(".gz") else open
            with opener(p, "rb") as f:
                data = f.read()
            break
    else:
        raise FileNotFoundError(f"{path}(.gz): no such file")
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 8:
        raise ValueError(f"{path}: not an IDX file of bytes")
    ndim = data[3]
    dims = struct.unpack_from(f">{ndim}I", data, 4)
    start = 4 + 4 * ndim
    n = int(np.prod(dims, dtype=np.int64))
    if len(data) - start != n:
        raise ValueError(f"{path}: {len(data) - start} bytes of data for dimensions {dims}")
    return np.frombuffer(data, np.uint8, offset=start).reshape(dims)


def load_mnist(folder: str, split: str = "train"):
    """(images uint8 [N, 784], labels uint8 [N]) of MNIST's ``train`` or ``test`` split."""
    imgs, labels = MNIST_FILES[split]
    x = _idx(os.path.join(folder, imgs))
    y = _idx(os.path.join(folder, labels))
    return x.reshape(len(x), -1), y
