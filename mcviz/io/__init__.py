"""Files: the checkpoint format (:mod:`.checkpoint`), its typed metadata (:mod:`.meta`), atomic
writes and the side files beside a checkpoint (:mod:`.files`)."""

from .checkpoint import FORMAT, CheckpointError, as_meta, load_checkpoint, model_config, read_metadata, save_checkpoint
from .files import ATLAS, PARTS, PARTS_PLOT, RANKING, atomic_write_bytes, file_sha256, load_side_file, side_path
from .meta import CheckpointMeta, Metrics

__all__ = [
    "ATLAS",
    "CheckpointError",
    "CheckpointMeta",
    "FORMAT",
    "Metrics",
    "PARTS",
    "PARTS_PLOT",
    "RANKING",
    "as_meta",
    "atomic_write_bytes",
    "file_sha256",
    "load_checkpoint",
    "load_side_file",
    "model_config",
    "read_metadata",
    "save_checkpoint",
    "side_path",
]
