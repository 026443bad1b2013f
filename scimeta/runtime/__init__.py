"""Runtime conventions: configs, seeding, checkpoints, signals, devices, safe names.

The names below are loaded on first use, so that light modules (``names``,
``config``) can be imported without torch (``scimeta validate``/``info`` never load it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .checkpoint import load_checkpoint as load_checkpoint
    from .checkpoint import save_checkpoint as save_checkpoint
    from .config import dump_toml as dump_toml
    from .config import from_dict as from_dict
    from .config import load_toml as load_toml
    from .config import to_dict as to_dict
    from .names import safe_name as safe_name
    from .seeding import rng_state as rng_state
    from .seeding import seed_everything as seed_everything
    from .seeding import set_rng_state as set_rng_state
    from .signals import StopFlag as StopFlag

#: public name -> module relative to this package
_LAZY = {name: (module, name) for name, module in {
    "load_checkpoint": ".checkpoint", "save_checkpoint": ".checkpoint",
    "dump_toml": ".config", "from_dict": ".config", "load_toml": ".config",
    "to_dict": ".config", "safe_name": ".names", "rng_state": ".seeding",
    "seed_everything": ".seeding", "set_rng_state": ".seeding", "StopFlag": ".signals",
}.items()}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _LAZY)
