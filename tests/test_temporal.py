"""Temporal context (the previous action as an input) end to end: the records' previous
actions, the network, training's mirroring, the closed-loop policy, ONNX export and the pilot,
on real frames of the shipped sample tub."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
import torch

from sim2real.agents.augment import Augmentation
from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.closed_loop import network_policy
from sim2real.agents.model import DrivingNet, ModelSpec, predict, predict_rollout
from sim2real.agents.temporal import (
    FALLBACK_ACTION,
    Temporal,
    augment_with_context,
    dataset_context,
)
from sim2real.common.splitspec import SplitSpec
from sim2real.transfer.datasets import open_records
from sim2real.transfer.export import export_onnx, load_frames, rollout_context, run_onnx
from sim2real.transfer.pilot import PREVIOUS_ACTION_NAME, DonkeyPilot
from sim2real.transfer.records import run_starts
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.temporal import previous_actions
from sim2real.transfer.training_data import open_training_data

TEMPORAL = {"previous_action": True}


@pytest.fixture(scope="module")
def records():
    return open_records([sample_path()]).records  # 1000 real frames, one session, one gap


def _spec(**temporal) -> ModelSpec:
    return ModelSpec(hidden=16, temporal=Temporal(**temporal))


def _net(seed: int = 0, **temporal) -> DrivingNet:
    torch.manual_seed(seed)
    net = DrivingNet(_spec(**temporal)).eval()
    with torch.no_grad():  # make the previous action matter clearly
        net.head[1].weight[:, -2:] = 0.5
    return net


# ----------------------------------------------------------------- the records' previous action
def test_previous_action_is_the_record_before_in_the_session(records):
    context, fallback = previous_actions(records)
    gap = next(i for i in range(1, len(records)) if records[i].index != records[i - 1].index + 1)
    assert fallback == 2  # the session's first record and the one after the gap
    np.testing.assert_array_equal(context[0].numpy(), FALLBACK_ACTION)
    np.testing.assert_array_equal(context[gap].numpy(), FALLBACK_ACTION)
    for i in (1, 2, gap + 1, len(records) - 1):
        before = records[i - 1].labels
        expected = [before["user/angle"], before["user/throttle"]]
        np.testing.assert_allclose(context[i].numpy(), expected, rtol=0, atol=1e-7)
    # a block cut out of the recording still finds its predecessors among every record
    part, _ = previous_actions(records[500:510], records)
    torch.testing.assert_close(part, context[500:510])
    alone, n = previous_actions(records[500:510])
    assert n == 1 and not torch.equal(alone[0], context[500])


def test_where_the_pilot_drove_its_recorded_command_is_the_previous_action(records):
    labels = {"user/angle": 0.1, "user/throttle": 0.2, "pilot/angle": -0.7, "pilot/throttle": 0.9}
    driven = [
        dataclasses.replace(records[i], labels={**records[i].labels, **labels}, mode=mode)
        for i, mode in zip(range(300, 303), ("local_angle", "local", "user"), strict=True)
    ]
    driven.append(records[303])
    context, _ = previous_actions(driven)
    np.testing.assert_allclose(context[1].numpy(), [-0.7, 0.2], atol=1e-7)  # steered only
    np.testing.assert_allclose(context[2].numpy(), [-0.7, 0.9], atol=1e-7)  # drove
    np.testing.assert_allclose(context[3].numpy(), [0.1, 0.2], atol=1e-7)  # a person drove


def test_finetune_refuses_a_temporal_checkpoint_in_one_line(tmp_path, capsys):
    from sim2real.experiments.cli import main

    net = _net(**TEMPORAL)
    save_checkpoint(tmp_path / "ckpt", net, ModelCard(spec=net.spec, trained_on={"test": True}))
    code = main(["finetune", "--checkpoint", str(tmp_path / "ckpt"), "--data",
                 str(sample_path()), "--frames", "100", "--out", str(tmp_path / "ft")])  # fmt: skip
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "a temporal network" in line and "pilotnet-recipe" in line
    assert not (tmp_path / "ft").exists()


def test_a_tub_whose_indexes_have_gaps_is_refused_with_its_name(records):
    gapped = [dataclasses.replace(r, index=3 * r.index) for r in records[:40]]
    with pytest.raises(ValueError, match=r"usi-track-a-sample: 39 of 40 records have no record "):
        previous_actions(gapped)


def test_sim_frames_without_the_applied_action_are_refused(records):
    old_sim = [dataclasses.replace(r, labels={**r.labels, "sim/cte": 0.0}) for r in records[:3]]
    with pytest.raises(ValueError, match=r"sim frame without \['sim/applied_steering'"):
        previous_actions(old_sim)
    applied = {"sim/applied_steering": -0.7, "sim/applied_throttle": 0.2, "sim/cte": 0.0}
    sim = [dataclasses.replace(r, labels={**r.labels, **applied}) for r in records[:3]]
    context, _ = previous_actions(sim)  # the applied action, not the clean user/* label
    np.testing.assert_allclose(context[1].numpy(), [-0.7, 0.2], rtol=0, atol=1e-7)


def test_training_data_serves_the_previous_action_only_to_temporal_networks(records, tmp_path):
    args = ([sample_path()], ["user/angle", "user/throttle"], _spec().preprocessing)
    split = SplitSpec(val_fraction=0.2, test_fraction=0.0)
    single = open_training_data(*args, split, cache_dir=tmp_path, progress=False)
    assert single.train.context is None and single.val.context is None
    data = open_training_data(
        *args, split, cache_dir=tmp_path, progress=False, temporal=Temporal(**TEMPORAL)
    )
    torch.testing.assert_close(data.train.images, single.train.images)  # same frames
    context = dataset_context(["a", "b"], data.val, "val")
    by_index = {r.index: r for r in records}
    for row, record in zip(context[:50], data.val.records[:50], strict=True):
        before = by_index.get(record.index - 1)
        want = (
            FALLBACK_ACTION
            if before is None
            else [before.labels[k] for k in ("user/angle", "user/throttle")]
        )
        np.testing.assert_allclose(row.numpy(), want, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="the training data carries no previous action"):
        dataset_context(["a", "b"], single.train, "training")


# ------------------------------------------------------------------------------ the network
def test_temporal_network_reads_the_previous_action_and_refuses_to_run_without_it():
    net, single = _net(**TEMPORAL), DrivingNet(_spec()).eval()
    x = torch.rand(3, *net.spec.input_shape)
    left, right = torch.tensor([[-1.0, 0.5]] * 3), torch.tensor([[1.0, 0.5]] * 3)
    assert (net(x, left) - net(x, right)).abs().max() > 0.1
    with pytest.raises(ValueError, match=r"reads the previous action .* pass it as context"):
        net(x)
    with pytest.raises(ValueError, match=r"context must be \(3, 2\)"):
        net(x, left[:2])
    with pytest.raises(ValueError, match="single-frame .* was given a previous action"):
        single(x, left)
    # in training, action_dropout 1 replaces every previous action by the fallback
    dropped = _net(action_dropout=1.0, **TEMPORAL)
    for module in dropped.modules():  # no other randomness than the action dropout
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
    rest = torch.tensor([FALLBACK_ACTION] * 3)
    with torch.no_grad():
        torch.testing.assert_close(dropped.train()(x, left), dropped(x, rest))  # BN: train


def test_a_mirrored_frame_mirrors_its_previous_steering_too():
    images = torch.randint(0, 255, (4, 3, 64, 128), dtype=torch.uint8)
    targets = torch.tensor([[0.3, 0.5]] * 4)
    context = torch.tensor([[0.2, 0.4]] * 4)
    config = Augmentation(flip_prob=1.0)
    x, y, c = augment_with_context(
        images, targets, context, ["user/angle", "user/throttle"], torch.Generator(), config
    )
    torch.testing.assert_close(y, torch.tensor([[-0.3, 0.5]] * 4))
    torch.testing.assert_close(c, torch.tensor([[-0.2, 0.4]] * 4))
    assert x.shape == (4, 3, 64, 128)


def test_closed_loop_policy_feeds_back_the_action_it_applied():
    net = _net(**TEMPORAL)
    frame = np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    act = network_policy(net, throttle_scale=0.5)
    first, second = act(frame), act(frame)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None]
    rest = torch.tensor([FALLBACK_ACTION])
    want_first = predict(net, x, context=rest)[0]
    np.testing.assert_allclose(
        first, np.clip([want_first[0], 0.5 * want_first[1]], -1, 1), atol=1e-5
    )
    want_second = predict(net, x, context=torch.from_numpy(first)[None])[0]
    np.testing.assert_allclose(second[0], np.clip(want_second[0], -1, 1), atol=1e-5)
    assert abs(second[0] - first[0]) > 1e-4  # the state changed the command
    np.testing.assert_allclose(network_policy(net, 0.5)(frame), first, atol=1e-6)  # fresh state


def test_closed_loop_policy_feeds_back_a_shared_steps_applied_action_not_its_own():
    net = _net(**TEMPORAL)
    frame = np.random.default_rng(1).integers(0, 255, (64, 128, 3), dtype=np.uint8)
    act = network_policy(net)
    own = act(frame)
    applied = np.array([0.8, -0.4], np.float32)  # e.g. its steering was replaced by an expert's
    act.applied(applied)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None]
    want = predict(net, x, context=torch.from_numpy(applied)[None])[0]
    after_own = predict(net, x, context=torch.from_numpy(own)[None])[0]
    assert abs(want[0] - after_own[0]) > 1e-3  # the two histories drive differently
    np.testing.assert_allclose(act(frame)[0], np.clip(want[0], -1, 1), atol=1e-5)


# ------------------------------------------------------------------------- ONNX and the pilot
@pytest.fixture(scope="module")
def exported(tmp_path_factory, records):
    folder = tmp_path_factory.mktemp("temporal-export")
    net = _net(**TEMPORAL)
    save_checkpoint(folder / "ckpt", net, ModelCard(spec=net.spec, trained_on={"test": True}))
    frames = load_frames([r.image_path for r in records[100:112]])  # a real sequence
    result = export_onnx(folder / "ckpt", folder / "pilot.onnx", check_frames=frames)
    return net, result, frames


def test_temporal_onnx_equals_torch_over_a_real_sequence(exported):
    net, result, frames = exported
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", PREVIOUS_ACTION_NAME]
    assert result.input_names == ("image", PREVIOUS_ACTION_NAME)
    context = np.random.default_rng(1).uniform(-1, 1, (len(frames), 2)).astype(np.float32)
    got = run_onnx(session, frames, context)
    pre = net.spec.preprocessing
    x = torch.from_numpy(np.stack([pre.apply(f).transpose(2, 0, 1) for f in frames]))
    ref = predict(net, x, context=torch.from_numpy(context))
    np.testing.assert_allclose(got["steering"], ref[:, 0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got["throttle"], ref[:, 1], atol=1e-4, rtol=0)


def test_pilot_keeps_the_previous_action_between_calls(exported):
    net, result, frames = exported
    from sim2real.transfer.export import CarInputModel

    expected = rollout_context(CarInputModel(net, (120, 160)), frames)
    pilot = DonkeyPilot(result.onnx_path, max_pause_s=60.0)
    assert pilot.temporal
    fed = []
    for frame in frames:
        fed.append(pilot.previous_action[0].copy())
        pilot.run(frame)
    np.testing.assert_allclose(np.array(fed), expected, atol=1e-4)
    assert np.abs(expected[1:]).max() > 0  # the state is not all fallback
    pilot.reset()
    np.testing.assert_array_equal(pilot.previous_action[0], FALLBACK_ACTION)
    # a pause longer than max_pause_s (the pilot was switched off) starts from rest again
    paused = DonkeyPilot(result.onnx_path, max_pause_s=1e-9)
    first = paused.run(frames[0])
    assert paused.run(frames[0]) == pytest.approx(first, abs=1e-6)
    # the throttle fed back is the one the car applies after AI_THROTTLE_MULT
    slow = DonkeyPilot(result.onnx_path, throttle_mult=0.5, max_pause_s=60.0)
    angle, throttle = slow.run(frames[0])
    np.testing.assert_allclose(slow.previous_action[0], [angle, 0.5 * throttle], atol=1e-6)
    with pytest.raises(ValueError, match="throttle_mult must be in"):
        DonkeyPilot(result.onnx_path, throttle_mult=0.0)


def test_offline_rollout_feeds_the_networks_own_previous_action_like_the_pilot(exported, records):
    net, result, frames = exported
    pre = net.spec.preprocessing
    x = torch.from_numpy(np.stack([pre.apply(f).transpose(2, 0, 1) for f in frames]))
    pilot = DonkeyPilot(result.onnx_path, max_pause_s=60.0)
    driven = np.array([pilot.run(f) for f in frames])
    starts = run_starts(records[100:112])
    assert starts.tolist() == [True] + [False] * 11
    rolled = predict_rollout(net, x, starts)
    np.testing.assert_allclose(np.clip(rolled[:, :2], -1, 1), driven, atol=1e-4)
    restarted = starts.copy()
    restarted[6] = True  # a gap: the pilot starts from rest again there
    again = predict_rollout(net, x, restarted)
    np.testing.assert_allclose(again[:6], rolled[:6], atol=1e-6)
    np.testing.assert_allclose(
        again[6], predict(net, x[6:7], context=torch.zeros(1, 2))[0], atol=1e-5
    )
    assert np.abs(again[6] - rolled[6]).max() > 1e-4


def test_the_data_side_reads_the_keys_the_recording_writes():
    from sim2real.envs import recording
    from sim2real.transfer import temporal

    assert temporal.APPLIED_KEYS == recording.APPLIED_KEYS
