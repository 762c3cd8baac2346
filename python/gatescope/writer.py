"""Writing recordings from Python: to a file, to a viewer or collector over TCP, or both.

The training loop only ever puts a snapshot into a bounded queue; one background thread
encodes and sends. When the queue is full the oldest snapshot is dropped and counted (the
count travels as a ``dropped`` frame), so a slow or absent viewer never slows training.
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
from typing import Optional

from . import format as fmt

QUEUE_CAPACITY = 4
HEARTBEAT = 10.0


class _Pending:
    """A queued snapshot and its frame, encoded on first use (by the file or the socket)."""

    __slots__ = ("snapshot", "_frame")

    def __init__(self, snapshot: fmt.Snapshot):
        self.snapshot, self._frame = snapshot, None

    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = fmt.encode_snapshot(self.snapshot)
        return self._frame


class Writer:
    """``Writer(header, path="run.gsrec", connect="127.0.0.1:7817")``; ``write(snapshot)``; ``close()``.

    The file gets every snapshot (written by the background thread, each frame whole and
    flushed). The socket gets what it can take: on a full queue the oldest is dropped. The
    connection is retried every 0.25 s and re-made (preamble + header again) if it breaks.
    """

    def __init__(self, header: fmt.Header, path: Optional[str] = None, connect: Optional[str] = None,
                 capacity: int = QUEUE_CAPACITY):
        if path is None and connect is None:
            raise ValueError("Writer needs a path, a connect address, or both")
        self.header = header
        self._header_frame = fmt.encode_header(header)
        self._file = None
        if path is not None:
            d = os.path.dirname(os.fspath(path))
            if d:
                os.makedirs(d, exist_ok=True)
            self._file = open(path, "wb")
            self._file.write(fmt.preamble() + self._header_frame)
            self._file.flush()
        self._file_queue = collections.deque()
        self._net = collections.deque()
        self._capacity = max(int(capacity), 1)
        self._cv = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.sent = 0
        self.connections = 0
        self.written = 0
        self._addr = None
        if connect is not None:
            host, _, port = connect.rpartition(":")
            self._addr = (host or "127.0.0.1", int(port))
        self._thread = threading.Thread(target=self._run, name="gatescope-writer", daemon=True)
        self._thread.start()

    def write(self, snapshot: fmt.Snapshot) -> None:
        """Queues a snapshot. Never blocks on the network. A snapshot whose shapes disagree with
        the header's model card raises :class:`gatescope.FormatError` and is not written."""
        fmt.check_snapshot(self.header, snapshot)
        with self._cv:
            if self._closed:
                raise ValueError("Writer is closed")
            item = _Pending(snapshot)  # shared by both queues: encoded once
            if self._file is not None:
                self._file_queue.append(item)
            if self._addr is not None:
                if len(self._net) >= self._capacity:
                    self._net.popleft()
                    self.dropped += 1
                self._net.append(item)
            self._cv.notify()

    @property
    def connected(self) -> bool:
        return getattr(self, "_sock", None) is not None

    def close(self, grace: float = 2.0) -> dict:
        """Writes what the file still needs, gives the socket ``grace`` seconds, stops; a summary."""
        with self._cv:
            self._closed = True
            self._grace_until = time.monotonic() + grace
            self._cv.notify()
        self._thread.join()
        if self._file is not None:
            self._file.close()
        unsent = len(self._net)
        return {"written": self.written, "sent": self.sent, "dropped": self.dropped + unsent,
                "connections": self.connections}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------ the background thread

    def _run(self):
        self._sock = None
        last_write = time.monotonic()
        next_try = 0.0
        sent_dropped = -1
        while True:
            with self._cv:
                if not self._file_queue and not self._net and not self._closed:
                    self._cv.wait(0.2)
                to_file = list(self._file_queue)
                self._file_queue.clear()
                closed = self._closed
                net_item = self._net[0] if (self._net and self._sock is not None) else None
                dropped = self.dropped
            for s in to_file:
                self._file.write(s.frame())
                self._file.flush()
                self.written += 1
            if self._addr is not None:
                now = time.monotonic()
                if self._sock is None and now >= next_try and (self._net or not closed):
                    self._sock = self._connect()
                    next_try = now + 0.25
                    if self._sock is not None:
                        self.connections += 1
                        sent_dropped = -1
                        last_write = now
                        continue
                if net_item is not None:
                    frames = b""
                    if dropped and dropped != sent_dropped:
                        frames += fmt.encode_dropped(dropped)
                    frames += net_item.frame()
                    if self._send(frames):
                        sent_dropped = dropped
                        last_write = time.monotonic()
                        with self._cv:
                            if self._net and self._net[0] is net_item:
                                self._net.popleft()
                        self.sent += 1
                    continue
                if self._sock is not None and time.monotonic() - last_write >= HEARTBEAT:
                    self._send(fmt.encode_dropped(dropped))
                    last_write = time.monotonic()
            if closed:
                with self._cv:
                    pending = bool(self._file_queue) or (bool(self._net) and self._addr is not None
                                                         and time.monotonic() < self._grace_until)
                if not pending:
                    break
                if self._sock is None:
                    time.sleep(0.05)
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _connect(self):
        try:
            s = socket.create_connection(self._addr, timeout=0.5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(5.0)
            s.sendall(fmt.preamble() + self._header_frame)
            return s
        except OSError:
            return None

    def _send(self, frames: bytes) -> bool:
        try:
            self._sock.sendall(frames)
            return True
        except OSError:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
            return False
