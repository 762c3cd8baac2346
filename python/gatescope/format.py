"""Recording format v1 (docs/recording-format.md): the one Python implementation.

    file     = magic "GATESCP\\0" | major u16 LE | minor u16 LE
    frame    = length u32 LE | crc32 u32 LE (of body) | body
    body     = json_length u32 LE | json | raw DEFLATE of the arrays, in the order listed

The same bytes are a file and a stream (``gatescope view --listen``, ``gatescope collect``).
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

MAGIC = b"GATESCP\0"
VERSION_MAJOR = 1
VERSION_MINOR = 0
PREAMBLE_LEN = 12
MAX_FRAME = 1 << 28
MAX_FRAME_DECODED = 1 << 28
MAX_RECORDING_DECODED = 640 << 20
MAX_SAMPLES = 4096


class FormatError(ValueError):
    """A file or stream that is not a readable gatescope recording (the message says why)."""


def preamble() -> bytes:
    return MAGIC + struct.pack("<HH", VERSION_MAJOR, VERSION_MINOR)


def check_preamble(b: bytes) -> None:
    n = min(len(b), 8)
    if b[:n] != MAGIC[:n]:
        raise FormatError(f"not a gatescope recording (wrong magic bytes {b[:n]!r})")
    if len(b) < PREAMBLE_LEN:
        raise FormatError(f"file is {len(b)} bytes, shorter than the 12-byte preamble")
    major, minor = struct.unpack_from("<HH", b, 8)
    if major > VERSION_MAJOR:
        raise FormatError(
            f"recording format version {major}.{minor} is newer than this gatescope reads "
            f"({VERSION_MAJOR}.x); upgrade gatescope")


@dataclass
class Header:
    """What is fixed for a run: the model card, the probe set, the K probe samples."""

    card: Dict[str, Any]
    source: str
    probe_size: int
    sample_indices: List[int]
    sample_labels: List[int]
    sample_images: np.ndarray  # [K, input_dim] uint8
    model: Optional[str] = None  # the model file the run was saved to, if the writer knew it

    @property
    def arch(self) -> Dict[str, Any]:
        return self.card["arch"]

    @property
    def gated_layers(self) -> int:
        a = self.arch
        return a["depth"] - 1 if a["family"] in ("highway", "conv") else 0

    def to_json(self) -> Dict[str, Any]:
        return {"card": self.card, "source": self.source, "probe_size": int(self.probe_size),
                "sample_indices": [int(i) for i in self.sample_indices],
                "sample_labels": [int(i) for i in self.sample_labels],
                **({"model": self.model} if self.model else {})}


@dataclass
class Snapshot:
    """One moment of a run: Figures 2-4's quantities. Arrays are float32; empty = not recorded."""

    step: int
    epoch: float
    train_loss: float = float("nan")
    train_accuracy: float = float("nan")
    test_accuracy: float = float("nan")
    sample_predictions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    layers: List[Dict[str, Any]] = field(default_factory=list)
    gate_bias: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [L, W]
    mean_gate: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [L, W]
    class_mean_gate: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [C, L, W]
    sample_gates: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [K, L, W]
    sample_blocks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [K, depth, W]

    @property
    def class_deviation(self) -> np.ndarray:
        """Figure 3: per-class mean T minus the mean T, [C, L, W]."""
        return (self.class_mean_gate - self.mean_gate[None]).astype(np.float32)


def _nan(v):
    return float("nan") if v is None else float(v)


def _num(v: float):
    return None if not np.isfinite(v) else float(v)


# ---------------------------------------------------------------- encoding

def _quantise(a: np.ndarray, top: int, delta: bool):
    a = np.ascontiguousarray(a, dtype=np.float32)
    finite = a[np.isfinite(a)]
    lo, hi = (np.float32(finite.min()), np.float32(finite.max())) if finite.size else (np.float32(0), np.float32(0))
    scale = np.float32(top) / (hi - lo) if hi > lo else np.float32(0)
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.floor((a - lo) * scale + np.float32(0.5))  # round half away from zero (values >= 0)
    q = np.where(np.isfinite(q), np.clip(q, 0, top), 0).astype(np.uint8)
    if delta and q.ndim >= 1 and q.size:
        row = q.shape[-1]
        flat = q.reshape(-1)
        d = flat.copy()
        d[row:] = flat[row:] - flat[:-row]  # wraps modulo 256
        q = d
    return q.tobytes(), float(lo), float(hi)


def _push(metas, payload, name, a, enc, top=None, delta=False):
    a = np.asarray(a, dtype=np.float32)
    meta = {"name": name, "shape": [int(s) for s in a.shape], "enc": enc}
    if enc == "f32":
        payload.append(a.astype("<f4").tobytes())
    elif enc == "f16":
        h = a.astype("<f2").view(np.uint8).reshape(-1, 2)
        payload.append(h[:, 0].tobytes() + h[:, 1].tobytes())
    else:
        data, lo, hi = _quantise(a, top, delta)
        payload.append(data)
        meta.update(lo=lo, hi=hi, top=top)
        if delta:
            meta["delta"] = True
    metas.append(meta)


def _frame(obj: Dict[str, Any], payload: bytes) -> bytes:
    js = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    z = zlib.compressobj(6, zlib.DEFLATED, -15)
    comp = z.compress(payload) + z.flush()
    body = struct.pack("<I", len(js)) + js + comp
    return struct.pack("<II", len(body), zlib.crc32(body) & 0xFFFFFFFF) + body


def encode_header(h: Header) -> bytes:
    img = np.ascontiguousarray(h.sample_images, dtype=np.uint8)
    k = len(h.sample_labels)
    meta = {"name": "sample_images", "shape": [k, int(img.size // max(k, 1))], "enc": "bytes"}
    return _frame({"kind": "header", "header": h.to_json(), "arrays": [meta]}, img.tobytes())


def encode_snapshot(s: Snapshot) -> bytes:
    metas: list = []
    payload: list = []
    _push(metas, payload, "gate_bias", s.gate_bias, "f16")
    _push(metas, payload, "mean_gate", s.mean_gate, "f32")
    dev = s.class_deviation if np.asarray(s.class_mean_gate).size else np.zeros(0, np.float32)
    _push(metas, payload, "class_deviation", dev, "u8", 255)
    _push(metas, payload, "sample_gates", s.sample_gates, "u8", 127)
    _push(metas, payload, "sample_blocks", s.sample_blocks, "u8", 127, delta=True)
    layers = [{"layer": int(l["layer"]), "mean_gate": _num(l["mean_gate"]),
               "open_fraction": _num(l["open_fraction"]), "mean_change": _num(l["mean_change"])} for l in s.layers]
    obj = {"kind": "snapshot", "step": int(s.step), "epoch": float(s.epoch), "train_loss": _num(s.train_loss),
           "train_accuracy": _num(s.train_accuracy), "test_accuracy": _num(s.test_accuracy),
           "sample_predictions": [int(p) for p in np.asarray(s.sample_predictions).reshape(-1)],
           "layers": layers, "arrays": metas}
    return _frame(obj, b"".join(payload))


def encode_dropped(count: int) -> bytes:
    return _frame({"kind": "dropped", "count": int(count)}, b"")


# ---------------------------------------------------------------- decoding

_SIZES = {"f32": (4, 4), "f16": (2, 4), "u8": (1, 4), "bytes": (1, 1)}


def _claimed(metas) -> tuple:
    payload = decoded = 0
    for m in metas:
        if m.get("enc") not in _SIZES:
            raise FormatError(f"array {m.get('name')}: unknown encoding {m.get('enc')!r}")
        n = 1
        for d in m["shape"]:
            if not isinstance(d, int) or d < 0:
                raise FormatError(f"array {m['name']}: bad shape {m['shape']}")
            n *= d
        s, dsz = _SIZES[m["enc"]]
        payload += n * s
        decoded += n * dsz
    if decoded > MAX_FRAME_DECODED:
        raise FormatError(f"the frame's arrays would take {decoded} bytes, over the limit of {MAX_FRAME_DECODED}")
    return payload, decoded


def _decode_array(m, b: bytes):
    shape = tuple(m["shape"])
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    enc = m["enc"]
    if enc == "f32":
        return np.frombuffer(b, "<f4").astype(np.float32).reshape(shape)
    if enc == "f16":
        raw = np.frombuffer(b, np.uint8)
        pairs = np.empty((n, 2), np.uint8)
        pairs[:, 0], pairs[:, 1] = raw[:n], raw[n:]
        return pairs.reshape(-1).view("<f2").astype(np.float32).reshape(shape)
    if enc == "u8":
        lo, hi = np.float32(m.get("lo", 0.0)), np.float32(m.get("hi", 0.0))
        top = max(int(m.get("top", 255)), 1)
        q = np.frombuffer(b, np.uint8).copy()
        if m.get("delta") and q.size:
            row = max(shape[-1], 1)
            q = q.reshape(-1, row)
            q = np.cumsum(q, axis=0, dtype=np.uint64).astype(np.uint8).reshape(-1)  # modulo 256
        step = (hi - lo) / np.float32(top)
        v = lo + q.astype(np.float32) * step
        v[q == 0] = lo
        v[q == top] = hi
        return v.astype(np.float32).reshape(shape)
    return np.frombuffer(b, np.uint8).reshape(shape)


def decode_body(body: bytes, index: int, offset: int):
    """One frame body → ("header", Header) | ("snapshot", Snapshot) | ("dropped", n) | None."""
    def corrupt(reason):
        return FormatError(f"corrupt frame {index} at byte {offset}: {reason}")

    if len(body) < 4:
        raise corrupt("short body")
    (jl,) = struct.unpack_from("<I", body)
    if 4 + jl > len(body):
        raise corrupt("json length beyond the frame")
    try:
        obj = json.loads(body[4:4 + jl])
    except ValueError as e:
        raise corrupt(f"json: {e}") from None
    kind = obj.get("kind") if isinstance(obj, dict) else None
    if kind not in ("header", "snapshot", "dropped"):
        return None  # a kind from a newer minor version
    try:
        metas = obj.get("arrays", [])
        expected, _ = _claimed(metas)
        d = zlib.decompressobj(-15)
        payload = d.decompress(body[4 + jl:], expected + 1)
        if len(payload) != expected:
            raise FormatError(f"payload is {len(payload)}{'+' if len(payload) > expected else ''} bytes, the arrays need {expected}")
        arrays, at = {}, 0
        for m in metas:
            size = _SIZES[m["enc"]][0] * int(np.prod(m["shape"], dtype=np.int64))
            arrays[m["name"]] = _decode_array(m, payload[at:at + size])
            at += size
        if kind == "dropped":
            return "dropped", int(obj["count"])
        if kind == "header":
            h = obj["header"]
            header = Header(card=h["card"], source=h["source"], probe_size=int(h["probe_size"]),
                            sample_indices=list(h["sample_indices"]), sample_labels=list(h["sample_labels"]),
                            sample_images=arrays["sample_images"], model=h.get("model"))
            _check_header(header)
            return "header", header
        s = Snapshot(step=int(obj["step"]), epoch=float(obj["epoch"]), train_loss=_nan(obj.get("train_loss")),
                     train_accuracy=_nan(obj.get("train_accuracy")), test_accuracy=_nan(obj.get("test_accuracy")),
                     sample_predictions=np.asarray(obj["sample_predictions"], np.int64),
                     layers=[{"layer": l["layer"], "mean_gate": _nan(l.get("mean_gate")),
                              "open_fraction": _nan(l.get("open_fraction")),
                              "mean_change": _nan(l.get("mean_change"))} for l in obj["layers"]])
        for name in ("gate_bias", "mean_gate", "sample_gates", "sample_blocks"):
            if name in arrays:
                setattr(s, name, arrays[name])
        dev = arrays.get("class_deviation")
        if dev is not None and dev.size:
            if dev.shape[1:] != s.mean_gate.shape:
                raise FormatError("class means do not match the mean gate map")
            s.class_mean_gate = (dev + s.mean_gate[None]).astype(np.float32)
        return "snapshot", s
    except FormatError as e:
        raise corrupt(str(e)) from None
    except (KeyError, TypeError, ValueError, zlib.error) as e:
        raise corrupt(f"{type(e).__name__}: {e}") from None


def _check_header(h: Header) -> None:
    a = h.arch
    for key, limit in (("depth", 10_000), ("width", 65_536), ("input_dim", 1 << 24), ("classes", 100_000)):
        v = a.get(key)
        if not isinstance(v, int) or v < 1 or v > limit:
            raise FormatError(f"header: {key} {v!r} is outside 1..={limit}")
    k = len(h.sample_labels)
    if k > MAX_SAMPLES:
        raise FormatError(f"header: {k} probe samples are over the limit of {MAX_SAMPLES}")
    if len(h.sample_indices) != k:
        raise FormatError(f"header: {len(h.sample_indices)} sample indices for {k} samples")
    if len(h.card["dataset"]["class_names"]) != a["classes"]:
        raise FormatError(f"header: {len(h.card['dataset']['class_names'])} class names for {a['classes']} classes")


def check_snapshot(h: Header, s: Snapshot) -> None:
    """The shapes the header's architecture implies (an empty array: not recorded)."""
    a = h.arch
    L, W, D, K, C = h.gated_layers, a["width"], a["depth"], len(h.sample_labels), a["classes"]
    for name, shape in (("gate_bias", (L, W)), ("mean_gate", (L, W)), ("class_mean_gate", (C, L, W)),
                        ("sample_gates", (K, L, W)), ("sample_blocks", (K, D, W))):
        arr = getattr(s, name)
        if arr.size and tuple(arr.shape) != shape:
            raise FormatError(f"snapshot at step {s.step}: {name} has shape {tuple(arr.shape)}, "
                              f"the header's architecture implies {shape}")
    if s.sample_predictions.size and (s.sample_predictions >= C).any():
        raise FormatError(f"snapshot at step {s.step}: a prediction is out of range 0..{C}")


@dataclass
class Recording:
    header: Header
    snapshots: List[Snapshot]
    dropped: int = 0
    #: (offset, bytes) of an incomplete last frame (a writer killed mid-frame), else None.
    torn_tail: Optional[tuple] = None

    @property
    def card(self) -> Dict[str, Any]:
        return self.header.card


def read_bytes(b: bytes) -> Recording:
    """Decodes a whole recording; an incomplete last frame is reported as ``torn_tail``."""
    check_preamble(b)
    at, index, total = PREAMBLE_LEN, 0, 0
    header, snapshots, dropped = None, [], 0
    while len(b) - at >= 8:
        length, crc = struct.unpack_from("<II", b, at)
        if length > MAX_FRAME:
            raise FormatError(f"corrupt frame {index} at byte {at}: frame length {length} is over the limit of {MAX_FRAME} bytes")
        if len(b) - at - 8 < length:
            break
        body = b[at + 8:at + 8 + length]
        if zlib.crc32(body) & 0xFFFFFFFF != crc:
            raise FormatError(f"corrupt frame {index} at byte {at}: checksum mismatch")
        msg = decode_body(body, index, at)
        if msg is not None:
            kind, value = msg
            if kind == "header":
                if header is not None:
                    raise FormatError(f"corrupt frame {index} at byte {at}: a second header frame")
                header = value
            elif kind == "snapshot":
                if header is None:
                    raise FormatError("the recording has no header frame")
                try:
                    check_snapshot(header, value)
                except FormatError as e:
                    raise FormatError(f"corrupt frame {index} at byte {at}: {e}") from None
                total += sum(getattr(value, n).size * 4 for n in ("mean_gate", "class_mean_gate", "sample_gates", "sample_blocks"))
                if total > MAX_RECORDING_DECODED:
                    raise FormatError(f"the recording's arrays would take over {total} bytes, over the limit of {MAX_RECORDING_DECODED}")
                snapshots.append(value)
            else:
                dropped = value
        at += 8 + length
        index += 1
    if header is None:
        raise FormatError("the recording has no header frame")
    torn = (at, len(b) - at) if at < len(b) else None
    return Recording(header, snapshots, dropped, torn)


def read(path) -> Recording:
    """Reads a ``.gsrec`` file: ``rec.header`` (with ``rec.card``), ``rec.snapshots``, ``rec.torn_tail``."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return read_bytes(data)
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from None
