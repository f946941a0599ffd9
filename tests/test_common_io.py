import os

import pytest

from sim2real.common.io import atomic_write, atomic_write_json, atomic_write_text


def test_atomic_write_gives_umask_mode(tmp_path):
    path = tmp_path / "x.txt"
    old = os.umask(0o022)
    try:
        atomic_write_text(path, "hello")
    finally:
        os.umask(old)
    assert path.read_text() == "hello"
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})

    def boom(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, boom)
    assert path.read_text().strip().startswith("{")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "n.json", {"x": float("nan")})
    assert not (tmp_path / "n.json").exists()
