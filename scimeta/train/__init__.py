"""Training runs: configs, the meta-training loop, evaluation, adaptation, quick-start."""

from ..errors import TrainingDiverged as TrainingDiverged
from .config import TrainConfig as TrainConfig
from .config import load_train_config as load_train_config
from .loop import train as train
from .run_dir import RunDir as RunDir
