"""pea-compare as a library: the paper's Table 4 (ReLU baseline, PEA settings, Act-only upper
limit, each over seeds) for one recipe on the user's data."""

from .plan import Setting, plan_settings
from .runner import RunResult, run_comparison
from .table import Table, build_table, to_markdown, write_outputs

__all__ = ["Setting", "plan_settings", "RunResult", "run_comparison", "Table", "build_table", "to_markdown",
           "write_outputs"]
