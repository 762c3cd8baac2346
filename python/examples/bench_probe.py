"""What recording costs a PyTorch run: one gatescope snapshot of the Figure-2 model (10,000 probe
examples, 32 samples) against one training epoch of the same model (eager, SGD, batch 128).

    python python/examples/bench_probe.py [--threads 2] [--epoch-steps 468]

Prints the snapshot's time (with and without the test-set accuracy), an epoch's time, and the
share a snapshot every epoch adds to training.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gatescope import data  # noqa: E402
from gatescope import torch as gt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epoch-steps", type=int, default=468, help="steps of an epoch (60,000 / 128)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x, y = data.load_mnist(os.path.join(ROOT, "assets", "mnist"))
    tx, ty = data.load_mnist(os.path.join(ROOT, "assets", "mnist"), "test")
    torch.manual_seed(0)
    model = gt.HighwayMLP()
    probe = gt.ProbeSet(x, y, test_images=tx, test_labels=ty)
    no_test = gt.ProbeSet(x, y)
    gt.snapshot(model, gt.mlp_adapter, no_test)  # warm-up
    times = {"with test accuracy": [], "without": []}
    for _ in range(3):
        for key, p in (("with test accuracy", probe), ("without", no_test)):
            t = time.perf_counter()
            gt.snapshot(model, gt.mlp_adapter, p)
            times[key].append(time.perf_counter() - t)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    xs, ys = gt.ProbeSet.x(np.array(x)), torch.from_numpy(np.array(y).astype(np.int64))
    t = time.perf_counter()
    for i in range(a.epoch_steps):
        j = (i * 128) % (len(xs) - 128)
        loss = F.cross_entropy(model(xs[j:j + 128]), ys[j:j + 128])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    epoch = time.perf_counter() - t
    for key, ts in times.items():
        best = min(ts)
        print(f"snapshot ({key}): {best * 1e3:.0f} ms (best of 3; {', '.join(f'{v * 1e3:.0f}' for v in ts)})"
              f"  = {100 * best / epoch:.1f} % of an epoch")
    print(f"one training epoch ({a.epoch_steps} steps, eager, batch 128): {epoch:.2f} s")


if __name__ == "__main__":
    main()
