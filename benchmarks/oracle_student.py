"""The student with perfect pseudo-labels (issue 15, docs/selftrain.md "The student, round
two"): `finetune` exactly as on the command line, except that the motion teacher's steering
labels of the unlabeled frames are replaced by those frames' TRUE recorded labels. A
diagnostic only (a user has no such labels): it bounds what a better teacher could give the
single-frame student with this recipe, separating the teacher's error from the student's.

    python benchmarks/oracle_student.py finetune --checkpoint ... --out DIR

The run's card still records the motion teacher's fit (it is fitted, then overwritten); the
oracle is marked by `motion_teacher.oracle` in the card's last step.
"""

from __future__ import annotations

import sys

import numpy as np

import sim2real.transfer.selftrain as selftrain
from sim2real.experiments.cli import main

_motion_labels = selftrain.motion_labels


def oracle_labels(config, sources, labelled, labelled_records, unlabeled, records, outputs):
    """`motion_labels`, its steering replaced by the unlabeled frames' recorded labels."""
    motion = _motion_labels(
        config, sources, labelled, labelled_records, unlabeled, records, outputs
    )
    if motion.raw is None:
        raise SystemExit(f"oracle: the motion teacher is off ({motion.report})")
    for name in motion.report["labels"]:
        j = list(outputs).index(name)
        truth = np.array([r.labels.get(name, np.nan) for r in records], dtype=np.float64)
        if len(truth) != len(motion.raw) or not np.isfinite(truth).all():
            raise SystemExit(f"oracle: {name} is missing for some unlabeled frames")
        motion.raw[:, j] = truth
    motion.report["oracle"] = True
    return motion


if __name__ == "__main__":
    selftrain.motion_labels = oracle_labels  # finetune_selftrain looks it up at call time
    sys.exit(main(sys.argv[1:]))
