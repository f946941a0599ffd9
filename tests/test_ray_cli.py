"""The Ray options of the CLI without Ray: a clear install hint, and Ray-only flags refused
without --executor ray (runs whether or not Ray is installed)."""

from __future__ import annotations

import sys

import pytest

from sim2real.experiments.cli import main


@pytest.mark.parametrize("command", ["experiment", "simulate"])
def test_ray_executor_without_ray_says_what_to_install(command, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    args = ["quickstart"] if command == "experiment" else ["--frames", "20"]
    out = tmp_path / "out"
    assert main([command, *args, "--out", str(out), "--executor", "ray"]) == 2
    assert "pip install sim2real[ray]" in capsys.readouterr().err
    assert not out.exists()


def test_ray_only_options_need_the_ray_executor(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["experiment", "quickstart", "--out", str(out), "--address", "auto"]) == 2
    assert "--address: only with --executor ray" in capsys.readouterr().err
    assert main(["quickstart", "--out", str(out), "--cpus-per-cell", "1"]) == 2
    assert "--cpus-per-cell" in capsys.readouterr().err
    assert not out.exists()
