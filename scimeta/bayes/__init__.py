"""Bayesian view of meta-learning: Laplace posteriors with the meta-learned init as prior mean.

MAML's early-stopped inner loop acts as a Gaussian prior centred on the init θ
(Grant et al. 2018). This package fits a Laplace approximation around adapted
parameters φ on a task's support data, on functional parameter dicts (no module
copies)::

    post = fit_laplace(learner, phi, support_x, support_y, prior_mean=theta,
                       structure="kron", prior_precision=1.0, noise_std=0.1,
                       optimize="both")
    pred = post.predict(query_x)            # mean, var_f, var_y, each [N, C]
    metrics.summary(query_y, pred.mean, pred.var_y)

Pieces: :func:`curvature` (GGN ``full``/``diag``/``kron``/``last-layer``, exact
``hessian``; batched over tasks with vmap), :func:`prior_from_inner_loop` (the
prior implied by K gradient steps), :class:`Posterior` (evidence, hyperparameter
fitting, samples), :func:`predict` (linearized predictive), :mod:`.metrics`;
:func:`posterior` does all of it for every task of a store from a trained run.
See docs/bayes.md.
"""

from . import metrics as metrics
from ._curvature import STRUCTURES as STRUCTURES
from ._curvature import curvature as curvature
from ._flat import Flat as Flat
from ._kron import KronFactors as KronFactors
from ._kron import KronLayer as KronLayer
from ._kron import KronLayerSpec as KronLayerSpec
from ._laplace import OPTIMIZE as OPTIMIZE
from ._laplace import Posterior as Posterior
from ._laplace import fit_laplace as fit_laplace
from ._predictive import Prediction as Prediction
from ._predictive import predict as predict
from ._predictive import sample_params as sample_params
from ._prior import Prior as Prior
from ._prior import inner_loop_prior as inner_loop_prior
from ._prior import prior_from_inner_loop as prior_from_inner_loop
from ._run import posterior as posterior
from ._run_io import plot_bands as plot_bands
from ._run_io import plot_calibration as plot_calibration

__all__ = ["OPTIMIZE", "STRUCTURES", "Flat", "KronFactors", "KronLayer", "KronLayerSpec",
           "Posterior", "Prediction", "Prior", "curvature", "fit_laplace",
           "inner_loop_prior", "metrics", "plot_bands", "plot_calibration", "posterior",
           "predict", "prior_from_inner_loop", "sample_params"]
