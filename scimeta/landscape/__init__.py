"""The meta-landscape and meta-overfitting: curvature of the meta-objective through
the inner loop, stable inner rates, and diagnostics that tell learning to adapt
from memorising.

Curvature of ``J(θ) = mean_i L_query(adapt_i(θ))``::

    H = MetaHessian(learner, params, batch)         # products H v, double backward
    top = eigenpairs(H, k=10, which="top")          # Lanczos, with residual norms
    tr = hutchinson(H, probes=20)                   # tr H ± standard error
    dens = slq(H, probes=5, steps=30)               # spectral density
    layers, shares = layer_shares(H, top.vectors)   # where each eigenvector lives
    rates = stable_inner_rates(learner, params, batch)   # 2/λ_max per task

Meta-overfitting: :func:`support_swap`, :func:`gradient_coherence`,
:func:`adaptation_errors`; over a run's snapshots :func:`diagnose`. The run-level
:func:`landscape` writes ``RUN_DIR/landscape/<regime>.nc``. See docs/landscape.md.
"""

from ._inner import StableRates as StableRates
from ._inner import inner_top_eigenvalues as inner_top_eigenvalues
from ._inner import stable_inner_rates as stable_inner_rates
from ._ops import MetaHessian as MetaHessian
from ._ops import meta_objective as meta_objective
from ._plots import plot_density as plot_density
from ._plots import plot_diagnostics as plot_diagnostics
from ._plots import plot_landscape as plot_landscape
from ._plots import plot_slices as plot_slices
from ._plots import plot_spectrum as plot_spectrum
from ._plots import plot_stable_rates as plot_stable_rates
from ._run import landscape as landscape
from ._sensitivity import layer_shares as layer_shares
from ._sensitivity import loss_slices as loss_slices
from ._spectrum import Eigenpairs as Eigenpairs
from ._spectrum import SpectralDensity as SpectralDensity
from ._spectrum import TraceEstimate as TraceEstimate
from ._spectrum import eigenpairs as eigenpairs
from ._spectrum import hutchinson as hutchinson
from ._spectrum import lanczos as lanczos
from ._spectrum import slq as slq
from .diagnose import SWAP_THRESHOLD as SWAP_THRESHOLD
from .diagnose import SwapTest as SwapTest
from .diagnose import adaptation_errors as adaptation_errors
from .diagnose import diagnose as diagnose
from .diagnose import gradient_coherence as gradient_coherence
from .diagnose import report_markdown as report_markdown
from .diagnose import support_swap as support_swap
from .diagnose import task_gradients as task_gradients

__all__ = ["SWAP_THRESHOLD", "Eigenpairs", "MetaHessian", "SpectralDensity", "StableRates",
           "SwapTest", "TraceEstimate", "adaptation_errors", "diagnose", "eigenpairs",
           "gradient_coherence", "hutchinson", "inner_top_eigenvalues", "lanczos",
           "landscape", "layer_shares", "loss_slices", "meta_objective", "plot_density",
           "plot_diagnostics", "plot_landscape", "plot_slices", "plot_spectrum",
           "plot_stable_rates", "report_markdown", "slq", "stable_inner_rates",
           "support_swap", "task_gradients"]
