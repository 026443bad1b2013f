"""Matplotlib helpers for scimeta results (adaptation curves, trajectories, predictions,
forecast error along the horizon).

matplotlib is an optional dependency (``pip install "scimeta[plot]"``) and is imported
only when a function is called, so ``import scimeta.plot`` stays cheap and works
without it. Every function takes ``ax=None`` (a new figure when omitted), draws into
the Axes and returns it; none calls ``plt.show()``.
"""

from .curves import plot_adaptation as plot_adaptation
from .curves import plot_prediction as plot_prediction
from .curves import plot_trajectories as plot_trajectories
from .forecast import plot_forecast_error as plot_forecast_error

__all__ = ["plot_adaptation", "plot_forecast_error", "plot_prediction", "plot_trajectories"]
