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

import torch
import torch.nn as nn
import torch.nn.functional as F

import timing  # noqa: E402  (beside this script)
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
    ap = timing.parser(__doc__, steps=60, warmup=5)
    ap.add_argument("--separate", action="store_true")
    a = ap.parse_args()
    xs, ys = timing.setup(a)
    model = ConvHighway() if a.separate else FusedConvHighway()
    timing.time_training(model, xs, ys, a, "conv separate H, T " if a.separate else "conv ")


if __name__ == "__main__":
    main()
