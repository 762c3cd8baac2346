"""Snapshots of live PyTorch models, with the definitions of gatescope's own probe.

    from gatescope.torch import HighwayMLP, ProbeSet, Recorder, mlp_adapter
    probe = ProbeSet(train_images, train_labels)             # first 10,000; 32 samples
    rec = Recorder(model, mlp_adapter, probe, path="run.gsrec", connect="127.0.0.1:7817")
    ...  rec.snapshot(step, epoch, train_loss=..., train_accuracy=...)   # in the loop
    rec.close()

A snapshot holds, like ``gatescope probe``: the gate biases b_T; the mean T over the probe
set; per-class mean T; T and block outputs y of K samples spread over the classes; per
layer the mean T, the fraction of gates with T > 0.5 and the mean |y_l − y_{l−1}|. Inputs
are pixels / 255, flattened (what gatescope feeds its own models).

An *adapter* says where a model's gates are: ``adapter(model, x) -> Trace(blocks, gates,
logits)`` with ``blocks`` the depth block outputs [B, W] (first: the plain layer) and
``gates`` T of each gated layer [B, W]. ``mlp_adapter`` and ``conv_adapter`` serve the
reference modules; ``HookAdapter`` serves any model through forward hooks.

Under ``torch.distributed`` every rank probes its shard of the probe set, the sums are
all-reduced, and rank 0 alone writes or streams.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from . import __version__
from .format import Header, Snapshot
from .writer import Writer

PROBE_EXAMPLES = 10_000
PROBE_SAMPLES = 32
CHUNK = 2_500


# ------------------------------------------------------------------ reference modules

class Highway(nn.Module):
    """y = H(x)·T(x) + x·(1 − T(x)), T = sigmoid(W_T x + b_T)."""

    def __init__(self, width: int, gate_bias: float = -2.0, activation: str = "tanh"):
        super().__init__()
        self.h = nn.Linear(width, width)  # block H
        self.t = nn.Linear(width, width)  # transform gate T
        self.act = torch.tanh if activation == "tanh" else torch.relu
        nn.init.constant_(self.t.bias, gate_bias)

    def forward(self, x, trace: Optional[list] = None):  # x: [batch, width]
        t = torch.sigmoid(self.t(x))  # [batch, width]
        if trace is not None:
            trace.append(t)
        return self.act(self.h(x)) * t + x * (1 - t)


class HighwayMLP(nn.Module):
    """The reference module of docs/pytorch-import.md: 1 plain layer, depth − 1 highway layers."""

    def __init__(self, input_dim=784, width=50, depth=50, classes=10, activation="tanh", gate_bias=-2.0):
        super().__init__()
        self.activation = activation
        self.act = torch.tanh if activation == "tanh" else torch.relu
        self.inp = nn.Linear(input_dim, width)
        self.layers = nn.ModuleList(Highway(width, gate_bias, activation) for _ in range(depth - 1))
        self.out = nn.Linear(width, classes)

    def forward(self, x, trace: Optional["Trace"] = None):  # x: [batch, input_dim], pixels / 255
        x = self.act(self.inp(x))  # [batch, width]
        if trace is not None:
            trace.blocks.append(x)
        for layer in self.layers:
            x = layer(x, trace.gates if trace is not None else None)
            if trace is not None:
                trace.blocks.append(x)
        return self.out(x)  # [batch, classes]


class ConvHighwayLayer(nn.Module):
    """A conv highway layer: H and T are 3x3 same-size convolutions."""

    def __init__(self, width: int, gate_bias: float = -1.0, activation: str = "relu"):
        super().__init__()
        self.h = nn.Conv2d(width, width, 3, padding=1)  # block H
        self.t = nn.Conv2d(width, width, 3, padding=1)  # transform gate T
        self.act = torch.tanh if activation == "tanh" else torch.relu
        nn.init.constant_(self.t.bias, gate_bias)

    def forward(self, x, trace: Optional[list] = None):  # x: [batch, width, h, w]
        t = torch.sigmoid(self.t(x))  # [batch, width, h, w]
        if trace is not None:
            trace.append(t.mean((2, 3)))  # [batch, width]: the spatial mean, as gatescope traces it
        return self.act(self.h(x)) * t + x * (1 - t)


class ConvHighway(nn.Module):
    """The conv highway net as gatescope builds it (`gatescope train --arch conv`): a plain 3x3
    conv to ``width`` channels, stages of conv highway layers with 2x2 max pooling between them,
    global average pooling, a linear classifier. Input: pixels / 255, flattened or [B, C, H, W]."""

    def __init__(self, image_shape=(1, 28, 28), width=16, stages=(3, 3, 3), classes=10, activation="relu", gate_bias=-1.0):
        super().__init__()
        self.image_shape, self.stages, self.activation = tuple(image_shape), list(stages), activation
        self.act = torch.tanh if activation == "tanh" else torch.relu
        self.inp = nn.Conv2d(image_shape[0], width, 3, padding=1)
        self.layers = nn.ModuleList(ConvHighwayLayer(width, gate_bias, activation) for _ in range(sum(stages)))
        self.out = nn.Linear(width, classes)
        self._pool_before = set(np.cumsum(self.stages)[:-1].tolist())  # layer indices (0-based) that start a stage

    def forward(self, x, trace: Optional["Trace"] = None):
        x = self.act(self.inp(x.view(-1, *self.image_shape)))  # [batch, width, h, w]
        if trace is not None:
            trace.blocks.append(x.mean((2, 3)))
        for i, layer in enumerate(self.layers):
            if i in self._pool_before:
                x = F.max_pool2d(x, 2)  # next stage: half size
            x = layer(x, trace.gates if trace is not None else None)
            if trace is not None:
                trace.blocks.append(x.mean((2, 3)))
        return self.out(x.mean((2, 3)))  # global average pooling → [batch, classes]


@dataclass
class Trace:
    blocks: list
    gates: list
    logits: Optional[torch.Tensor] = None


def mlp_adapter(model: nn.Module, x: torch.Tensor) -> Trace:
    """The adapter of the reference modules, :class:`HighwayMLP` and :class:`ConvHighway`
    (and of DDP-wrapped ones)."""
    m = model.module if hasattr(model, "module") else model
    tr = Trace([], [])
    tr.logits = m(x, tr)
    return tr


conv_adapter = mlp_adapter


class HookAdapter:
    """Any model: name the submodules whose outputs are T (one per gated layer) and y (one per
    block, the first being the plain layer). ``HookAdapter(["layers.0.gate", ...], ["stem", ...])``.
    A submodule's output may be [B, W] or [B, W, ...] (spatial dims are averaged, as for conv nets)."""

    def __init__(self, gates: Sequence[str], blocks: Sequence[str]):
        self.gate_names, self.block_names = list(gates), list(blocks)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Trace:
        m = model.module if hasattr(model, "module") else model
        mods = dict(m.named_modules())
        missing = [n for n in self.gate_names + self.block_names if n not in mods]
        if missing:
            raise KeyError(f"no submodule named {missing[0]!r} (the model has e.g. {list(mods)[1:6]})")
        got = {}

        def hook(name):
            def f(_m, _inp, out):
                got[name] = out.flatten(2).mean(2) if out.dim() > 2 else out
            return f

        handles = [mods[n].register_forward_hook(hook(n)) for n in set(self.gate_names + self.block_names)]
        try:
            logits = m(x)
        finally:
            for h in handles:
                h.remove()
        return Trace([got[n] for n in self.block_names], [got[n] for n in self.gate_names], logits)


def gate_biases(model: nn.Module) -> np.ndarray:
    """b_T of a HighwayMLP, [L, W]."""
    m = model.module if hasattr(model, "module") else model
    return torch.stack([l.t.bias.detach().float().cpu() for l in m.layers]).numpy()


# ------------------------------------------------------------------ probe set

class ProbeSet:
    """The first ``size`` training examples, and ``samples`` probe samples picked round-robin
    over the classes (sample k has class k mod C), exactly as gatescope's probe picks them."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, classes: int = 10, size: int = PROBE_EXAMPLES,
                 samples: int = PROBE_SAMPLES, test_images=None, test_labels=None):
        images = np.array(images, np.uint8).reshape(len(images), -1)  # a writable copy (torch wants one)
        labels = np.array(labels).astype(np.int64)
        n = min(size, len(images))
        self.images, self.labels, self.classes = images[:n], labels[:n], classes
        by_class = [np.flatnonzero(self.labels == c).tolist() for c in range(classes)]
        picked, rnd = [], 0
        while len(picked) < min(samples, n):
            for members in by_class:
                if rnd < len(members) and len(picked) < samples:
                    picked.append(members[rnd])
            rnd += 1
        self.sample_indices = picked
        self.sample_labels = [int(self.labels[i]) for i in picked]
        self.sample_images = self.images[picked]
        self.test = None if test_images is None else (np.array(test_images, np.uint8).reshape(len(test_images), -1),
                                                      np.array(test_labels).astype(np.int64))

    def __len__(self):
        return len(self.images)

    @staticmethod
    def x(images: np.ndarray, device="cpu") -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(images)).to(device).float() / 255.0


def card(model_dims: dict, dataset: str = "mnist", class_names=None, image_shape=(1, 28, 28), training=None,
         metrics=None, family: str = "highway") -> dict:
    """A gatescope model card (JSON) for a PyTorch model of the given dims
    (``depth``, ``width``, ``input_dim``, ``classes``, ``activation``, ``gate_bias``)."""
    d = model_dims
    classes = d["classes"]
    family = d.get("family", family)
    extra = {"conv_stages": list(d["stages"]), "image_shape": list(d["image_shape"])} if family == "conv" else {}
    image_shape = d.get("image_shape", image_shape)
    return {
        "format": "gatescope-model", "format_version": 1, "gatescope_version": __version__,
        "arch": {"family": family, "depth": d["depth"], "width": d["width"], "input_dim": d["input_dim"],
                 "classes": classes, "activation": d.get("activation", "tanh"), "gate_bias": float(d.get("gate_bias", 0.0)),
                 "residual_block_layers": 2, "gate": "adaptive", "fixed_gate": 0.5, **extra},
        "dataset": {"name": dataset, "class_names": list(class_names or [str(i) for i in range(classes)]),
                    "image_shape": list(image_shape)},
        "training": dict(training or {"framework": "pytorch", "torch_version": torch.__version__}),
        "metrics": metrics,
    }


def mlp_dims(model: nn.Module) -> dict:
    """The dims of a reference module (HighwayMLP or ConvHighway), for :func:`card`."""
    m = model.module if hasattr(model, "module") else model
    bias = float(torch.stack([l.t.bias.detach().float().mean() for l in m.layers]).mean()) if len(m.layers) else 0.0
    if isinstance(m, ConvHighway):
        c, h, w = m.image_shape
        return {"family": "conv", "depth": len(m.layers) + 1, "width": m.inp.out_channels, "input_dim": c * h * w,
                "classes": m.out.out_features, "activation": m.activation, "gate_bias": bias, "stages": m.stages,
                "image_shape": [c, h, w]}
    return {"depth": len(m.layers) + 1, "width": m.inp.out_features, "input_dim": m.inp.in_features,
            "classes": m.out.out_features, "activation": m.activation, "gate_bias": bias}


dims = mlp_dims
IMAGE_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32)}


# ------------------------------------------------------------------ the probe

def _world():
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def snapshot(model: nn.Module, adapter: Callable, probe: ProbeSet, step: int = 0, epoch: float = 0.0,
             train_loss: float = float("nan"), train_accuracy: float = float("nan"),
             test_accuracy: Optional[float] = None, biases: Optional[np.ndarray] = None) -> Snapshot:
    """One probe pass (every rank calls it under DDP; the result is complete on every rank).

    Runs under ``torch.no_grad()`` in eval mode and restores the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return _snapshot(model, adapter, probe, step, epoch, train_loss, train_accuracy, test_accuracy, biases)
    finally:
        model.train(was_training)


def _snapshot(model, adapter, probe, step, epoch, train_loss, train_accuracy, test_accuracy, biases):
    rank, world = _world()
    dev = next(model.parameters()).device
    n, c = len(probe), probe.classes
    # this rank's contiguous shard of the probe set
    lo, hi = n * rank // world, n * (rank + 1) // world
    class_sum = open_ = change = None
    for start in range(lo, hi, CHUNK):
        end = min(start + CHUNK, hi)
        x = ProbeSet.x(probe.images[start:end], dev)
        y = torch.from_numpy(probe.labels[start:end]).to(dev)
        tr = adapter(model, x)
        gates = torch.stack([t.float() for t in tr.gates]) if tr.gates else None  # [L, B, W]
        blocks = torch.stack([b.float() for b in tr.blocks])  # [depth, B, W]
        if class_sum is None:
            L, W = (gates.shape[0] if gates is not None else 0), blocks.shape[2]
            class_sum = torch.zeros(L, c, W, dtype=torch.float64, device=dev)
            open_ = torch.zeros(max(L, 1), dtype=torch.float64, device=dev)
            change = torch.zeros(blocks.shape[0], dtype=torch.float64, device=dev)
        # f32 within a chunk (as gatescope's probe sums), f64 across chunks and ranks
        onehot_t = F.one_hot(y, c).float().t()  # [C, B]
        if gates is not None:
            class_sum += torch.matmul(onehot_t, gates).double()  # [L, C, W]
            open_[:gates.shape[0]] += (gates > 0.5).sum(dim=(1, 2)).double()
        change[1:] += (blocks[1:] - blocks[:-1]).abs().sum(dim=(1, 2)).double()
    # shapes for ranks with no examples (more ranks than chunks): from the samples' trace
    sx = ProbeSet.x(probe.sample_images, dev)
    st = adapter(model, sx)
    L, W, depth = len(st.gates), st.blocks[0].shape[1], len(st.blocks)
    if class_sum is None:
        class_sum = torch.zeros(L, c, W, dtype=torch.float64, device=dev)
        open_ = torch.zeros(max(L, 1), dtype=torch.float64, device=dev)
        change = torch.zeros(depth, dtype=torch.float64, device=dev)
    if world > 1:
        for t in (class_sum, open_, change):
            dist.all_reduce(t)
    counts = np.bincount(probe.labels, minlength=c).clip(min=1).astype(np.float64)  # [C]
    class_sum = class_sum.cpu().numpy()
    mean_gate = (class_sum.sum(1) / n).astype(np.float32)  # [L, W]
    class_mean = (class_sum / counts[None, :, None]).transpose(1, 0, 2).astype(np.float32)  # [C, L, W]
    open_ = open_.cpu().numpy() / (n * W)
    change = change.cpu().numpy() / (n * W)
    layers = []
    for l in range(1, depth):
        g = l - 1 if l - 1 < L else None
        layers.append({"layer": l, "mean_gate": float(mean_gate[g].mean()) if g is not None else float("nan"),
                       "open_fraction": float(open_[g]) if g is not None else float("nan"),
                       "mean_change": float(change[l])})
    if test_accuracy is None and probe.test is not None:
        test_accuracy = _accuracy(model, adapter, probe.test, dev, rank, world)
    if biases is None:
        try:
            biases = gate_biases(model)
        except AttributeError:
            biases = np.zeros((0, W), np.float32)
    return Snapshot(
        step=int(step), epoch=float(epoch), train_loss=float(train_loss), train_accuracy=float(train_accuracy),
        test_accuracy=float("nan") if test_accuracy is None else float(test_accuracy),
        sample_predictions=st.logits.argmax(-1).cpu().numpy().astype(np.int64),
        layers=layers, gate_bias=np.asarray(biases, np.float32), mean_gate=mean_gate, class_mean_gate=class_mean,
        sample_gates=(torch.stack(st.gates, 1).float().cpu().numpy() if L else np.zeros((len(sx), 0, W), np.float32)),
        sample_blocks=torch.stack(st.blocks, 1).float().cpu().numpy())


def _accuracy(model, adapter, test, dev, rank, world) -> float:
    x, y = test
    lo, hi = len(x) * rank // world, len(x) * (rank + 1) // world
    right = torch.zeros(1, dtype=torch.float64, device=dev)
    m = model.module if hasattr(model, "module") else model
    for s in range(lo, hi, CHUNK):
        e = min(s + CHUNK, hi)
        right += (m(ProbeSet.x(x[s:e], dev)).argmax(-1).cpu() == torch.from_numpy(y[s:e])).sum()
    if world > 1:
        dist.all_reduce(right)
    return float(right.item()) / len(x)


class Recorder:
    """Probes a model now and then and writes (file) and/or streams (viewer, collector) the
    snapshots. Under DDP every rank calls :meth:`snapshot`; rank 0 alone writes."""

    def __init__(self, model: nn.Module, adapter: Callable, probe: ProbeSet, path: Optional[str] = None,
                 connect: Optional[str] = None, model_card: Optional[dict] = None, source: str = "pytorch"):
        self.model, self.adapter, self.probe = model, adapter, probe
        rank, _ = _world()
        self.writer = None
        if model_card is None:
            model_card = card(mlp_dims(model))
        self.header = Header(card=model_card, source=source, probe_size=len(probe),
                             sample_indices=list(probe.sample_indices), sample_labels=list(probe.sample_labels),
                             sample_images=probe.sample_images)
        if rank == 0:
            self.writer = Writer(self.header, path=path, connect=connect)

    def snapshot(self, step: int, epoch: float, **progress) -> Optional[Snapshot]:
        s = snapshot(self.model, self.adapter, self.probe, step, epoch, **progress)
        if self.writer is not None:
            self.writer.write(s)
        return s

    def close(self, grace: float = 2.0) -> Optional[dict]:
        """Finishes writing (giving a viewer ``grace`` seconds); the writer's summary on rank 0."""
        return self.writer.close(grace) if self.writer is not None else None


# ------------------------------------------------------------------ specs and state_dicts

def load(spec_path: str) -> nn.Module:
    """The reference module (HighwayMLP, or ConvHighway for ``"family": "conv"``) with the
    weights of an import spec (e.g. from ``gatescope export-torch``)."""
    from safetensors.torch import load_file

    with open(spec_path) as f:
        spec = json.load(f)
    if spec.get("format") != "gatescope-pytorch-spec":
        raise ValueError(f"{spec_path}: not a gatescope PyTorch spec (format {spec.get('format')!r})")
    if spec.get("family", "highway") == "conv":
        model = ConvHighway(IMAGE_SHAPES[spec["dataset"]], spec["width"], spec["stages"], spec["classes"],
                            spec.get("activation", "relu"))
    else:
        model = HighwayMLP(spec["input_dim"], spec["width"], spec["depth"], spec["classes"], spec.get("activation", "tanh"))
    keys = spec.get("keys") or {}
    default = {"input_weight": "inp.weight", "input_bias": "inp.bias", "block_weight": "layers.{i}.h.weight",
               "block_bias": "layers.{i}.h.bias", "gate_weight": "layers.{i}.t.weight", "gate_bias": "layers.{i}.t.bias",
               "output_weight": "out.weight", "output_bias": "out.bias"}
    k = {**default, **keys}
    state = load_file(os.path.join(os.path.dirname(os.path.abspath(spec_path)), spec["weights"]))
    ours = {"inp.weight": k["input_weight"], "inp.bias": k["input_bias"], "out.weight": k["output_weight"],
            "out.bias": k["output_bias"]}
    for i in range(spec["depth"] - 1):
        for o, t in (("h.weight", "block_weight"), ("h.bias", "block_bias"), ("t.weight", "gate_weight"), ("t.bias", "gate_bias")):
            ours[f"layers.{i}.{o}"] = k[t].replace("{i}", str(i))
    missing = [t for t in ours.values() if t not in state]
    if missing:
        raise KeyError(f"{spec_path}: tensor {missing[0]!r} is missing from {spec['weights']}")
    extra = sorted(set(state) - set(ours.values()))
    if extra:
        raise ValueError(f"{spec_path}: tensors the spec does not account for: {extra[:4]} (is depth right?)")
    model.load_state_dict({o: state[t].float() for o, t in ours.items()})
    return model


def save(model: nn.Module, folder: str, dataset: str = "mnist", metrics: Optional[dict] = None) -> str:
    """Writes ``folder/model.safetensors`` and ``folder/model.json``: a spec every gatescope command opens."""
    from safetensors.torch import save_file

    m = model.module if hasattr(model, "module") else model
    os.makedirs(folder, exist_ok=True)
    save_file({k: v.detach().float().contiguous().cpu() for k, v in m.state_dict().items()},
              os.path.join(folder, "model.safetensors"))
    d = mlp_dims(m)
    spec = {"format": "gatescope-pytorch-spec", "weights": "model.safetensors", "depth": d["depth"], "width": d["width"],
            "activation": d["activation"], "input_dim": d["input_dim"], "classes": d["classes"], "dataset": dataset}
    if d.get("family") == "conv":
        spec.update(family="conv", stages=d["stages"], pooling="max2")
    if metrics:
        spec["metrics"] = metrics
    path = os.path.join(folder, "model.json")
    with open(path, "w") as f:
        json.dump(spec, f, indent=2)
    return path
