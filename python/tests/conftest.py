"""Shared fixtures: the repository, the release binary the Rust tests built, bundled MNIST."""

import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))


def binary() -> str:
    b = os.environ.get("GATESCOPE_BIN") or os.path.join(ROOT, "target", "release", "gatescope")
    if not os.path.exists(b):
        pytest.fail(f"{b} does not exist: build it first (cargo build --release), or set GATESCOPE_BIN")
    return b


def run(*args, check=True, **kw):
    p = subprocess.run([binary(), *map(str, args)], capture_output=True, text=True, cwd=ROOT, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"gatescope {' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def mnist():
    from gatescope import data
    x, y = data.load_mnist(os.path.join(ROOT, "assets", "mnist"))
    tx, ty = data.load_mnist(os.path.join(ROOT, "assets", "mnist"), "test")
    return x, y, tx, ty
