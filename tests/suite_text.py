"""TOML building blocks of the tiny suites the suite tests run (6 training tasks,
3 test tasks, an 8-unit network): one copy for every test module."""

TINY_TRAIN = """
[stores.train]
family = "oscillator"
regime = "unforced-train"
tasks = 6
support = 5
query = 20
"""

TINY_STORES = TINY_TRAIN + """
[stores.test]
family = "oscillator"
regime = "unforced-test-interpolate"
tasks = 3
seed = 2
support = 5
query = 20
"""


def tiny_run(name: str, iterations: int = 5, run: str = "") -> str:
    """A ``[runs.NAME]`` table: MAML, one inner step, meta-batch 2, no baselines;
    ``run`` is the inline ``run = {...}`` table (default: none)."""
    return f"""
[runs.{name}.config]
data = {{ train = "train" }}
model = {{ hidden = [8] }}
meta = {{ algorithm = "maml", inner_steps = 1, meta_batch = 2, baselines = [] }}
optim = {{ iterations = {iterations} }}
{run}
"""
