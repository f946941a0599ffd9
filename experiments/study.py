"""The transfer-gap study: a declared grid of cached cells, run by an executor, then reported.

`StudyConfig` (YAML, validated; `study_config`) declares the upstream stages, each the config
of the command it runs (sim recordings per randomization strength, pretraining, an optional
external policy checkpoint, domain gap), and the grid of fine-tuning cells:

- learning curves: N real frames (0 = zero-shot) x arms {transfer with the recommended
  freeze, transfer without freezing, scratch, ladder rungs} x seeds, from the main start;
- a freeze-depth sweep (k = 0 .. every stage) at a few N;
- the other pretraining strengths (e.g. randomization 0) and the policy checkpoint, as
  starts at a few N (zero-shot and recommended freeze);
- every network evaluated on the real test block (the later held-out time block, split as
  fine-tuning splits: train | val 15% | test 20%, with 20-frame gaps), offline on a held-out
  sim recording and, where configured, closed loop in sim.

`study_plan` lays the cells out; `run_study` (`study_run`) runs what is not cached and writes
the report. This module is the public entry: it re-exports the names callers use.
"""

from sim2real.experiments.study_config import (
    LADDER_ARMS,
    SPLIT,
    StudyConfig,
    load_study_config,
    packaged_config,
)
from sim2real.experiments.study_plan import (
    MAIN,
    POLICY,
    SCRATCH,
    Plan,
    frame_counts,
    frames_count,
    plan_runs,
    plan_upstream,
    study_split,
)
from sim2real.experiments.study_run import StudyRun, run_study

__all__ = [
    "LADDER_ARMS",
    "MAIN",
    "POLICY",
    "SCRATCH",
    "SPLIT",
    "Plan",
    "StudyConfig",
    "StudyRun",
    "frame_counts",
    "frames_count",
    "load_study_config",
    "packaged_config",
    "plan_runs",
    "plan_upstream",
    "run_study",
    "study_split",
]
