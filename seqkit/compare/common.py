"""Shared settings and records of ``seqkit compare`` (see ``seqkit.compare``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("seqkit")

MATCH_TOLERANCE = 0.02
MAX_UNITS = 8192
DEFAULT_BUDGET_MINUTES = 30.0
INFERENCE_BATCH = 64
GRADIENT_EXAMPLES = 32
# Process start, imports, graph tracing and evaluation of one run, beyond its training steps:
# measured ~10-20 s per run on the 2-core development machine; the estimate takes 20 s.
RUN_OVERHEAD_S = 20.0
MATCHES = ("params", "units")


@dataclass
class Candidate:
    """One layer to compare: its registry name, units per recurrent layer, trainable params."""

    name: str
    units: list[int]
    params: int
    dropped: list[str] = field(default_factory=list)


@dataclass
class Plan:
    recipe_doc: dict  # the resolved recipe (overrides applied)
    recipe_file: str | None
    task_type: str
    monitor: str
    mode: str
    recurrent: list[int]  # indices of the recipe's recurrent layers
    candidates: list[Candidate]
    seeds: list[int]
    lengths: list[int | None]
    match: str
    out: Path
    epochs: int
    steps_per_epoch: int
    step_seconds: dict[str, float]  # per layer, at the longest length
    estimate_seconds: float
    budget_minutes: float
    command: str = ""
    load_average: float = 0.0

    @property
    def runs(self) -> int:
        return len(self.candidates) * len(self.seeds) * len(self.lengths)
