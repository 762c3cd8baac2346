"""gatescope for Python: record, stream and read the gate activity of highway networks.

    import gatescope
    rec = gatescope.read("recordings/default.gsrec")      # header + snapshots as numpy
    w = gatescope.Writer(header, path="run.gsrec", connect="127.0.0.1:7817")
    w.write(snapshot); w.close()

PyTorch models: ``gatescope.torch`` (probes, adapters, DDP, the reference modules).
"""

from .format import FormatError, Header, Recording, Snapshot, read, read_bytes
from .writer import Writer

__version__ = "0.1.0"
__all__ = ["FormatError", "Header", "Recording", "Snapshot", "Writer", "read", "read_bytes", "__version__"]
