"""What determines a store's content: :class:`GenerationConfig` and its checks.

``generate`` (:mod:`.generate`) writes the config's JSON (:meth:`GenerationConfig.to_json`)
as the store's ``generator_config`` attribute and resumes a store only with an equal one.
Settings added after the first stores were written (``dtype``, ``compression``,
``solver_preset``) are left out of that JSON at their defaults, so those stores still
resume and compare equal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import registry
from ..errors import ConfigError
from ..family import ProblemFamily
from ..params import Regime
from . import _partial as _P
from . import schema
from . import solver_preset as _preset
from .sampling import check_sizes

#: filters ``u`` may be stored with -> (h5py ``compression``, ``compression_opts``, shuffle)
COMPRESSIONS: dict[str, tuple[str | None, int | None, bool]] = {
    "gzip": ("gzip", 4, True),   # deflate level 4 + byte shuffle (the default)
    "lzf": ("lzf", None, True),  # h5py's built-in LZF + byte shuffle: faster, larger
    "none": (None, None, False),  # chunked, uncompressed: fastest reads, largest
}

def filter_name(codec: str | None) -> str:
    """The ``compression`` name (``gzip``/``lzf``/``none``) of h5py's ``Dataset.compression``
    (other filters by their h5py name)."""
    return "none" if codec is None else str(codec)


#: settings left out of ``generator_config`` at these (default) values
_QUIET_DEFAULTS = {"dtype": "float32", "compression": "gzip",
                   "solver_preset": _preset.DEFAULT, "exclude": ()}


@dataclass(frozen=True)
class GenerationConfig:
    """Everything that determines a store's content (workers do not)."""

    family: str
    regime: str
    tasks: int
    seed: int = 0
    support: int = 10
    query: int = 100
    sampling: str = "random"
    #: parameter bound overrides ``(name, low, high)`` applied to a box regime
    bounds: tuple[tuple[str, float, float], ...] = field(default_factory=tuple)
    #: dtype of the stored fields ``u``: float32 (half the size) or float64 (no rounding
    #: beyond the solver's; comparisons against float32 data bottom out near 1e-7)
    dtype: str = "float32"
    #: filter of the stored fields ``u``: "gzip" (level 4 + shuffle, smallest), "lzf"
    #: (+ shuffle) or "none"; the values read back are the same
    compression: str = "gzip"
    #: "accurate": the family's own solver; "published": ``solve_ivp`` RK45 at scipy's
    #: default tolerances (rtol 1e-3, atol 1e-6), as the LEADS/CoDA generators (ODEs only)
    solver_preset: str = _preset.DEFAULT
    #: boxes cut out of the regime beside its own holes, each ``((name, low, high),
    #: ...)`` over some parameters (closed): e.g. a band of the training range held
    #: out as a validation regime disjoint from training
    exclude: tuple[tuple[tuple[str, float, float], ...], ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        """The config as stored in ``generator_config``. ``dtype``, ``compression``,
        ``solver_preset`` and ``exclude`` are left out at their defaults, so stores
        written before they existed resume and compare equal; a non-default preset adds
        the effective solver (``method``, ``rtol``, ``atol``)."""
        d = asdict(self)
        for key, default in _QUIET_DEFAULTS.items():
            if d[key] == default:
                del d[key]
        if self.solver_preset != _preset.DEFAULT and self.solver_preset in _preset.PRESETS:
            d["solver"] = _preset.effective_tolerances(self.solver_preset)
        return json.dumps(d, sort_keys=True)

    def resolve(self) -> tuple[ProblemFamily, Regime, np.ndarray]:
        """Validate everything and return (family, regime, output times)."""
        for name in ("tasks", "seed", "support", "query"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
        if self.tasks < 1:
            raise ConfigError(f"tasks must be >= 1, got {self.tasks}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.dtype not in schema.FIELD_DTYPES:
            raise ConfigError(f"dtype={self.dtype!r} is not allowed; use one of "
                              f"{', '.join(schema.FIELD_DTYPES)}")
        if self.compression not in COMPRESSIONS:
            raise ConfigError(f"compression={self.compression!r} is not allowed; use one of "
                              f"{', '.join(COMPRESSIONS)}")
        if self.solver_preset not in _preset.PRESETS:
            raise ConfigError(f"solver_preset={self.solver_preset!r} is not allowed; use one "
                              f"of {', '.join(_preset.PRESETS)}")
        names = [b[0] for b in self.bounds]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"bounds: {', '.join(map(repr, twice))} given more than once; "
                              "give each parameter one range")
        family = registry.get(self.family)
        _preset.check(family, self.solver_preset)
        regime = family.regime(self.regime)
        for hole in self.exclude:
            names = [b[0] for b in hole]
            if not hole or len(set(names)) != len(names):
                raise ConfigError(f"exclude: box {hole!r} is not allowed; give each of one "
                                  "or more parameters one range (name, low, high)")
        if self.bounds or self.exclude:
            regime = family.override(regime, {n: (lo, hi) for n, lo, hi in self.bounds},
                                     [{n: (lo, hi) for n, lo, hi in h} for h in self.exclude])
        time = family.time_grid(regime).values()
        grid = (len(time), *(len(v) for v in family.space.values()))
        check_sizes(self.sampling, grid, self.support, self.query)
        return family, regime, time


def parse_bounds(items: Sequence[str]) -> tuple[tuple[str, float, float], ...]:
    """Bound overrides from text: ``["omega0=0.5:1.5", "F=0"]`` -> ``(("omega0", 0.5, 1.5),
    ("F", 0.0, 0.0))``, the form of :attr:`GenerationConfig.bounds` (``NAME=V`` fixes it)."""
    out = []
    for item in items:
        name, eq, rng = item.partition("=")
        try:
            if not eq or not name:
                raise ValueError
            lo, _, hi = rng.partition(":")
            low = float(lo)
            out.append((name, low, float(hi) if hi else low))
        except ValueError:
            raise ConfigError(f"bounds item {item!r}: expected NAME=LOW:HIGH or NAME=VALUE"
                              ) from None
    return tuple(out)


def check_same_config(path: Path, config: GenerationConfig) -> None:
    """Refuse to resume ``path`` unless it was generated with ``config``; the error
    names each setting that differs (a setting absent from the stored JSON is at its
    default), e.g. ``it was generated with compression='gzip', not compression='lzf'``."""
    want = config.to_json()
    with _P.open_store(path, "r", "resume from") as f:
        stored = f.attrs.get("generator_config")
    if isinstance(stored, bytes):
        stored = stored.decode()
    if stored == want:
        return
    try:
        old = {**_QUIET_DEFAULTS, **json.loads(stored)}
        new = {**_QUIET_DEFAULTS, **json.loads(want)}
        keys = [k for k in sorted(set(old) | set(new))
                if k != "solver" and old.get(k) != new.get(k)]
    except (TypeError, ValueError, AttributeError):
        keys = []
    if keys:
        what = (", ".join(f"{k}={old.get(k)!r}" for k in keys) + ", not "
                + ", ".join(f"{k}={new.get(k)!r}" for k in keys))
    else:
        what = f"{stored}, not {want}"
    raise ConfigError(f"cannot resume {str(path)!r}: it was generated with {what}; resume "
                      "with the store's settings or pass overwrite=True to start again")
