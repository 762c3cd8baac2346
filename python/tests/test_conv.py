"""Conv highway nets between PyTorch and gatescope: import, export, and the same T maps and logits."""

import json
import os
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gatescope
from gatescope import torch as gt
from conftest import ROOT, run

torch.set_num_threads(2)
CONV = os.path.join(ROOT, "recordings", "conv.safetensors")


@pytest.fixture(scope="module")
def exported_conv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    run("export-torch", CONV, "--out", folder)
    return str(folder / "model.json")


@pytest.fixture(scope="module")
def pytorch_trained_conv(mnist, exported_conv, tmp_path_factory):
    """The bundled conv net, trained 60 more steps in PyTorch (its own weights now), saved as a spec."""
    x, y, _, _ = mnist
    torch.manual_seed(0)
    model = gt.load(exported_conv).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    xs, ys = gt.ProbeSet.x(np.array(x[:60 * 64])), torch.from_numpy(np.array(y[:60 * 64]).astype(np.int64))
    for i in range(60):
        loss = F.cross_entropy(model(xs[i * 64:(i + 1) * 64]), ys[i * 64:(i + 1) * 64])
        opt.zero_grad()
        loss.backward()
        opt.step()
    folder = tmp_path_factory.mktemp("conv")
    return model.eval(), gt.save(model, str(folder))


def test_a_pytorch_conv_net_opens_in_gatescope_with_the_same_logits_and_gates(pytorch_trained_conv, mnist, tmp_path):
    model, spec = pytorch_trained_conv
    x, y, tx, ty = mnist
    with torch.no_grad():
        logits = model(gt.ProbeSet.x(np.array(tx)))
        loss = F.cross_entropy(logits, torch.from_numpy(np.array(ty).astype(np.int64))).item()
        acc = (logits.argmax(-1).numpy() == ty).mean()
    ours = json.loads(run("eval", spec, "--json").stdout)
    print(f"conv import: PyTorch test loss {loss:.7f} acc {acc:.4f}; gatescope {ours['test_loss']:.7f} {ours['test_accuracy']:.4f}")
    assert acc > 0.98
    assert abs(ours["test_loss"] - loss) <= 1e-5 and abs(ours["test_accuracy"] - acc) <= 1e-9
    info = run("info", spec).stdout
    assert "conv net" in info
    # T maps: gatescope's probe of the spec and PyTorch's, on the same 2,000 real MNIST images
    run("probe", spec, "--probe", "2000", "--out", tmp_path / "p.gsrec")
    rust = gatescope.read(str(tmp_path / "p.gsrec")).snapshots[0]
    t = time.perf_counter()
    s = gt.snapshot(model, gt.conv_adapter, gt.ProbeSet(x, y, size=2000))
    print(f"conv probe in PyTorch: {time.perf_counter() - t:.2f} s")
    d = float(np.abs(s.mean_gate - rust.mean_gate).max())
    print(f"conv import: max |mean T (PyTorch) - mean T (gatescope)| = {d:.2e}")
    assert d <= 1e-5
    level = (rust.sample_gates.max() - rust.sample_gates.min()) / 127
    assert np.abs(s.sample_gates - rust.sample_gates).max() <= level + 1e-6
    assert np.array_equal(s.sample_predictions, rust.sample_predictions)
    # per-example T maps and logits, traced one by one
    for i in (0, 1, 2):
        tr = gt.conv_adapter(model, gt.ProbeSet.x(np.array(x[i:i + 1])))
        assert len(tr.gates) == 9 and tr.gates[0].shape == (1, 16)


def test_export_torch_of_the_bundled_conv_model_round_trips(mnist, exported_conv, tmp_path):
    x, y, tx, ty = mnist
    model = gt.load(exported_conv).eval()
    assert isinstance(model, gt.ConvHighway)
    with torch.no_grad():
        acc = (model(gt.ProbeSet.x(np.array(tx))).argmax(-1).numpy() == ty).mean()
    # gatescope's probe reports the test accuracy (10,000 images) of what it opened
    run("probe", CONV, "--probe", "100", "--out", tmp_path / "orig.gsrec")
    orig = gatescope.read(str(tmp_path / "orig.gsrec")).snapshots[0].test_accuracy
    assert abs(acc - orig) <= 1e-4, (acc, orig)
    spec = gt.save(model, str(tmp_path / "again"))
    run("probe", spec, "--probe", "100", "--out", tmp_path / "again.gsrec")
    again = gatescope.read(str(tmp_path / "again.gsrec")).snapshots[0]
    assert again.test_accuracy == orig


def test_a_spec_whose_gate_count_disagrees_is_one_clear_error(pytorch_trained_conv, tmp_path):
    _, spec = pytorch_trained_conv
    bad = json.load(open(spec))
    bad["stages"] = [3, 3, 2]  # 8 layers, the weights hold 9
    bad["depth"] = 9
    bad["weights"] = os.path.join(os.path.dirname(spec), "model.safetensors")
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    r = run("info", p, check=False)
    assert r.returncode == 1 and "tensors the spec does not account for" in r.stderr and "panicked" not in r.stderr
    with pytest.raises(ValueError, match="tensors the spec does not account for"):
        gt.load(str(p))
