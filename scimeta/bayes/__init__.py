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
:func:`fit_kron_batch` (K-FAC posteriors, evidence fit and predictive of many tasks in
one batched computation);
:func:`posterior` does all of it for every task of a store from a trained run;
:func:`fit_forecast` gives a :class:`ForecastPosterior` for a ``Forecaster`` (RK4
rollouts of a vector field) with sampled or linearized bands on its trajectories;
``fit_laplace(..., collocation_x=...)`` adds a physics residual to the likelihood.
See docs/bayes.md.
"""

from . import metrics as metrics
from ._bands import Rollout as Rollout
from ._bands import bands_from_moments as bands_from_moments
from ._bands import bands_from_samples as bands_from_samples
from ._bands import rollout_params as rollout_params
from ._curvature import STRUCTURES as STRUCTURES
from ._curvature import curvature as curvature
from ._fit import fit_laplace as fit_laplace
from ._flat import Flat as Flat
from ._forecast import FORECAST_STRUCTURES as FORECAST_STRUCTURES
from ._forecast import ForecastPosterior as ForecastPosterior
from ._forecast import fit_forecast as fit_forecast
from ._kron import KronFactors as KronFactors
from ._kron import KronLayer as KronLayer
from ._kron import KronLayerSpec as KronLayerSpec
from ._kron_batch import KronBatch as KronBatch
from ._kron_batch import fit_kron_batch as fit_kron_batch
from ._laplace import OPTIMIZE as OPTIMIZE
from ._laplace import Posterior as Posterior
from ._predictive import Prediction as Prediction
from ._predictive import predict as predict
from ._predictive import sample_params as sample_params
from ._prior import Prior as Prior
from ._prior import inner_loop_prior as inner_loop_prior
from ._prior import prior_from_inner_loop as prior_from_inner_loop
from ._run import posterior as posterior
from ._run_io import plot_bands as plot_bands
from ._run_io import plot_calibration as plot_calibration

__all__ = ["FORECAST_STRUCTURES", "OPTIMIZE", "STRUCTURES", "Flat", "ForecastPosterior",
           "KronBatch", "KronFactors", "KronLayer", "KronLayerSpec", "Posterior", "Prediction",
           "Prior", "Rollout", "bands_from_moments", "bands_from_samples", "curvature",
           "fit_forecast", "fit_kron_batch", "fit_laplace", "inner_loop_prior", "metrics",
           "plot_bands", "plot_calibration", "posterior", "predict", "prior_from_inner_loop",
           "rollout_params", "sample_params"]
