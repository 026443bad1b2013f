"""Batched L-BFGS for test-time adaptation: one support loss and gradient per step.

Every task keeps its own curvature pairs, step length and line search, so B tasks
(or tasks × candidate rates) adapt at once on ``[B, P]`` tensors. A step costs
exactly one evaluation of the support loss and its gradient — the same as an SGD or
Adam step — so step budgets compare optimizers at equal cost:

1. at the accepted point ``x`` (loss ``f``, gradient ``g``) the two-loop recursion
   with the last :data:`HISTORY` pairs ``(s, y)`` gives the direction ``d = −H g``
   (``H₀ = γ I`` with ``γ = sᵀy / yᵀy`` of the newest pair; with no pair yet,
   ``γ = min(1, 1/‖g‖₁)``, torch.optim.LBFGS's first step);
2. the candidate ``x + α d`` is evaluated at the next step. It is accepted when its
   loss is finite and satisfies Armijo's condition ``f⁺ ≤ f + c α gᵀd``
   (``c`` = :data:`ARMIJO`); then the pair ``(x⁺ − x, g⁺ − g)`` joins the history
   when ``sᵀy > 0`` (curvature), and ``α`` returns to the task's ``rate``;
3. otherwise the task stays at ``x`` and ``α`` shrinks to the minimiser of the
   quadratic through ``f``, ``gᵀd`` and ``f⁺``, kept within ``[α/10, α/2]``.

The support loss therefore never grows; ``rate`` (the trial step length, 1 for the
textbook method) is chosen on validation like the other optimizers' rates.
"""

from __future__ import annotations

import torch

from ..typing import Params

#: curvature pairs kept per task
HISTORY = 20
#: sufficient-decrease constant of the Armijo condition
ARMIJO = 1e-4


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vecdot(a, b)


def two_loop(g: torch.Tensor, s: list[torch.Tensor], y: list[torch.Tensor],
             rho: list[torch.Tensor], gamma: torch.Tensor) -> torch.Tensor:
    """``H g`` for the L-BFGS inverse-Hessian estimate of each row (Nocedal & Wright,
    Algorithm 7.4): pairs ``s``, ``y`` oldest first, each ``[B, P]``; ``rho`` ``[B]``
    (``1 / sᵀy``, 0 for a task whose pair is absent, which makes it a no-op);
    ``gamma`` ``[B]`` the scale of ``H₀``. ``g`` ``[B, P]``."""
    q = g.clone()
    alphas = []
    for si, yi, ri in zip(reversed(s), reversed(y), reversed(rho), strict=True):
        a = ri * _dot(si, q)
        q.addcmul_(a[:, None], yi, value=-1.0)
        alphas.append(a)
    r = gamma[:, None] * q
    for si, yi, ri, a in zip(s, y, rho, reversed(alphas), strict=True):
        r.addcmul_((a - ri * _dot(yi, r))[:, None], si)
    return r


class BatchedLBFGS:
    """L-BFGS state of B tasks; parameters travel as dicts of ``[B, *shape]`` tensors.

    ``rate`` ``[B]``: each task's trial step length (> 0).
    """

    def __init__(self, fast: Params, rate: torch.Tensor, history: int = HISTORY) -> None:
        self.names = tuple(fast)
        self.shapes = {n: v.shape[1:] for n, v in fast.items()}
        self.rate = rate
        self.alpha = rate.clone()
        self.history = history
        # each task's last ``history`` pairs in a ring of its own (slot count % history
        # is the next to write), so no task's window depends on what its batch
        # neighbours accepted
        self._ring: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._count = torch.zeros(rate.shape[0], dtype=torch.long, device=rate.device)
        self._gamma: torch.Tensor | None = None  # sᵀy / yᵀy of each task's newest pair
        self._x: torch.Tensor | None = None    # accepted point [B, P]
        self._g: torch.Tensor | None = None    # its gradient
        self._f: torch.Tensor | None = None    # its loss [B]
        self._slope: torch.Tensor | None = None  # gᵀd of the step tried [B]

    def _flat(self, p: Params) -> torch.Tensor:
        b = next(iter(p.values())).shape[0]
        return torch.cat([p[n].reshape(b, -1) for n in self.names], dim=1)

    def _unflat(self, x: torch.Tensor) -> Params:
        out, i = {}, 0
        for n in self.names:
            k = self.shapes[n].numel()
            out[n] = x[:, i:i + k].reshape(x.shape[0], *self.shapes[n])
            i += k
        return out

    def accept(self, fast: Params, grads: Params, loss: torch.Tensor
               ) -> tuple[Params, Params, torch.Tensor]:
        """Judge the candidate ``fast`` (loss ``[B]``, gradients) against the accepted point.

        Returns the accepted point of every task after this evaluation, its gradient
        and its loss (the candidate where it was accepted, the old point elsewhere).
        """
        x, g = self._flat(fast), self._flat(grads)
        if self._x is None:  # the first evaluation: the init itself
            self._x, self._g, self._f = x, g, loss
            self._gamma = torch.zeros_like(loss)  # read only where a pair was kept
            return fast, grads, loss
        assert self._g is not None and self._f is not None and self._slope is not None
        ok = torch.isfinite(loss) & torch.isfinite(g).all(-1) & (
            loss <= self._f + ARMIJO * self.alpha * self._slope)
        s, yv = x - self._x, g - self._g
        sy, yy = _dot(s, yv), _dot(yv, yv)
        keep = ok & (sy > 1e-10 * yy.clamp_min(1e-300))
        if bool(keep.any()):
            self._push(keep, s, yv, sy, yy)
        # rejected: the quadratic model's minimiser along d, within [α/10, α/2]
        a, f0, sl = self.alpha, self._f, self._slope
        curv = torch.where(torch.isfinite(loss), loss - f0 - sl * a, torch.inf)
        shrunk = torch.where(curv > 0, -sl * a * a / (2 * curv), 0.5 * a)
        shrunk = torch.minimum(torch.maximum(shrunk, 0.1 * a), 0.5 * a)
        self.alpha = torch.where(ok, self.rate, shrunk)
        self._x = torch.where(ok[:, None], x, self._x)
        self._g = torch.where(ok[:, None], g, self._g)
        self._f = torch.where(ok, loss, self._f)
        return self._unflat(self._x), self._unflat(self._g), self._f

    def _push(self, keep: torch.Tensor, s: torch.Tensor, y: torch.Tensor,
              sy: torch.Tensor, yy: torch.Tensor) -> None:
        """Write the pair of the tasks in ``keep`` over their oldest slot."""
        if self._ring is None:
            m = self.history
            self._ring = (s.new_zeros(m, *s.shape), s.new_zeros(m, *s.shape),
                          sy.new_zeros(m, *sy.shape))
        ring_s, ring_y, ring_rho = self._ring
        idx = keep.nonzero().squeeze(1)
        slot = self._count[idx] % self.history
        ring_s[slot, idx] = s[idx]
        ring_y[slot, idx] = y[idx]
        ring_rho[slot, idx] = 1.0 / sy[idx]
        self._count[idx] += 1
        assert self._gamma is not None
        self._gamma[idx] = sy[idx] / yy[idx]

    def _pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Each task's pairs oldest first, gathered from its ring (absent ones: rho 0)."""
        if self._ring is None:
            return [], [], []
        ring_s, ring_y, ring_rho = self._ring
        b = self._count.shape[0]
        flat_s, flat_y = ring_s.view(-1, ring_s.shape[-1]), ring_y.view(-1, ring_y.shape[-1])
        depth = int(self._count.max().clamp(max=self.history))
        tasks = torch.arange(b, device=self._count.device)
        s, y, rho = [], [], []
        for j in range(depth - 1, -1, -1):  # j = 0 is each task's newest pair
            rows = ((self._count - 1 - j) % self.history) * b + tasks
            s.append(flat_s.index_select(0, rows))  # faster than advanced indexing
            y.append(flat_y.index_select(0, rows))
            rho.append(torch.where(self._count > j, ring_rho.view(-1)[rows], 0.0))
        return s, y, rho

    def propose(self) -> Params:
        """The next candidate ``x + α d`` of every task (call after :meth:`accept`)."""
        assert self._x is not None and self._g is not None and self._gamma is not None
        g = self._g
        first = self._first_scale(g)
        # H₀ = γ I: γ from each task's newest pair, else the first-step scale
        gamma = torch.where(self._count > 0, self._gamma, first)
        d = -two_loop(g, *self._pairs(), gamma)
        slope = _dot(g, d)
        steep = -first[:, None] * g
        bad = ~(slope < 0) | ~torch.isfinite(slope)  # not a descent direction: fall back
        d = torch.where(bad[:, None], steep, d)
        self._slope = torch.where(bad, _dot(g, steep), slope)
        return self._unflat(self._x + self.alpha[:, None] * d)

    @staticmethod
    def _first_scale(g: torch.Tensor) -> torch.Tensor:
        return torch.clamp(1.0 / g.abs().sum(-1).clamp_min(1e-300), max=1.0)
