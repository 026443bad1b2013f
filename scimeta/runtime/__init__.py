"""Runtime conventions: configs, seeding, checkpoints, signals."""

from .checkpoint import load_checkpoint as load_checkpoint
from .checkpoint import save_checkpoint as save_checkpoint
from .config import dump_toml as dump_toml
from .config import from_dict as from_dict
from .config import load_toml as load_toml
from .config import to_dict as to_dict
from .seeding import rng_state as rng_state
from .seeding import seed_everything as seed_everything
from .seeding import set_rng_state as set_rng_state
from .signals import StopFlag as StopFlag
