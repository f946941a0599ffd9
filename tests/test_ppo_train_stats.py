"""benchmarks/ppo_train_stats.py: a PPO run's update statistics from its TensorBoard log."""

import pytest
from model_helpers import load_benchmark
from torch.utils.tensorboard import SummaryWriter


@pytest.fixture(scope="module")
def stats():
    return load_benchmark("ppo_train_stats")


def test_splits_the_explained_variance_at_the_warmup(stats, tmp_path):
    writer = SummaryWriter(str(tmp_path / "run" / "tb" / "PPO_1"))
    for step, ev in [(1024, 0.9), (4096, 0.5), (5120, 0.1), (6144, 0.3), (7168, 0.2)]:
        writer.add_scalar("train/explained_variance", ev, step)
        writer.add_scalar("train/approx_kl", ev / 100, step)
    writer.close()
    out = stats.summary(tmp_path / "run", warmup_steps=4096)
    assert out["updates"] == 5
    assert out["ev_warmup_last"] == pytest.approx(0.5)  # the last step <= the warm-up
    assert out["ev_after_median"] == pytest.approx(0.2)  # 0.1, 0.3, 0.2
    assert out["kl_max"] == pytest.approx(0.003)


def test_a_run_without_a_log_is_one_line(stats, tmp_path, capsys):
    (tmp_path / "empty" / "tb").mkdir(parents=True)
    with pytest.raises(SystemExit, match="no TensorBoard events"):
        stats.main([str(tmp_path / "empty")])
