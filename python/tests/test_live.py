"""Real sockets, real processes: PyTorch loops stream to `gatescope collect`; torchrun DDP."""

import os
import socket
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import gatescope
from gatescope import format as fmt
from gatescope import torch as gt
from conftest import ROOT, binary, free_port

torch.set_num_threads(2)


def start_collector(out, *extra):
    port = free_port()
    p = subprocess.Popen([binary(), "collect", "--listen", f"127.0.0.1:{port}", "--out", str(out), "--json", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert '"listening"' in line, line + p.stderr.read()
    return p, f"127.0.0.1:{port}"


def train(model, x, y, steps, recorder=None, every=50):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    xs, ys = gt.ProbeSet.x(np.array(x[:20000])), torch.from_numpy(np.array(y[:20000]).astype(np.int64))
    for step in range(1, steps + 1):
        i = (step * 128) % (len(xs) - 128)
        logits = model(xs[i:i + 128])
        loss = F.cross_entropy(logits, ys[i:i + 128])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if recorder is not None and step % every == 0:
            recorder.snapshot(step, step / 468, train_loss=loss.item())


def test_a_pytorch_loop_streams_every_snapshot_to_the_collector(mnist, tmp_path):
    x, y, _, _ = mnist
    out = tmp_path / "live.gsrec"
    col, addr = start_collector(out, "--once")
    torch.manual_seed(0)
    model = gt.HighwayMLP()
    rec = gt.Recorder(model, gt.mlp_adapter, gt.ProbeSet(x, y, size=2000), connect=addr, source="pytest loop")
    train(model, x, y, 300, rec, every=50)
    summary = rec.close(grace=10)
    col.wait(timeout=30)
    assert col.returncode == 0, col.stderr.read()
    got = gatescope.read(str(out))
    assert summary["sent"] + summary["dropped"] == 6
    assert len(got.snapshots) == summary["sent"] >= 1
    assert [s.step for s in got.snapshots] == sorted(s.step for s in got.snapshots)
    assert got.header.source == "pytest loop" and got.snapshots[-1].mean_gate.shape == (49, 50)


def test_a_stalled_reader_never_slows_the_loop(mnist):
    """A peer that accepts and never reads: write() returns at once, drops are counted."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    addr = "127.0.0.1:%d" % server.getsockname()[1]
    x, y, _, _ = mnist
    probe = gt.ProbeSet(x, y, size=500)
    model = gt.HighwayMLP()
    snap = gt.snapshot(model, gt.mlp_adapter, probe)
    header = gatescope.Header(gt.card(gt.mlp_dims(model)), "stall test", len(probe), probe.sample_indices,
                              probe.sample_labels, probe.sample_images)
    w = gatescope.Writer(header, connect=addr, capacity=4)
    conn = None
    worst = 0.0
    for _ in range(400):  # ~150 MB of frames against a reader that takes nothing
        t = time.perf_counter()
        w.write(snap)
        worst = max(worst, time.perf_counter() - t)
        if conn is None:
            server.settimeout(0.01)
            try:
                conn, _ = server.accept()
            except OSError:
                pass
    print(f"stalled reader: slowest write() {worst * 1e3:.2f} ms, {w.dropped} dropped")
    assert worst < 0.05
    assert w.dropped >= 300
    summary = w.close(grace=0.5)
    assert summary["dropped"] >= 300 and summary["sent"] < 100
    server.close()


def test_the_collector_survives_a_peer_that_dies_mid_frame(tmp_path):
    rec = gatescope.read(os.path.join(ROOT, "recordings", "default.gsrec"))
    out = tmp_path / "c.gsrec"
    col, addr = start_collector(out)
    host, port = addr.split(":")
    frame = fmt.encode_snapshot(rec.snapshots[0])
    with socket.create_connection((host, int(port))) as s:
        s.sendall(fmt.preamble() + fmt.encode_header(rec.header) + frame + frame[: len(frame) // 2])
    time.sleep(0.5)
    with gatescope.Writer(rec.header, connect=addr) as w:  # a second peer, after the first died
        for snap in rec.snapshots[:3]:
            w.write(snap)
    deadline = time.time() + 10
    second = tmp_path / "c-2.gsrec"

    def second_has_three():
        # the collector creates the file, then writes its preamble: an empty file is not done yet
        try:
            return len(gatescope.read(str(second)).snapshots) == 3
        except (FileNotFoundError, fmt.FormatError):
            return False

    while time.time() < deadline and not second_has_three():
        time.sleep(0.1)
    col.send_signal(2)
    col.wait(timeout=10)
    assert col.returncode == 0
    first = gatescope.read(str(out))
    assert len(first.snapshots) == 1 and first.torn_tail is None  # the half frame never reached the file
    assert len(gatescope.read(str(second)).snapshots) == 3


def test_ddp_two_ranks_record_what_one_process_probes(mnist, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    t = time.time()
    p = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()),
                        os.path.join(ROOT, "python", "examples", "train_ddp.py"), "--steps", "200", "--every", "100",
                        "--connect", "", "--out", str(tmp_path / "ddp.gsrec"), "--save", str(tmp_path / "model")],
                       capture_output=True, text=True, env=env, timeout=600)
    wall = time.time() - t
    assert p.returncode == 0, p.stdout + p.stderr
    rec = gatescope.read(str(tmp_path / "ddp.gsrec"))
    assert [s.step for s in rec.snapshots] == [0, 100, 200]
    assert rec.header.source == "torchrun DDP, 2 ranks"
    x, y, tx, ty = mnist
    model = gt.load(str(tmp_path / "model" / "model.json"))
    single = gt.snapshot(model, gt.mlp_adapter, gt.ProbeSet(x, y, test_images=tx, test_labels=ty), step=200)
    # through the format, as the DDP run's snapshot went
    single = fmt.decode_body(fmt.encode_snapshot(single)[8:], 0, 0)[1]
    ddp = rec.snapshots[-1]
    diffs = {n: float(np.abs(getattr(single, n) - getattr(ddp, n)).max())
             for n in ("mean_gate", "class_mean_gate", "sample_gates", "sample_blocks", "gate_bias")}
    print(f"DDP run: {wall:.1f} s wall; max |single - DDP|: {diffs}")
    assert all(v <= 1e-6 for v in diffs.values()), diffs
    assert abs(single.test_accuracy - ddp.test_accuracy) <= 1e-9
