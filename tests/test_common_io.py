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


def test_check_run_dir_refuses_overwrite_and_changed_resume(tmp_path):
    from sim2real.agents.training import RESUMABLE_CHANGES, TrainConfig
    from sim2real.common.config import StrictModel, save_config
    from sim2real.common.runs import check_run_dir

    class Run(StrictModel):
        lr_scale: float = 1.0
        train: TrainConfig = TrainConfig()

    saved = Run()
    save_config(saved, tmp_path / "config.yaml")
    kwargs = {"started": True, "what": "a test run", "may_change": RESUMABLE_CHANGES}
    with pytest.raises(ValueError, match="already holds a test run"):
        check_run_dir(tmp_path, saved, resume=False, **kwargs)
    more_epochs = Run(train=TrainConfig(epochs=saved.train.epochs + 5))
    check_run_dir(tmp_path, more_epochs, resume=True, **kwargs)  # allowed change
    with pytest.raises(ValueError, match=r"differs .*only train\.device, train\.epochs"):
        check_run_dir(tmp_path, Run(lr_scale=2.0), resume=True, **kwargs)
    # a whole field may change (pydantic's exclude form: True), and the refusal says so
    whole = {"lr_scale": True, "train": {"epochs"}}
    with pytest.raises(ValueError, match=r"only lr_scale, train\.epochs may change"):
        check_run_dir(
            tmp_path, Run(train=TrainConfig(lr=0.5)), resume=True, **{**kwargs, "may_change": whole}
        )
    # the refusal names what differs, nested fields by their dotted path, saved -> now
    changed = Run(lr_scale=2.0, train=TrainConfig(lr=0.5))
    with pytest.raises(ValueError, match=r"lr_scale: 1\.0 -> 2\.0, train\.lr: .* -> 0\.5\)"):
        check_run_dir(tmp_path, changed, resume=True, **kwargs)
