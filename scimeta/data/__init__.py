"""HDF5 task stores (schema v1): generation, reading, validation, summaries.

Typical use::

    from scimeta.data import GenerationConfig, generate, TaskReader
    generate(GenerationConfig("oscillator", "train", tasks=1000, seed=0), "train.h5")
    reader = TaskReader("train.h5")
    batch = reader.sample(25, numpy.random.default_rng(0))   # TaskBatch [25, K, d]
    ds = open_xarray("train.h5")                            # xarray.Dataset
"""

from ..batch import TaskBatch as TaskBatch
from . import manifest as manifest
from .environments import EnvironmentReader as EnvironmentReader
from .generate import GenerationConfig as GenerationConfig
from .generate import generate as generate
from .generate import task_seeds as task_seeds
from .info import format_summary as format_summary
from .info import summarize as summarize
from .reader import TaskReader as TaskReader
from .reader import collate as collate
from .sampling import RULES as RULES
from .schema import SCHEMA_VERSION as SCHEMA_VERSION
from .validate import validate as validate
from .xarray_view import open_xarray as open_xarray
