"""The fit-sim arms' table: zero-shot test r and calibrated R² on both recordings, validation r,
and the 100-frame fine-tunes' test R² / r (benchmarks/fit_sim/arm.sh and finetune.sh outputs).

usage: python benchmarks/fit_sim/summary.py ARM_OUT...
"""

import json
import sys
from pathlib import Path

TUBS = ("usi-track-a", "carpet-walls")


def zero_shot(arm: Path, tub: str) -> str:
    path = arm / f"eval_{tub}.json"
    if not path.exists():
        return "-"
    result = json.loads(path.read_text())
    r = result["metrics"]["steering_pearson_r"]
    calibrated = result["calibrated"]["metrics"]["steering_r2"]
    return f"r {r['value']:.3f} [{r['low']:.2f}, {r['high']:.2f}], cal R² {calibrated['value']:.3f}"


def fine_tunes(arm: Path, tub: str) -> str:
    runs = sorted(arm.glob(f"ft100_{tub}_s*/eval.json"))
    if not runs:
        return "-"
    metrics = [json.loads(p.read_text())["metrics"] for p in runs]
    r2 = [m["steering_r2"]["value"] for m in metrics]
    r = [m["steering_pearson_r"]["value"] for m in metrics]
    per_seed = " / ".join(f"{v:.2f}" for v in r2)
    return f"R² {sum(r2) / len(r2):.3f} ({per_seed}), r {sum(r) / len(r):.3f}"


def main(arms: list[str]) -> None:
    columns = (f"{t} zero-shot | {t} val r | {t} 100 frames" for t in TUBS)
    print("| arm | " + " | ".join(columns) + " |")
    for name in arms:
        arm = Path(name)
        val_json = arm / "val.json"
        validation = json.loads(val_json.read_text()) if val_json.exists() else {}
        cells = []
        for tub in TUBS:
            val = [v["r"] for k, v in validation.items() if k.endswith(f"|{tub}")]
            cells += [zero_shot(arm, tub), f"{val[0]:.3f}" if val else "-", fine_tunes(arm, tub)]
        print(f"| {arm.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
