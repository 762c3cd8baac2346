"""PyTorch reference for `gatescope bench --arch conv`: the conv highway net of the paper's
Table 1 as gatescope builds it (`gatescope train --arch conv --depth 10 --width 16 --activation
relu`): a plain 3x3 conv 1 -> 16, then 9 highway layers in stages [3, 3, 3] with 2x2 max pooling
between them, global average pooling, a linear 16 -> 10; relu; gate bias -1. Trained eagerly
with SGD + momentum on the bundled MNIST, printing training samples/s as JSON. The project's own
reference, so the comparison is reproducible from a clone:

    PY=$(scripts/setup-python.sh); $PY benches/pytorch/conv_highway.py --threads 2
    target/release/gatescope bench --arch conv              # then compare samples/s
    target/release/gatescope bench --arch conv --reference python   # both, alternating

Flags: --threads 2, --batch-size 128, --steps 60 (timed, after --warmup 5), --separate (H and T
as two convolutions: the reference module `gatescope.torch.ConvHighway`; default: one conv to
2 x 16 channels split in two, the faster eager form), --compile (torch.compile of the step).
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
from gatescope.torch import ConvHighway  # noqa: E402


class FusedConvHighwayLayer(nn.Module):
    """H and T as one 3x3 conv to 2c channels, split in two."""

    def __init__(self, c=16, gate_bias=-1.0):
        super().__init__()
        self.c = c
        self.ht = nn.Conv2d(c, 2 * c, 3, padding=1)
        with torch.no_grad():
            self.ht.bias[c:] = gate_bias

    def forward(self, x):  # x: [batch, c, h, w]
        h, t = self.ht(x).split(self.c, 1)
        t = torch.sigmoid(t)
        return torch.relu(h) * t + x * (1 - t)


class FusedConvHighway(nn.Module):
    def __init__(self, c=16, stages=(3, 3, 3)):
        super().__init__()
        self.inp = nn.Conv2d(1, c, 3, padding=1)
        self.stages = nn.ModuleList(nn.Sequential(*[FusedConvHighwayLayer(c) for _ in range(n)]) for n in stages)
        self.out = nn.Linear(c, 10)

    def forward(self, x):
        x = torch.relu(self.inp(x.view(-1, 1, 28, 28)))
        for i, stage in enumerate(self.stages):
            if i:
                x = F.max_pool2d(x, 2)
            x = stage(x)
        return self.out(x.mean((2, 3)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--separate", action="store_true")
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = data.load_mnist(os.path.join(ROOT, "assets", "mnist"))
    xs = torch.from_numpy(np.array(x)).float() / 255.0
    ys = torch.from_numpy(np.array(y).astype(np.int64))
    model = ConvHighway() if a.separate else FusedConvHighway()
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
    kind = ("separate H, T " if a.separate else "") + ("compiled" if a.compile else "eager")
    print(json.dumps({"system": f"pytorch {torch.__version__} conv {kind}", "threads": a.threads, "batch_size": b,
                      "steps": a.steps, "samples_per_sec": round(a.steps * b / secs, 1),
                      "step_ms": round(1000 * secs / a.steps, 2)}))


if __name__ == "__main__":
    main()
