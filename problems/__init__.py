"""Built-in task families of scimeta, one module per family.

In the checkout this is the top-level ``problems/`` folder; installed, it is the
``scimeta.problems`` package. Use :func:`get` and :func:`names`::

    from scimeta import problems
    fam = problems.get("oscillator")
"""

from scimeta.registry import BUILTIN as _BUILTIN
from scimeta.registry import get as get
from scimeta.registry import names as names
from scimeta.registry import register as register

_BUILTIN.update(
    {
        "oscillator": "scimeta.problems.oscillator:Oscillator",
        "lotka_volterra": "scimeta.problems.lotka_volterra:LotkaVolterra",
        "van_der_pol": "scimeta.problems.van_der_pol:VanDerPol",
        "lorenz": "scimeta.problems.lorenz:Lorenz",
        "pendulum": "scimeta.problems.pendulum:Pendulum",
        "glycolytic": "scimeta.problems.glycolytic:Glycolytic",
        "heat": "scimeta.problems.heat:Heat",
        "advection": "scimeta.problems.advection:Advection",
        "burgers": "scimeta.problems.burgers:Burgers",
        "fisher_kpp": "scimeta.problems.fisher_kpp:FisherKPP",
        "allen_cahn": "scimeta.problems.allen_cahn:AllenCahn",
        "kdv": "scimeta.problems.kdv:KdV",
        "gray_scott": "scimeta.problems.gray_scott:GrayScott",
        "gray_scott_leads": "scimeta.problems.gray_scott:GrayScottLeads",
        "navier_stokes": "scimeta.problems.navier_stokes:NavierStokes",
        "navier_stokes_forced": "scimeta.problems.navier_stokes:NavierStokesForced",
        "poisson": "scimeta.problems.poisson:Poisson",
        "sinusoid": "scimeta.problems.sinusoid:Sinusoid",
    }
)

__all__ = ["get", "names", "register"]
