import json
import os

import torch

from sim2real.common.machine import describe_machine, load_average, load_text, machine_info


def test_machine_info_reports_this_process_threads_and_load():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        info = machine_info()
    finally:
        torch.set_num_threads(before)
    assert info["threads"] == 1
    assert info["cpus"] == os.cpu_count()
    assert info["torch"] == torch.__version__
    assert len(info["load_average"]) == 3 and "load_before" not in info
    assert info["utc"].endswith("+00:00")
    json.dumps(info, allow_nan=False)  # goes into benchmark JSON written with atomic_write_json


def test_a_timed_span_gives_load_before_and_after():
    info = machine_info(load_before=(1.234, 2.0, 3.0))
    assert info["load_before"] == [1.23, 2.0, 3.0]
    assert len(info["load_after"]) == 3 and "load_average" not in info
    line = describe_machine(info)
    assert "load before 1.23 2.00 3.00, load after " in line
    assert f"torch {torch.__version__}" in line


def test_no_load_average_is_said_not_invented(monkeypatch):
    def unavailable():
        raise OSError("no load average here")

    monkeypatch.setattr(os, "getloadavg", unavailable)
    assert load_average() == []
    assert load_text() == "n/a"
    assert "load average n/a" in describe_machine()
