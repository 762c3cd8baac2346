"""PyTorch reference for `gatescope bench`: the Figure-2 model (784 → plain 50 → 49 highway
layers of 50 tanh units, gate bias −2 → 10) trained eagerly with SGD + momentum on the bundled
MNIST, printing training samples/s. The project's own reference, so a speed comparison is
reproducible from a clone:

    scripts/setup-python.sh                               # prints the venv's python (torch 2.13.0)
    PY=$(scripts/setup-python.sh); $PY benches/pytorch/highway.py --threads 2
    target/release/gatescope bench --json                 # then compare samples/s

Flags: --threads 2, --batch-size 128, --steps 400 (timed, after --warmup 50), --fused (H and T
as one Linear, as gatescope's fast path fuses them), --compile (torch.compile of the step).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
from gatescope import data  # noqa: E402
from gatescope.torch import HighwayMLP  # noqa: E402


class FusedHighway(nn.Module):
    """H and T as one [2w, w] Linear."""

    def __init__(self, width=50, gate_bias=-2.0):
        super().__init__()
        self.ht = nn.Linear(width, 2 * width)
        with torch.no_grad():
            self.ht.bias[width:] = gate_bias

    def forward(self, x):
        h, t = self.ht(x).chunk(2, dim=1)
        t = torch.sigmoid(t)
        return torch.tanh(h) * t + x * (1 - t)


class FusedMLP(nn.Module):
    def __init__(self, depth=50, width=50):
        super().__init__()
        self.inp = nn.Linear(784, width)
        self.layers = nn.Sequential(*[FusedHighway(width) for _ in range(depth - 1)])
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        return self.out(self.layers(torch.tanh(self.inp(x))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--fused", action="store_true")
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = data.load_mnist(os.path.join(ROOT, "assets", "mnist"))
    xs = torch.from_numpy(np.array(x)).float() / 255.0
    ys = torch.from_numpy(np.array(y).astype(np.int64))
    model = FusedMLP() if a.fused else HighwayMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, foreach=True)

    def step(xb, yb):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    if a.compile:
        step = torch.compile(step)
    b = a.batch_size
    order = torch.randperm(len(xs))
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            t = time.perf_counter()
        j = (i * b) % (len(xs) - b)
        idx = order[j:j + b]
        step(xs[idx], ys[idx])
    secs = time.perf_counter() - t
    kind = ("fused " if a.fused else "") + ("compiled" if a.compile else "eager")
    print(json.dumps({"system": f"pytorch {torch.__version__} {kind}", "threads": a.threads, "batch_size": b,
                      "steps": a.steps, "samples_per_sec": round(a.steps * b / secs, 1)}))


if __name__ == "__main__":
    main()
