"""Train the reference highway MLP with DistributedDataParallel and watch its gates live.

    gatescope view --listen                  # or: gatescope collect --listen --out runs/ddp.gsrec
    torchrun --nproc_per_node 2 python/examples/train_ddp.py

gloo on CPU. Every rank trains on its shard of bundled MNIST; every rank probes its shard of
the probe set at each snapshot, the sums are all-reduced, and rank 0 alone streams (and, with
--out, writes a recording). Flags: --epochs, --steps, --every (steps between snapshots),
--connect ADDR (empty: no streaming), --out FILE.gsrec, --save DIR (the model as a spec).
"""

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gatescope import data  # noqa: E402
from gatescope import torch as gt  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    ap.add_argument("--every", type=int, default=100, help="steps between snapshots")
    ap.add_argument("--batch-size", type=int, default=128, help="per rank")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--probe", type=int, default=gt.PROBE_EXAMPLES, help="probe examples")
    ap.add_argument("--connect", default="127.0.0.1:7817", help="viewer or collector address ('' for none)")
    ap.add_argument("--out", default=None, help="also write a recording here (rank 0)")
    ap.add_argument("--save", default=None, help="save the trained model as an import spec in this folder")
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "assets", "mnist"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
    torch.manual_seed(a.seed)
    x, y = data.load_mnist(a.data_dir)
    tx, ty = data.load_mnist(a.data_dir, "test")
    model = DDP(gt.HighwayMLP())
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9)
    probe = gt.ProbeSet(x, y, size=a.probe, test_images=tx, test_labels=ty)
    rec = gt.Recorder(model, gt.mlp_adapter, probe, path=a.out, connect=a.connect or None,
                      model_card=gt.card(gt.mlp_dims(model)), source=f"torchrun DDP, {world} ranks")
    shard = np.arange(rank, len(x), world)  # this rank's examples
    xs = gt.ProbeSet.x(np.array(x[shard]))
    ys = torch.from_numpy(np.array(y[shard]).astype(np.int64))
    steps_per_epoch = len(shard) // a.batch_size
    total = a.steps or int(a.epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(a.seed + rank)
    t0, step, losses, rights, seen = time.time(), 0, 0.0, 0, 0
    rec.snapshot(0, 0.0)
    while step < total:
        order = torch.randperm(len(shard), generator=g)
        for i in range(steps_per_epoch):
            idx = order[i * a.batch_size:(i + 1) * a.batch_size]
            logits = model(xs[idx])
            loss = F.cross_entropy(logits, ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            losses += loss.item() * len(idx)
            rights += (logits.argmax(-1) == ys[idx]).sum().item()
            seen += len(idx)
            if step % a.every == 0 or step == total:
                rec.snapshot(step, step / steps_per_epoch, train_loss=losses / seen, train_accuracy=rights / seen)
                losses, rights, seen = 0.0, 0, 0
            if step >= total:
                break
    summary = rec.close()
    if rank == 0:
        print(f"trained {step} steps on {world} ranks in {time.time() - t0:.1f} s; recording: {summary}")
        if a.save:
            print("saved", gt.save(model, a.save))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
