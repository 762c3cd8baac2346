"""gatescope.torch against gatescope itself: the same weights give the same snapshot and logits."""

import json
import os

import numpy as np
import pytest
import torch

import gatescope
from gatescope import torch as gt
from conftest import ROOT, run

torch.set_num_threads(2)
MODEL = os.path.join(ROOT, "recordings", "default.safetensors")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    run("export-torch", MODEL, "--out", out)
    return str(out / "model.json")


def test_export_torch_round_trip_logits_agree(exported, mnist, tmp_path):
    x, y, tx, ty = mnist
    model = gt.load(exported)
    with torch.no_grad():
        logits = model(gt.ProbeSet.x(np.array(tx[:2000])))
    acc = (logits.argmax(-1).numpy() == ty[:2000]).mean()
    assert acc > 0.95
    # gatescope evaluates the exported pair to the same test accuracy as the original model
    ours = json.loads(run("eval", exported, "--json").stdout)
    orig = json.loads(run("eval", MODEL, "--json").stdout)
    assert abs(ours["test_accuracy"] - orig["test_accuracy"]) < 1e-9
    # and back: PyTorch's save() of the loaded module opens in gatescope with the same logits
    spec = gt.save(model, str(tmp_path / "again"))
    again = gt.load(spec)
    with torch.no_grad():
        assert torch.allclose(again(gt.ProbeSet.x(np.array(tx[:500]))), logits[:500], atol=1e-5, rtol=0)
    full = (model(gt.ProbeSet.x(np.array(tx))).argmax(-1).numpy() == ty).mean()
    assert abs(full - orig["test_accuracy"]) <= 1e-4


def test_python_snapshot_matches_gatescope_probe(exported, mnist, tmp_path):
    x, y, tx, ty = mnist
    run("probe", MODEL, "--out", tmp_path / "rust.gsrec")
    rust = gatescope.read(str(tmp_path / "rust.gsrec"))
    r = rust.snapshots[0]
    model = gt.load(exported)
    probe = gt.ProbeSet(x, y, test_images=tx, test_labels=ty)
    assert probe.sample_indices == rust.header.sample_indices
    s = gt.snapshot(model, gt.mlp_adapter, probe)
    assert np.abs(s.mean_gate - r.mean_gate).max() <= 1e-5
    assert np.abs(s.gate_bias - r.gate_bias).max() <= 1e-3  # f16 storage
    # quantised maps: within one level of the stored grid
    for name, top in (("sample_gates", 127), ("sample_blocks", 127), ("class_mean_gate", 255)):
        a, b = getattr(s, name), getattr(r, name)
        level = (b.max() - b.min()) / top
        if name == "class_mean_gate":
            a, b = s.class_deviation, r.class_deviation
            level = (b.max() - b.min()) / top
        assert np.abs(a - b).max() <= level + 1e-6, name
    for pl, rl in zip(s.layers, r.layers):
        assert abs(pl["mean_gate"] - rl["mean_gate"]) <= 1e-5
        assert abs(pl["open_fraction"] - rl["open_fraction"]) <= 1e-4
        assert abs(pl["mean_change"] - rl["mean_change"]) <= 1e-5
    assert abs(s.test_accuracy - r.test_accuracy) <= 1e-4
    assert np.array_equal(s.sample_predictions, r.sample_predictions)


def test_probe_restores_training_mode_and_needs_no_grad(exported, mnist):
    x, y, _, _ = mnist
    model = gt.load(exported).train()
    s = gt.snapshot(model, gt.mlp_adapter, gt.ProbeSet(x, y, size=1000, samples=8))
    assert model.training and s.mean_gate.shape == (49, 50)
    model.eval()
    gt.snapshot(model, gt.mlp_adapter, gt.ProbeSet(x, y, size=1000, samples=8))
    assert not model.training


def test_hook_adapter_gives_the_reference_adapters_snapshot(exported, mnist):
    x, y, _, _ = mnist
    model = gt.load(exported)

    class GateOut(torch.nn.Module):  # a named submodule whose output is T
        def forward(self, z):
            return torch.sigmoid(z)

    for layer in model.layers:  # wrap the gate so a hook can see T itself
        layer.t = torch.nn.Sequential(layer.t, GateOut())
        layer.forward = (lambda l: lambda v, trace=None: l.act(l.h(v)) * l.t(v) + v * (1 - l.t(v)))(layer)
    model.layers[0].t[0].bias  # still reachable
    probe = gt.ProbeSet(x, y, size=2000, samples=8)
    hooks = gt.HookAdapter([f"layers.{i}.t.1" for i in range(49)], ["inp"] + [f"layers.{i}" for i in range(49)])
    ref = gt.load(exported)

    def with_act(adapter):  # the plain layer's hook sees inp's output before tanh
        def f(m, v):
            tr = adapter(m, v)
            tr.blocks[0] = torch.tanh(tr.blocks[0])
            return tr
        return f

    a = gt.snapshot(model, with_act(hooks), probe, biases=gt.gate_biases(ref))
    b = gt.snapshot(ref, gt.mlp_adapter, probe)
    assert np.abs(a.mean_gate - b.mean_gate).max() <= 1e-6
    assert np.abs(a.sample_blocks - b.sample_blocks).max() <= 1e-6
    with pytest.raises(KeyError, match="no submodule named 'nope'"):
        gt.HookAdapter(["nope"], ["inp"])(model, gt.ProbeSet.x(np.array(x[:2])))


def test_a_model_whose_gate_count_disagrees_with_the_card_is_refused_and_nothing_half_written(mnist, tmp_path):
    x, y, _, _ = mnist
    probe = gt.ProbeSet(x, y, size=500, samples=8)
    model = gt.HighwayMLP(depth=20)  # 19 gated layers
    card = gt.card({**gt.mlp_dims(model), "depth": 50})  # the card claims 49
    out = tmp_path / "r.gsrec"
    rec = gt.Recorder(model, gt.mlp_adapter, probe, path=str(out), model_card=card)
    with pytest.raises(gatescope.FormatError, match="the header's architecture implies"):
        rec.snapshot(0, 0.0)
    rec.close()
    back = gatescope.read(str(out))  # the file is whole: its header, no snapshot
    assert back.snapshots == [] and back.torn_tail is None
