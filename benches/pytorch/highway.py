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

import torch
import torch.nn as nn

import timing  # noqa: E402  (beside this script)
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
    ap = timing.parser(__doc__, steps=400, warmup=50)
    ap.add_argument("--fused", action="store_true")
    a = ap.parse_args()
    xs, ys = timing.setup(a)
    model = FusedMLP() if a.fused else HighwayMLP()
    timing.time_training(model, xs, ys, a, "fused " if a.fused else "")


if __name__ == "__main__":
    main()
