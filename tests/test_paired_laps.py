"""benchmarks/paired_laps.py: lap counts of saved drives, paired by track."""

import json
import sys
from pathlib import Path

import pytest
from model_helpers import load_benchmark


@pytest.fixture(scope="module")
def paired():
    return load_benchmark("paired_laps")


def drives(folder: Path, rows: list) -> Path:
    folder.mkdir()
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (folder / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def episode(seed: int, start: bool, end: bool) -> dict:
    return {"seed": seed, "start": {"completed": start}, "end": {"completed": end}}


def test_pairs_the_tracks_both_drove_and_counts_wins_and_losses(
    paired, tmp_path, capsys, monkeypatch
):
    a = drives(tmp_path / "a", [episode(s, True, s != 3) for s in range(5)])
    b = drives(tmp_path / "b", [episode(s, False, s in (3, 4)) for s in range(1, 6)])
    assert paired.completed(f"A={a}:start") == ("A", dict.fromkeys(range(5), True))
    monkeypatch.setattr(sys, "argv", ["paired_laps.py", f"A={a}", f"B={b}"])
    paired.main()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "4 tracks, seeds 1-4"  # seed 0 and 5 are not in both
    assert out[1].startswith("A: 3 / 4 = 75.0%")  # A's end laps 1, 2, 4
    assert "B: 2 / 4" in out[2] and "1 won, 2 lost" in out[2]  # B laps 3 (A not), loses 1, 2


@pytest.mark.parametrize(
    ("row", "message"),
    [("{not json", "episodes.jsonl:2: not an episode"), ({"seed": 1}, "no 'end'")],
)
def test_a_bad_line_is_a_one_line_error_naming_file_and_line(paired, tmp_path, row, message):
    a = drives(tmp_path / "a", [episode(0, True, True), row])
    with pytest.raises(SystemExit, match=message):
        paired.completed(f"A={a}")
