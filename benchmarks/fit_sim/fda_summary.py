"""The Fourier domain adaptation table (docs/fit-sim.md): each arm's validation r / R² on both
recordings (val.json), zero-shot test r and R² calibrated on the validation block
(eval_<tub>.json), and the 100-frame fine-tunes' validation and test R² / r (ft100_*).

usage: python benchmarks/fit_sim/fda_summary.py ARM_OUT...   (fda.sh and fda_test.sh outputs)
"""

import json
import sys
from pathlib import Path

TUBS = ("usi-track-a", "carpet-walls")


def validation(arm: Path, tub: str) -> str:
    path = arm / "val.json"
    if not path.exists():
        return "-"
    row = next(v for k, v in json.loads(path.read_text()).items() if k.endswith(f"|{tub}"))
    return f"{row['r']:.3f} / {row['r2']:.3f}"


def test(arm: Path, tub: str) -> str:
    path = arm / f"eval_{tub}.json"
    if not path.exists():
        return "-"
    result = json.loads(path.read_text())
    r = result["metrics"]["steering_pearson_r"]
    cal = result["calibrated"]["metrics"]["steering_r2"]
    return (
        f"{r['value']:.3f} [{r['low']:.2f}, {r['high']:.2f}] / "
        f"{cal['value']:.3f} [{cal['low']:.2f}, {cal['high']:.2f}]"
    )


def fine_tunes(arm: Path) -> list[str]:
    lines = []
    for tub in TUBS:
        runs = sorted(arm.glob(f"ft100_{tub}_s*"))
        if not runs:
            continue
        val, tst = [], []
        for run in runs:
            if (run / "val.json").exists():
                scores = json.loads((run / "val.json").read_text())
                val.append(next(v for k, v in scores.items() if k.endswith(f"|{tub}")))
            if (run / "eval.json").exists():
                metrics = json.loads((run / "eval.json").read_text())["metrics"]
                tst.append({"r2": metrics["steering_r2"]["value"],
                            "r": metrics["steering_pearson_r"]["value"]})  # fmt: skip
        for name, rows in (("validation", val), ("test", tst)):
            if rows:
                per = " / ".join(f"{x['r2']:.3f}" for x in rows)
                mean_r2 = sum(x["r2"] for x in rows) / len(rows)
                mean_r = sum(x["r"] for x in rows) / len(rows)
                lines.append(
                    f"  100 {tub} frames, {name}: R² {per} (mean {mean_r2:.3f}), "
                    f"mean r {mean_r:.3f}"
                )
    return lines


def main(arms: list[str]) -> None:
    header = [f"{t} val r / R²" for t in TUBS] + [f"{t} test r / cal. R²" for t in TUBS]
    print("| arm | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    notes = []
    for name in arms:
        arm = Path(name)
        cells = [validation(arm, t) for t in TUBS] + [test(arm, t) for t in TUBS]
        print(f"| {arm.name} | " + " | ".join(cells) + " |")
        notes += [f"{arm.name}:", *fine_tunes(arm)] if fine_tunes(arm) else []
    print("\n".join(notes))


if __name__ == "__main__":
    main(sys.argv[1:])
