"""What the project's PyTorch references share: the flags, the bundled MNIST as tensors, and the
timed training loop (SGD + momentum, eager or torch.compile'd step) that prints samples/s as
one JSON line, the form `gatescope bench --reference python` reads."""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
from gatescope import data  # noqa: E402


def parser(doc, steps, warmup):
    """The flags every reference takes; a script adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--compile", action="store_true")
    return ap


def setup(a):
    """Threads and seed; the bundled MNIST training set as (pixels / 255, labels)."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = data.load_mnist(os.path.join(ROOT, "assets", "mnist"))
    return torch.from_numpy(np.array(x)).float() / 255.0, torch.from_numpy(np.array(y).astype(np.int64))


def time_training(model, xs, ys, a, system):
    """Trains `model` for --warmup untimed and --steps timed steps and prints the JSON line."""
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
    kind = "compiled" if a.compile else "eager"
    print(json.dumps({"system": f"pytorch {torch.__version__} {system}{kind}", "threads": a.threads, "batch_size": b,
                      "steps": a.steps, "samples_per_sec": round(a.steps * b / secs, 1),
                      "step_ms": round(1000 * secs / a.steps, 2)}))
