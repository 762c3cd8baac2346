"""Conformance of the Python reader and writer with gatescope's own (Rust) decoder, and bad input."""

import json
import os
import struct
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

import gatescope
from gatescope import format as fmt
from conftest import ROOT, run

ARRAYS = ("gate_bias", "mean_gate", "class_mean_gate", "sample_gates", "sample_blocks")


@pytest.mark.parametrize("name", ["default", "conv"])
def test_python_decodes_bundled_recordings_exactly_as_rust(name, tmp_path):
    path = os.path.join(ROOT, "recordings", f"{name}.gsrec")
    t = time.perf_counter()
    rec = gatescope.read(path)
    seconds = time.perf_counter() - t
    print(f"gatescope.read({name}.gsrec): {seconds * 1e3:.0f} ms, {len(rec.snapshots)} snapshots")
    run("dump", path, "--out", tmp_path / "d.safetensors")
    rust = load_file(str(tmp_path / "d.safetensors"))
    assert len(rec.snapshots) == len({k.split(".")[1] for k in rust if k.startswith("snapshot.")}) > 0
    assert np.array_equal(rec.header.sample_images, rust["header.sample_images"])
    for i, s in enumerate(rec.snapshots):
        for a in ARRAYS:
            ours, theirs = getattr(s, a), rust[f"snapshot.{i}.{a}"]
            assert ours.shape == theirs.shape, (i, a)
            assert np.array_equal(ours, theirs), (i, a, np.abs(ours - theirs).max())
        assert np.array_equal(s.sample_predictions, rust[f"snapshot.{i}.sample_predictions"])
    if name == "default":
        assert seconds <= 1.0


def test_python_decodes_a_recording_this_gatescope_writes_exactly_as_rust(tmp_path):
    """A fresh recording from the Rust trainer (its snapshot frames are over 64 KiB, so their
    payloads are deflated in two halves joined by a sync flush) decodes in Python as Rust does."""
    path = tmp_path / "fresh.gsrec"
    run("train", "-q", "--max-steps", 20, "--every", "10steps", "--record", path, "--out", tmp_path / "m.safetensors")
    rec = gatescope.read(str(path))
    run("dump", path, "--out", tmp_path / "d.safetensors")
    rust = load_file(str(tmp_path / "d.safetensors"))
    assert len(rec.snapshots) == 3  # steps 0, 10, 20
    for i, s in enumerate(rec.snapshots):
        assert s.sample_gates.nbytes // 4 >= 64 << 10  # a payload long enough to be split
        for a in ARRAYS:
            assert np.array_equal(getattr(s, a), rust[f"snapshot.{i}.{a}"]), (i, a)


def test_a_python_written_recording_reads_back_and_opens_in_gatescope(tmp_path):
    rec = gatescope.read(os.path.join(ROOT, "recordings", "default.gsrec"))
    out = tmp_path / "py.gsrec"
    with gatescope.Writer(rec.header, path=str(out)) as w:
        for s in rec.snapshots[:5]:
            w.write(s)
    back = gatescope.read(str(out))
    assert len(back.snapshots) == 5 and back.header.card == rec.header.card
    # the header names the run's model, and the name survives a Python rewrite
    assert rec.header.model == back.header.model == "default.safetensors"
    for a, b in zip(rec.snapshots, back.snapshots):
        assert np.array_equal(a.mean_gate, b.mean_gate)  # f32: exact
        assert a.step == b.step and a.layers == b.layers
        for name, top in (("sample_gates", 127), ("sample_blocks", 127)):
            x, y = getattr(a, name), getattr(b, name)
            span = x.max() - x.min()
            assert np.abs(x - y).max() <= span / top * 0.5 + 1e-6, name  # re-quantised: within half a level
    info = json.loads(run("info", out, "--json").stdout)
    assert info["snapshots"] == 5 and info["card"]["arch"]["depth"] == 50 and info["torn_tail_bytes"] is None
    assert info["model"] == "default.safetensors" and info["model_found"] is None  # not beside the copy


def test_torn_tail_is_reported_and_every_complete_frame_kept(tmp_path):
    data = open(os.path.join(ROOT, "recordings", "default.gsrec"), "rb").read()
    torn = tmp_path / "torn.gsrec"
    torn.write_bytes(data[:-1000])
    rec = gatescope.read(str(torn))
    full = gatescope.read_bytes(data)
    assert len(rec.snapshots) == len(full.snapshots) - 1
    assert rec.torn_tail is not None and rec.torn_tail[1] > 0
    assert "torn tail" in run("info", torn).stdout


def test_bad_input_raises_one_clear_error(tmp_path):
    data = open(os.path.join(ROOT, "recordings", "default.gsrec"), "rb").read()
    cases = {
        "magic": (b"NOTAREC\0" + data[8:], "not a gatescope recording"),
        "newer": (data[:8] + struct.pack("<HH", 2, 0) + data[12:], "newer than this gatescope reads"),
        "crc": (data[:30] + bytes([data[30] ^ 0xFF]) + data[31:], "checksum mismatch"),
        "empty": (b"", "shorter than the 12-byte preamble"),
    }
    for name, (bytes_, needle) in cases.items():
        p = tmp_path / f"{name}.gsrec"
        p.write_bytes(bytes_)
        with pytest.raises(gatescope.FormatError, match=needle) as e:
            gatescope.read(str(p))
        assert str(p) in str(e.value)


def test_a_snapshot_that_disagrees_with_its_header_is_refused(tmp_path):
    rec = gatescope.read(os.path.join(ROOT, "recordings", "default.gsrec"))
    s = rec.snapshots[0]
    s.mean_gate = s.mean_gate[:10]  # 10 gated layers, the card says 49
    s.class_mean_gate = s.class_mean_gate[:, :10]
    body = fmt.preamble() + fmt.encode_header(rec.header) + fmt.encode_snapshot(s)
    with pytest.raises(gatescope.FormatError, match="mean_gate has shape"):
        gatescope.read_bytes(body)
    p = tmp_path / "bad.gsrec"
    p.write_bytes(body)
    r = run("info", p, check=False)
    assert r.returncode == 1 and "mean_gate" in r.stderr and "panicked" not in r.stderr


def test_the_committed_pytorch_fixture_is_what_gatescope_reads(tmp_path):
    """tests/fixtures/pytorch-ddp.gsrec (written by gatescope.Writer from a torchrun run) decodes
    the same in both languages; the Rust viewer test opens it."""
    path = os.path.join(ROOT, "tests", "fixtures", "pytorch-ddp.gsrec")
    rec = gatescope.read(path)
    run("dump", path, "--out", tmp_path / "d.safetensors")
    rust = load_file(str(tmp_path / "d.safetensors"))
    for i, s in enumerate(rec.snapshots):
        for a in ARRAYS:
            assert np.array_equal(getattr(s, a), rust[f"snapshot.{i}.{a}"]), (i, a)
    assert "DDP" in json.loads(run("info", path, "--json").stdout)["card"]["training"].get("framework", "") + rec.header.source
