"""Published figures that ``scimeta report`` places beside ours, as data.

Each :class:`Published` row is one number from the literature with its source and
the cell of our results it compares with (:attr:`Published.match`). A suite file
names the rows that apply to it::

    [report]
    published = ["li2017-maml-k5", "li2017-metasgd-k5"]

The values and citations are those of ``docs/protocols.md`` (where each is
discussed, with what differs between the published protocol and ours); nothing here
was re-checked against the papers' PDFs. Add a row here, not in prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UnknownNameError, unknown_name

#: Z. Li et al. 2017 (Meta-SGD), Table 1, as quoted in docs/protocols.md
_LI2017 = ("Z. Li, F. Zhou, F. Chen, H. Li, \"Meta-SGD: Learning to Learn Quickly for "
           "Few-Shot Learning\", arXiv:1707.09835 (2017), Table 1 (as commonly reported; "
           "not re-checked against the PDF)")
#: the LEADS repository README, "Results"
_LEADS = ("Y. Yin et al., \"LEADS: Learning Dynamical Systems that Generalize Across "
          "Environments\", NeurIPS 2021 (arXiv:2106.04546); test MSE from the LEADS "
          "README \"Results\" (github.com/yuan-yin/LEADS, commit 9104d7d, as quoted in "
          "its issue 14)")


@dataclass(frozen=True)
class Published:
    """One published figure.

    Attributes:
        key: the name a suite's ``[report] published`` list uses.
        protocol: the protocol it belongs to (a section of docs/protocols.md).
        method: the published method (``"MAML"``).
        setting: the setting in words (``"K = 5"``).
        metric: what the number is (our statistic is the same one).
        value: the published figure.
        spread: the published ``±`` (None when none is given).
        spread_kind: what the ``±`` is, as far as the source says.
        cite: the short citation a table shows.
        source: the full citation.
        match: the cell of our results it compares with: evaluation attributes
            (``family``, ``regime``, ``rates_tuned``), the test store's ``support``,
            and ``init``, ``optimizer``, ``budget``.
    """

    key: str
    protocol: str
    method: str
    setting: str
    metric: str
    value: float
    spread: float | None
    spread_kind: str
    cite: str
    source: str
    match: dict[str, Any] = field(default_factory=dict)


def _li(method: str, init: str, optimizer: str, k: int, value: float,
        spread: float) -> Published:
    return Published(
        key=f"li2017-{init}-k{k}", protocol="finn2017-sinusoid", method=method,
        setting=f"K = {k}, 1 step", value=value, spread=spread,
        metric="mean query MSE over test tasks after one gradient step",
        spread_kind="95% confidence interval as reported",
        cite="Li et al. 2017, Table 1", source=_LI2017,
        match={"family": "sinusoid", "regime": "test", "rates_tuned": 0, "support": k,
               "init": init, "optimizer": optimizer, "budget": 1})


def _leads(system: str, family: str, value: float, spread: float, setting: str) -> Published:
    return Published(
        key=f"leads2021-{system}", protocol="leads-new-environment", method="LEADS",
        setting=setting, value=value, spread=spread,
        metric="test MSE of the full rollout, training environments",
        spread_kind="± as in the README (it does not say over what)",
        cite="LEADS README (Yin et al. 2021)", source=_LEADS,
        match={"family": family, "forecast": True})


#: every published row, by key
PUBLISHED: dict[str, Published] = {p.key: p for p in (
    _li("MAML", "maml", "sgd", 5, 1.13, 0.18),
    _li("MAML", "maml", "sgd", 10, 0.77, 0.11),
    _li("MAML", "maml", "sgd", 20, 0.48, 0.08),
    _li("Meta-SGD", "metasgd", "learned", 5, 0.90, 0.16),
    _li("Meta-SGD", "metasgd", "learned", 10, 0.53, 0.09),
    _li("Meta-SGD", "metasgd", "learned", 20, 0.31, 0.05),
    _leads("lotka-volterra", "lotka_volterra", 1.16e-3, 0.99e-3,
           "Lotka–Volterra, 10 environments × 1 trajectory"),
    _leads("gray-scott", "gray_scott_leads", 2.08e-3, 2.88e-3,
           "Gray–Scott, 3 environments × 1 trajectory"),
    _leads("navier-stokes", "navier_stokes_forced", 5.95e-3, 3.65e-3,
           "Navier–Stokes, 4 environments × 8 trajectories"),
)}


def get(key: str) -> Published:
    """The published row ``key``; an :class:`UnknownNameError` listing the keys."""
    try:
        return PUBLISHED[key]
    except KeyError:
        raise unknown_name("published row", key, sorted(PUBLISHED),
                           "(scimeta.report.published.PUBLISHED)") from None


def rows(keys: list[str] | tuple[str, ...]) -> list[Published]:
    """The rows of ``keys``, in that order (each checked by :func:`get`)."""
    return [get(str(k)) for k in keys]


__all__ = ["PUBLISHED", "Published", "UnknownNameError", "get", "rows"]
