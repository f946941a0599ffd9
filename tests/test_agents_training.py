import math

import pytest
import torch
from torch.utils.data import TensorDataset

from sim2real.agents.augment import Augmentation
from sim2real.agents.freezing import freeze_stages
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.training import TrainConfig, fit, masked_loss

PRE = Preprocessing(height=32, width=64)
OUTPUTS = ["user/angle", "user/throttle", "sim/cte"]


def _data(n: int, seed: int) -> TensorDataset:
    """Images whose bright column position encodes the steering label (learnable)."""
    g = torch.Generator().manual_seed(seed)
    steer = torch.rand(n, generator=g) * 2 - 1
    images = torch.randint(0, 60, (n, 3, 32, 64), generator=g, dtype=torch.uint8)
    cols = ((steer + 1) / 2 * 56).long()
    for i, c in enumerate(cols):
        images[i, :, :, c : c + 8] = 220
    targets = torch.stack([steer, torch.full((n,), 0.3), steer * 0.5], dim=1)
    targets[::2, 2] = float("nan")  # half the frames lack the sim label
    return TensorDataset(images, targets)


def _config(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=16, seed=7, num_threads=1, progress=False, tensorboard=False)
    return TrainConfig(**{**base, **kw})


def _net(seed: int = 0) -> DrivingNet:
    torch.manual_seed(seed)
    return DrivingNet(ModelSpec(architecture="resnet_small", preprocessing=PRE, outputs=OUTPUTS))


def test_masked_loss_ignores_nan_targets_and_weights_outputs():
    pred = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    target = torch.tensor([[0.0, float("nan")], [1.0, 0.0]])
    # output 0: errors 1, 2 -> mse 2.5; output 1: only frame 2 -> error 2 -> mse 4
    assert masked_loss(pred, target, torch.tensor([1.0, 0.5])).item() == pytest.approx(2.5 + 2.0)


def test_two_seeded_trainings_give_identical_weights(tmp_path):
    train, val = _data(48, 0), _data(16, 1)
    nets = []
    for run in ("a", "b"):
        net = _net()
        fit(net, train, val, _config(), tmp_path / run)
        nets.append(net.state_dict())
    assert nets[0].keys() == nets[1].keys()
    for key in nets[0]:
        assert torch.equal(nets[0][key], nets[1][key]), key
    other = _net()
    fit(other, train, val, _config(seed=8), tmp_path / "c")
    assert not torch.equal(other.state_dict()["head.4.weight"], nets[0]["head.4.weight"])


def test_fit_learns_and_restores_best_weights(tmp_path):
    train, val = _data(128, 0), _data(32, 1)
    net = _net()
    cfg = _config(epochs=4, lr=3e-3, augment=Augmentation(enabled=False), tensorboard=True)
    result = fit(net, train, val, cfg, tmp_path)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_val_loss == min(losses)
    assert result.best_epoch == losses.index(min(losses)) + 1
    assert losses[result.best_epoch - 1] < losses[0]
    assert result.val_metrics["sim/cte"]["n"] == 16  # only the labelled half counts
    assert any((tmp_path / "tb").iterdir())
    # the returned model is the best epoch's: re-evaluating gives the recorded loss
    from sim2real.agents.training import dataset_tensors, evaluate_loss, loss_weights

    loss, _ = evaluate_loss(
        net, *dataset_tensors(val), OUTPUTS, loss_weights(OUTPUTS, {}), torch.device("cpu")
    )
    assert math.isclose(loss, result.best_val_loss, rel_tol=1e-6)


def test_frozen_stages_unchanged_by_fit_with_weight_decay(tmp_path):
    net = _net()
    freeze_stages(net, ["stage1", "stage2"])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fit(net, _data(48, 0), None, _config(epochs=1, weight_decay=0.5), tmp_path)
    after = net.state_dict()
    for key, value in before.items():
        if key.startswith(("encoder.stages.stage1.", "encoder.stages.stage2.")):
            assert torch.equal(after[key], value), key
    assert not torch.equal(
        after["encoder.stages.stage3.conv1.weight"], before["encoder.stages.stage3.conv1.weight"]
    )


def test_resume_continues_from_the_saved_epoch(tmp_path):
    train, val = _data(64, 0), _data(32, 1)
    full = _net()
    fit(full, train, val, _config(epochs=3, patience=0), tmp_path / "full")

    part = _net()
    first = fit(part, train, val, _config(epochs=2, patience=0), tmp_path / "part")
    assert first.epochs_run == 2
    seen = []
    resumed_net = _net(seed=99)  # different init: everything must come from resume.pt
    resumed = fit(
        resumed_net,
        train,
        val,
        _config(epochs=3, patience=0),
        tmp_path / "part",
        resume=True,
        on_epoch_start=lambda epoch, model: seen.append(epoch),
    )
    assert seen == [2]  # only the third epoch ran
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for key, value in full.state_dict().items():
        assert torch.equal(resumed_net.state_dict()[key], value), key


def test_a_run_stopped_early_resumes_with_a_longer_patience_on_the_same_trajectory(tmp_path):
    train, val = _data(64, 0), _data(32, 1)
    never_better = {"epochs": 4, "min_delta": 1e9}  # only epoch 1 counts as an improvement
    full = fit(_net(), train, val, _config(patience=0, **never_better), tmp_path / "full")
    assert full.epochs_run == 4 and not full.stopped_early
    first = fit(_net(), train, val, _config(patience=1, **never_better), tmp_path / "part")
    assert first.stopped_early and first.epochs_run == 2
    seen: list[int] = []

    def again(patience: int):
        return fit(
            _net(seed=99),  # everything must come from resume.pt
            train,
            val,
            _config(patience=patience, **never_better),
            tmp_path / "part",
            resume=True,
            on_epoch_start=lambda epoch, model: seen.append(epoch),
        )

    assert again(1).epochs_run == 2 and seen == []  # the same patience stops there again
    saved = torch.load(tmp_path / "part" / "resume.pt", weights_only=True)
    saved["config"]["patience"] = 1  # as written before patience became resumable
    torch.save(saved, tmp_path / "part" / "resume.pt")
    resumed = again(0)
    assert seen == [2, 3] and resumed.epochs_run == 4
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]


def test_an_interrupted_run_resumed_with_a_shorter_patience_stops_where_it_would_have(tmp_path):
    # patience 0 is interrupted after epoch 2 with one epoch that was not better; resumed with
    # patience 1, the run has already met its stopping point: no further epoch may train
    train, val = _data(64, 0), _data(32, 1)
    never_better = {"epochs": 4, "min_delta": 1e9}  # only epoch 1 counts as an improvement

    def interrupt(epoch, model):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(_net(), train, val, _config(patience=0, **never_better), tmp_path / "run",
            on_epoch_start=interrupt)  # fmt: skip
    fresh = fit(_net(), train, val, _config(patience=1, **never_better), tmp_path / "fresh")
    assert fresh.stopped_early and fresh.epochs_run == 2
    seen: list[int] = []
    resumed = fit(
        _net(seed=99),
        train,
        val,
        _config(patience=1, **never_better),
        tmp_path / "run",
        resume=True,
        on_epoch_start=lambda epoch, model: seen.append(epoch),
    )
    assert seen == [] and resumed.epochs_run == 2 and resumed.stopped_early
    assert resumed.best_epoch == fresh.best_epoch == 1
    assert resumed.best_val_loss == pytest.approx(fresh.best_val_loss)


def test_cosine_schedule_decays_to_zero_and_resumes_exactly(tmp_path):
    train, val = _data(64, 0), _data(32, 1)
    config = _config(epochs=3, patience=0, lr=0.01, lr_schedule="cosine")
    full_net = _net()
    full = fit(full_net, train, val, config, tmp_path / "full")
    lrs = [h["lr"] for h in full.history]  # the rate of each epoch's last batch
    assert lrs[0] < 0.01 and lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.01 * 0.05

    def interrupt(epoch, model):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(_net(), train, val, config, tmp_path / "part", on_epoch_start=interrupt)
    resumed_net = _net(seed=99)
    fit(resumed_net, train, val, config, tmp_path / "part", resume=True)
    for key, value in full_net.state_dict().items():
        assert torch.equal(resumed_net.state_dict()[key], value), key


def test_resume_with_a_different_config_is_refused(tmp_path):
    train = _data(32, 0)
    fit(_net(), train, None, _config(epochs=1), tmp_path)
    with pytest.raises(ValueError, match="different training config"):
        fit(_net(), train, None, _config(epochs=2, lr=0.1), tmp_path, resume=True)


def test_bad_inputs_are_clear_errors(tmp_path):
    net = _net()
    with pytest.raises(ValueError, match="not outputs"):
        fit(net, _data(8, 0), None, _config(loss_weights={"speed": 1.0}), tmp_path)
    wrong = TensorDataset(torch.zeros(8, 3, 64, 128, dtype=torch.uint8), torch.zeros(8, 3))
    with pytest.raises(ValueError, match=r"model takes \(3, 32, 64\)"):
        fit(net, wrong, None, _config(), tmp_path)
    freeze_stages(net, ["stage1", "stage2", "stage3", "stage4"])
    for p in net.head.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="every parameter is frozen"):
        fit(net, _data(8, 0), None, _config(), tmp_path)


def test_early_stopping_keeps_the_best_weights_and_stops_after_patience():
    from sim2real.agents.epochs import EarlyStopping

    net = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2, min_delta=0.1)
    assert not stopper.update(1, 1.0, net)
    best = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not stopper.update(2, 0.95, net)  # lower, but not by more than min_delta
    assert stopper.update(3, 0.99, net)  # the second epoch in a row that is not better
    assert (stopper.best_epoch, stopper.best_val) == (1, 1.0)
    stopper.restore(net)
    assert torch.equal(net.weight, best)
    blind = EarlyStopping(patience=1)  # no validation: every epoch is the best, none kept
    assert not blind.update(1, None, net) and not blind.update(2, None, net)
    assert blind.best_epoch == 2 and blind.best_state is None


def test_epoch_batches_cover_each_row_once_but_a_lone_last_one():
    from sim2real.agents.epochs import epoch_batches

    batches = epoch_batches(33, 16, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [16, 16]  # BatchNorm cannot train on one row
    assert len(set(torch.cat(batches).tolist())) == 32
    again = epoch_batches(34, 16, torch.Generator().manual_seed(0))
    assert [len(b) for b in again] == [16, 16, 2]
    assert sorted(torch.cat(again).tolist()) == list(range(34))
