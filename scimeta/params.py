"""Parameter spaces of task families: specs with units, regimes and time grids.

A *regime* is a named region of parameter space from which tasks are drawn:
either a box (optionally with holes, so that ``train`` and ``test-interpolate``
are disjoint) or a finite set of environments (the LEADS/CoDA grids).

Membership is exact and never counts a value twice: a box is half-open,
``low <= v < high`` per parameter (``v == low`` for a fixed one, ``low == high``),
except interpolation regimes, which are closed; holes cut out of a box are closed.
So ``train`` = ``[0.5, 2.5)`` minus ``[1.25, 1.75]``, ``test-interpolate`` =
``[1.25, 1.75]`` and ``test-extrapolate`` = ``[2.5, 3.5)`` share no value although
they touch. :func:`overlap` decides exactly whether two regimes share a value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, unknown_name

Box = Mapping[str, tuple[float, float]]

DISTRIBUTIONS = ("uniform", "log-uniform")


@dataclass(frozen=True)
class ParamSpec:
    """One physical parameter of a family.

    ``domain`` is the physically meaningful interval (open ends allowed with
    ``±inf``); every regime and every user override must lie inside it.
    """

    name: str
    unit: str
    domain: tuple[float, float]
    description: str = ""
    distribution: str = "uniform"

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ConfigError(
                f"ParamSpec {self.name!r}: distribution={self.distribution!r}; "
                f"allowed: {', '.join(DISTRIBUTIONS)}"
            )

    def check_interval(self, low: float, high: float, what: str = "bounds") -> None:
        """Raise :class:`ConfigError` unless ``low <= high`` lies inside the domain."""
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ConfigError(f"{what} for {self.name!r} must be finite, got ({low}, {high})")
        if low > high:
            raise ConfigError(
                f"{what} for {self.name!r} are inverted: low={low} > high={high}"
            )
        lo, hi = self.domain
        if low < lo or high > hi:
            raise ConfigError(
                f"{what} for {self.name!r} = [{low}, {high}] leave the physical domain "
                f"[{lo}, {hi}] ({self.unit or 'dimensionless'})"
            )
        if self.distribution == "log-uniform" and low <= 0:
            raise ConfigError(
                f"{what} for {self.name!r} = [{low}, {high}]: a log-uniform parameter "
                "needs low > 0"
            )

    def draw(self, rng: np.random.Generator, low: float, high: float) -> float:
        """One value from this parameter's distribution on ``[low, high]``."""
        if low == high:
            return float(low)
        if self.distribution == "log-uniform":
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return float(rng.uniform(low, high))


@dataclass(frozen=True)
class TimeGrid:
    """``n`` equispaced output times on ``[t0, t1]`` (units of the family's time)."""

    t0: float
    t1: float
    n: int

    def __post_init__(self) -> None:
        if not (self.t1 > self.t0 and self.n >= 2):
            raise ConfigError(f"TimeGrid needs t1 > t0 and n >= 2, got {self}")

    @property
    def dt(self) -> float:
        return (self.t1 - self.t0) / (self.n - 1)

    def values(self) -> np.ndarray:
        """The output times, shape ``[n]``, float64."""
        return np.linspace(self.t0, self.t1, self.n)


@dataclass(frozen=True)
class Regime:
    """A named region of parameter space.

    Either ``box`` (bounds per parameter; a parameter with ``low == high`` is fixed)
    with optional ``exclude`` boxes cut out of it, or ``points``: a finite set of
    environments, one row per environment, drawn round-robin by task index.
    ``time`` overrides the family's default output grid (e.g. CoDA's T=10, Δt=0.5);
    ``initial`` names a family-specific initial-condition rule for this regime
    (e.g. Burgers' classic ``"minus-sine"``); ``None`` means the family default.
    ``closed`` says whether the box holds its upper bounds: ``None`` (default) closes
    interpolation regimes (names ending in ``test-interpolate``: the holes cut out of
    ``train``, whose whole boundary belongs to them) and leaves every other box
    half-open ``[low, high)``; excluded boxes are always closed.
    """

    name: str
    box: Box | None = None
    exclude: tuple[Box, ...] = ()
    points: tuple[tuple[float, ...], ...] | None = None
    description: str = ""
    time: TimeGrid | None = None
    initial: str | None = None
    closed: bool | None = None

    def __post_init__(self) -> None:
        if (self.box is None) == (self.points is None):
            raise ConfigError(f"Regime {self.name!r} needs exactly one of box= or points=")

    @property
    def box_bounds(self) -> Mapping[str, tuple[float, float]]:
        """``box``, for a box regime (a ConfigError for a set of environments)."""
        if self.box is None:
            raise ConfigError(f"regime {self.name!r} is a set of environments, not a box")
        return self.box

    @property
    def is_closed(self) -> bool:
        """Whether the box includes its upper bounds (see ``closed``)."""
        return self.name.endswith("test-interpolate") if self.closed is None else self.closed

    def bounds(self, specs: Sequence[ParamSpec]) -> np.ndarray:
        """Per-parameter ``[low, high]`` enclosing the regime, shape ``[P, 2]``."""
        if self.points is not None:
            pts = np.asarray(self.points, dtype=np.float64)
            return np.stack([pts.min(0), pts.max(0)], axis=1)
        return np.array([self.box_bounds[s.name] for s in specs], dtype=np.float64)

    def check(self, specs: Sequence[ParamSpec]) -> None:
        """Validate the regime against the family's parameter specs."""
        names = [s.name for s in specs]
        if self.points is not None:
            for row in self.points:
                if len(row) != len(specs):
                    raise ConfigError(
                        f"regime {self.name!r}: environment {row} has {len(row)} values, "
                        f"family has {len(specs)} parameters {names}"
                    )
            for spec, (lo, hi) in zip(specs, self.bounds(specs), strict=True):
                spec.check_interval(lo, hi, f"regime {self.name!r} environments")
            return
        for boxes, what in ((self.box_bounds,), "bounds"), (self.exclude, "excluded box"):
            for box in boxes:
                for key in box:
                    if key not in names:
                        raise unknown_name("parameter", key, names, f"in regime {self.name!r}")
                if boxes is self.exclude:
                    continue
                for spec in specs:
                    if spec.name not in box:
                        raise ConfigError(f"regime {self.name!r} gives no bounds for {spec.name!r}")
                    spec.check_interval(*box[spec.name], f"regime {self.name!r} {what}")

    def contains(self, specs: Sequence[ParamSpec], values: np.ndarray) -> bool:
        """Whether the parameter vector ``values`` (shape ``[P]``) lies in the regime."""
        return bool(self.members(specs, np.asarray(values, dtype=np.float64)[None])[0])

    def members(self, specs: Sequence[ParamSpec], values: np.ndarray) -> np.ndarray:
        """Which rows of ``values`` ``[M, P]`` lie in the regime: ``[M]`` bool, exact
        (environments match to 1e-12 relative)."""
        values = np.asarray(values, dtype=np.float64)
        if self.points is not None:
            pts = np.asarray(self.points, dtype=np.float64)
            same = np.isclose(pts[None], values[:, None], rtol=1e-12, atol=0)
            return np.any(np.all(same, axis=2), axis=1)
        inside = _in_box(specs, self.box_bounds, values, closed=self.is_closed)
        for hole in self.exclude:
            inside &= ~_in_box(specs, hole, values, closed=True)
        return inside

    def sample(
        self, specs: Sequence[ParamSpec], rng: np.random.Generator, index: int = 0
    ) -> np.ndarray:
        """One parameter vector, shape ``[P]`` float64 (``index`` picks the environment)."""
        if self.points is not None:
            return np.asarray(self.points[index % len(self.points)], dtype=np.float64)
        for _ in range(10_000):
            values = np.array([s.draw(rng, *self.box_bounds[s.name]) for s in specs])
            if self.contains(specs, values):  # not in a hole, not on an open upper bound
                return values
        raise ConfigError(f"regime {self.name!r}: excluded boxes cover the whole regime")


def _in_box(specs: Sequence[ParamSpec], box: Box, values: np.ndarray, closed: bool
            ) -> np.ndarray:
    """Rows of ``values`` ``[M, P]`` inside ``box`` (its parameters only): ``[M]`` bool."""
    inside = np.ones(len(values), dtype=bool)
    for i, spec in enumerate(specs):
        if spec.name not in box:
            continue
        lo, hi = box[spec.name]
        v = values[:, i]
        if lo == hi:
            inside &= v == lo
        else:
            inside &= (v >= lo) & ((v <= hi) if closed else (v < hi))
    return inside


def overlap(specs: Sequence[ParamSpec], a: Regime, b: Regime) -> np.ndarray | None:
    """A parameter vector ``[P]`` lying in both regimes, or ``None`` if they are disjoint.

    Exact: along each parameter, membership changes only at the bounds of the boxes and
    holes, so it suffices to test every bound inside the common range and one value
    between each two consecutive bounds, in all combinations.
    """
    if a.points is not None or b.points is not None:
        pts_regime, other = (a, b) if a.points is not None else (b, a)
        pts = np.asarray(pts_regime.points, dtype=np.float64)
        hit = other.members(specs, pts)
        return pts[np.argmax(hit)] if hit.any() else None
    axes = []
    for s in specs:
        lo = max(a.box_bounds[s.name][0], b.box_bounds[s.name][0])
        hi = min(a.box_bounds[s.name][1], b.box_bounds[s.name][1])
        if lo > hi:
            return None
        cuts = {lo, hi} | {v for hole in (*a.exclude, *b.exclude) if s.name in hole
                           for v in hole[s.name] if lo < v < hi}
        cut = np.array(sorted(cuts))
        axes.append(np.concatenate([cut, (cut[:-1] + cut[1:]) / 2]))
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(specs))
    hit = a.members(specs, grid) & b.members(specs, grid)
    return grid[np.argmax(hit)] if hit.any() else None


def split_groups(regimes: Mapping[str, Regime]) -> list[tuple[str, ...]]:
    """The regimes that must be pairwise disjoint: for each ``<prefix>train``, it and
    the ``<prefix>test-interpolate`` / ``<prefix>test-extrapolate`` that exist."""
    groups = []
    for name in sorted(regimes):
        if name.endswith("train"):
            prefix = name[: -len("train")]
            group = tuple(prefix + r for r in ("train", "test-interpolate", "test-extrapolate")
                          if prefix + r in regimes)
            if len(group) > 1:
                groups.append(group)
    return groups


def split_regimes(
    train: Box, hole: Box, extrapolate: Box, *, common: Box | None = None,
    prefix: str = "", note: str = "",
) -> dict[str, Regime]:
    """The standard disjoint trio ``train`` / ``test-interpolate`` / ``test-extrapolate``.

    ``train`` is the half-open box ``train`` with the closed ``hole`` cut out,
    ``test-interpolate`` is the closed ``hole`` and ``test-extrapolate`` another
    half-open box, which may touch ``train`` but not overlap it; ``common`` gives the
    bounds of the parameters that do not separate the regimes. ``prefix`` names
    variants (e.g. ``"unforced-"``); ``note`` is appended to each description.
    """
    common = dict(common or {})

    def text(box: Box, closed: bool) -> str:
        return ", ".join(f"{k} = {lo:g}" if lo == hi else
                         f"{k} in [{lo:g}, {hi:g}{']' if closed else ')'}"
                         for k, (lo, hi) in box.items())

    tail = f"; {note}" if note else ""
    return {
        f"{prefix}train": Regime(f"{prefix}train", box={**common, **train}, exclude=(hole,),
                                 description=f"{text(train, False)} minus {text(hole, True)}"
                                             f"{tail}", closed=False),
        f"{prefix}test-interpolate": Regime(f"{prefix}test-interpolate",
                                            box={**common, **train, **hole}, closed=True,
                                            description=f"{text(hole, True)}{tail}"),
        f"{prefix}test-extrapolate": Regime(f"{prefix}test-extrapolate",
                                            box={**common, **train, **extrapolate},
                                            description=f"{text(extrapolate, False)}{tail}",
                                            closed=False),
    }
