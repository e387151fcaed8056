"""Training: the run's options (:mod:`.config`), its data (:mod:`.datasets`), the diversity
schedule (:mod:`.diversity`), the loop (:mod:`.loop`) and what it leaves between epochs
(:mod:`.state`). Evaluation and explanations never import this package."""

from .config import HPARAMS, ConfigError, TrainConfig
from .loop import train
from .state import load_state

__all__ = ["ConfigError", "HPARAMS", "TrainConfig", "load_state", "train"]
