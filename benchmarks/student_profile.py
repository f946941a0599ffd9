"""Where a self-training `finetune` run spends its time (issue 15): the command under cProfile,
then the cumulative seconds of its parts (teacher fine-tune and its ladder CV, reading the
unlabeled frames, optical flow, the parent's forward passes and the ridge of the motion
teacher, pseudo-labelling, each student's training) and the whole run's wall and CPU s.

usage: python benchmarks/student_profile.py OUT.prof finetune --checkpoint ... --out DIR

Cumulative times overlap (`finetune_selftrain`, once per member, holds everything else but
the ensemble's scoring);  `predict` counts every forward pass without gradient
(pseudo-labels, the parent's predictions for the ridge, the validation scores).
"""

import cProfile
import pstats
import sys
import time

from sim2real.experiments.cli import main

PARTS = {
    "self-training runs (finetune_selftrain)": ("transfer/selftrain.py", "finetune_selftrain"),
    "  ladder CV of the teacher(s)": ("transfer/ladder_cv.py", "cross_validate"),
    "unlabeled frames read": ("transfer/selftrain.py", "unlabeled_frames"),
    "motion teacher (whole)": ("transfer/selftrain.py", "motion_labels"),
    "  optical flow (motion_features)": ("transfer/motion.py", "motion_features"),
    "  ridge CV": ("transfer/motion.py", "fit_ridge_cv"),
    "  parent's forward passes": ("transfer/selftrain.py", "mirrored_prediction"),
    "pseudo-labels (teacher forward)": ("transfer/selftrain.py", "pseudo_label"),
    "students (train_student)": ("transfer/selftrain.py", "train_student"),
    "every no-grad forward (predict)": ("agents/model.py", "predict"),
}


def main_profile(out: str, argv: list[str]) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    profile = cProfile.Profile()
    profile.enable()
    code = main(argv)
    profile.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    profile.dump_stats(out)
    stats = pstats.Stats(out).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    print(f"exit {code}: wall {wall:.1f} s, CPU {cpu:.1f} s (this process)")
    for label, (path, name) in PARTS.items():
        hits = [v for (f, _, n), v in stats.items() if f.endswith(path) and n == name]
        if not hits:
            print(f"{label:36s} not called")
            continue
        calls = sum(v[1] for v in hits)
        seconds = sum(v[3] for v in hits)
        print(f"{label:36s} {seconds:7.1f} s cumulative, {calls} call(s)")


if __name__ == "__main__":
    main_profile(sys.argv[1], sys.argv[2:])
