"""Would an early exit from the ladder's cross-validation change what `--freeze auto` picks?
(issue 15, docs/selftrain.md "The student, round two"). Reads every saved card (model.json)
under the folders given, takes each distinct ladder table (`history[].ladder.scores`), and
replays the pick with the climb stopped at the first rung whose CV loss is more than one
standard error above the lowest so far (the rungs after it never scored). Prints, per number
of frames, how many tables the exit fires in, the CV seconds it would save, and every table
whose pick it changes.

    python benchmarks/ladder_exit_scan.py FOLDER...
"""

import json
import sys
from collections import defaultdict
from pathlib import Path


def pick(scores: list[dict], one_se: bool) -> str:
    best = min(scores, key=lambda s: s["mean"])
    if not one_se:
        return best["rung"]
    return next(s for s in scores if s["mean"] <= best["mean"] + best["se"])["rung"]


def climbed(scores: list[dict]) -> list[dict]:
    kept: list[dict] = []
    for score in scores:
        kept.append(score)
        best = min(kept, key=lambda s: s["mean"])
        if score is not best and score["mean"] > best["mean"] + best["se"]:
            break
    return kept


def main(folders: list[str]) -> None:
    seen: set[str] = set()
    rows: dict[int, list[int | float]] = defaultdict(lambda: [0, 0, 0.0])
    changed = []
    for folder in folders:
        for card_path in Path(folder).rglob("model.json"):
            try:
                card = json.loads(card_path.read_text())
            except (OSError, ValueError):
                continue
            for step in card.get("history", []):
                ladder = step.get("ladder") or {}
                scores = ladder.get("scores")
                if not scores:
                    continue
                key = json.dumps(scores, sort_keys=True)
                if key in seen:
                    continue
                seen.add(key)
                n = ladder["frames"]
                cfg = ladder["config"]
                one_se = cfg["one_se"] and n <= cfg["one_se_max_frames"]
                kept = climbed(scores)
                row = rows[n]
                row[0] += 1
                row[1] += len(kept) < len(scores)
                row[2] += sum(s["seconds"] for s in scores[len(kept) :])
                if pick(kept, one_se) != pick(scores, one_se):
                    changed.append((str(card_path), n, pick(scores, one_se), pick(kept, one_se)))
    print(f"{len(seen)} distinct ladder tables")
    for n in sorted(rows):
        tables, fired, seconds = rows[n]
        print(f"N = {n}: {tables} tables, exit fires in {fired}, saves {seconds:.0f} s in all")
    print(f"picks changed: {len(changed)}")
    for path, n, was, now in changed:
        print(f"  N = {n}: {was} -> {now}  {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
