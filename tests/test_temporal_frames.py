"""Temporal context from an earlier frame (``model.temporal.previous_frame_gap``): the pair
lookup at run boundaries, augmentation of both frames alike, the network, the closed-loop
policy's state, ONNX against torch and the pilot's state, on real frames of the sample tub."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from sim2real.agents.augment import Augmentation, augment_batch
from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.closed_loop import network_policy
from sim2real.agents.model import DrivingNet, ModelSpec, predict
from sim2real.agents.temporal import FramePairs, Temporal
from sim2real.agents.training import dataset_tensors
from sim2real.common.splitspec import SplitSpec
from sim2real.transfer.datasets import open_records
from sim2real.transfer.export import earlier_frames, export_onnx, load_frames, run_onnx
from sim2real.transfer.pilot import PREVIOUS_IMAGE_NAME, DonkeyPilot
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.temporal import previous_frames
from sim2real.transfer.training_data import open_training_data

LABELS = ["user/angle", "user/throttle"]


@pytest.fixture(scope="module")
def records():
    return open_records([sample_path()]).records  # 1000 real frames, one session, one gap


def _net(seed: int = 0, gap: int = 1, frame_input: str = "difference") -> DrivingNet:
    torch.manual_seed(seed)
    spec = ModelSpec(hidden=16, temporal=Temporal(previous_frame_gap=gap, frame_input=frame_input))
    return DrivingNet(spec).eval()


def _stacked(frames: np.ndarray, gap: int, pre) -> torch.Tensor:
    """(N, 6, H, W) uint8: each raw frame (N, H, W, 3) preprocessed, beside the one `gap` back."""
    x = torch.from_numpy(np.stack([pre.apply(f).transpose(2, 0, 1) for f in frames]))
    index = torch.arange(len(frames))
    return torch.cat([x, x[torch.where(index >= gap, index - gap, index)]], dim=1)


# --------------------------------------------------------------------------- the pair lookup
def test_the_earlier_frame_is_k_back_in_the_run_and_itself_at_its_start(records):
    gap_at = next(i for i in range(1, len(records)) if records[i].index != records[i - 1].index + 1)
    one, own = previous_frames(records, 1)
    assert own == 2  # the session's first frame and the one after the gap
    assert one[0] == 0 and one[gap_at] == gap_at
    assert one[1] == 0 and one[gap_at + 1] == gap_at and one[-1] == len(records) - 2
    three, own3 = previous_frames(records, 3)
    assert own3 == 6  # the run's first 3 and, the gap being 40 records, the 3 after it
    assert three[:4].tolist() == [0, 1, 2, 0]
    assert three[gap_at : gap_at + 4].tolist() == [gap_at, gap_at + 1, gap_at + 2, gap_at]
    # a split block: frames whose predecessor went to another block get themselves
    part = records[500:520]
    assert previous_frames(part, 1)[0][0] == 0
    with pytest.raises(ValueError, match="previous_frame_gap must be >= 1"):
        previous_frames(records, 0)


def test_training_data_pairs_frames_only_for_frame_networks(tmp_path):
    pre = ModelSpec().preprocessing
    args = ([sample_path()], LABELS, pre, SplitSpec(val_fraction=0.2, test_fraction=0.0))
    single = open_training_data(*args, cache_dir=tmp_path, progress=False)
    images, _ = dataset_tensors(single.train)
    assert isinstance(images, torch.Tensor) and images.shape[1] == 3
    data = open_training_data(
        *args, cache_dir=tmp_path, progress=False, temporal=Temporal(previous_frame_gap=2)
    )
    pairs, targets = dataset_tensors(data.train)
    assert isinstance(pairs, FramePairs) and pairs.shape == (len(targets), 6, *pre.input_shape[1:])
    records = data.train.records
    rows = torch.tensor([0, 1, 2, 10, len(records) - 1])
    batch = pairs[rows]
    for row, i in zip(batch, rows.tolist(), strict=True):
        back = next(
            (j for j, r in enumerate(records) if r.index == records[i].index - 2 and j < i), i
        )
        torch.testing.assert_close(row[:3], data.train.images[i])
        torch.testing.assert_close(row[3:], data.train.images[back])
    assert not torch.equal(batch[3, 3:], batch[3, :3])  # a real earlier frame, not a copy


# ------------------------------------------------------------------------------ augmentation
def test_a_mirror_flips_both_frames_and_the_colour_change_is_the_same_on_both():
    gen = torch.Generator().manual_seed(0)
    now = torch.randint(0, 255, (4, 3, 64, 128), dtype=torch.uint8)
    before = torch.randint(0, 255, (4, 3, 64, 128), dtype=torch.uint8)
    mirror = Augmentation(
        flip_prob=1.0, brightness=0, contrast=0, saturation=0, channel_gain=0, noise_std=0,
        blur_prob=0, shift_px=0, rotate_deg=0,
    )  # fmt: skip
    x, y = augment_batch(torch.cat([now, before], 1), torch.tensor([[0.3, 0.5]] * 4), LABELS, gen,
                         mirror)  # fmt: skip
    torch.testing.assert_close(x[:, :3], now.flip(3).float() / 255)
    torch.testing.assert_close(x[:, 3:], before.flip(3).float() / 255)
    torch.testing.assert_close(y, torch.tensor([[-0.3, 0.5]] * 4))
    # every change but pixel noise is drawn once per row: a frame paired with itself stays so
    alike = Augmentation(noise_std=0.0, blur_prob=0.5)
    x, _ = augment_batch(torch.cat([now, now], 1), torch.zeros(4, 2), LABELS, gen, alike)
    torch.testing.assert_close(x[:, 3:], x[:, :3])
    single, _ = augment_batch(now, torch.zeros(4, 2), LABELS, gen, alike)
    assert (single - x[:, :3]).abs().max() > 0.01  # (and it did change the frames)
    noisy, _ = augment_batch(torch.cat([now, now], 1), torch.zeros(4, 2), LABELS, gen)
    assert (noisy[:, 3:] - noisy[:, :3]).abs().max() > 0.01  # sensor noise: per frame


# ------------------------------------------------------------------------------- the network
def test_the_network_takes_both_frames_and_forms_the_difference():
    net, stack = _net(), _net(frame_input="stack")
    assert net.spec.input_shape == (6, 64, 128) and net.encoder.input_shape == (6, 64, 128)
    x = torch.rand(2, 3, 64, 128)
    same = net.normalize(torch.cat([x, x], 1))
    assert same[:, 3:].abs().max() == 0 and same[:, :3].abs().max() > 0.5
    moved = stack.normalize(torch.cat([x, x.roll(4, dims=3)], 1))
    torch.testing.assert_close(moved[:, 3:], stack.input_norm(x.roll(4, dims=3)))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 6, 64, 128\)"):
        net(x)
    with pytest.raises(ValueError, match="previous_action and previous_frame_gap"):
        Temporal(previous_action=True, previous_frame_gap=1)


def test_closed_loop_policy_feeds_the_frame_k_calls_back():
    net = _net(gap=2)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 64, 128, 3), dtype=np.uint8)
    act = network_policy(net)
    got = np.array([act(f) for f in frames])
    x = torch.from_numpy(frames).permute(0, 3, 1, 2)
    pairs = torch.cat([x, x[[0, 1, 0, 1]]], dim=1)  # calls 0, 1: themselves; then k = 2 back
    want = np.clip(predict(net, pairs)[:, :2], -1, 1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    alone = np.clip(predict(net, torch.cat([x[2:3]] * 2, 1))[0, :2], -1, 1)
    assert np.abs(want[2] - alone).max() > 1e-5  # the earlier frame changed the command
    np.testing.assert_allclose(network_policy(net)(frames[2]), alone, atol=1e-5)  # fresh state


# ------------------------------------------------------------------------- ONNX and the pilot
@pytest.fixture(scope="module")
def exported(tmp_path_factory, records):
    folder = tmp_path_factory.mktemp("frames-export")
    net = _net(gap=2)
    save_checkpoint(folder / "ckpt", net, ModelCard(spec=net.spec, trained_on={"test": True}))
    frames = load_frames([r.image_path for r in records[100:110]])  # a real sequence
    result = export_onnx(folder / "ckpt", folder / "pilot.onnx", check_frames=frames)
    return net, result, frames


def test_frame_onnx_equals_torch_over_a_real_sequence(exported):
    net, result, frames = exported
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", PREVIOUS_IMAGE_NAME]
    shuffled = frames[::-1].copy()  # any earlier frame, not only the check sequence's
    got = run_onnx(session, frames, previous_image=shuffled)
    pre = net.spec.preprocessing
    x = torch.from_numpy(np.stack([pre.apply(f).transpose(2, 0, 1) for f in frames]))
    y = torch.from_numpy(np.stack([pre.apply(f).transpose(2, 0, 1) for f in shuffled]))
    ref = predict(net, torch.cat([x, y], 1))
    np.testing.assert_allclose(got["steering"], ref[:, 0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(got["throttle"], ref[:, 1], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(earlier_frames(frames, 2)[[0, 1, 2, 9]], frames[[0, 1, 0, 7]])


def test_pilot_keeps_the_last_frames_and_forgets_them_on_reset(exported):
    net, result, frames = exported
    want = np.clip(predict(net, _stacked(frames, 2, net.spec.preprocessing))[:, :2], -1, 1)
    pilot = DonkeyPilot(result.onnx_path, max_pause_s=60.0)
    assert pilot.frame_gap == 2 and not pilot.temporal
    driven = np.array([pilot.run(f) for f in frames])
    np.testing.assert_allclose(driven, want, atol=1e-4)
    assert len(pilot.frames) == 2
    pilot.reset()
    assert len(pilot.frames) == 0
    alone = np.clip(predict(net, _stacked(frames[5:6], 2, net.spec.preprocessing))[0, :2], -1, 1)
    np.testing.assert_allclose(pilot.run(frames[5]), alone, atol=1e-4)  # itself again
    assert np.abs(alone - want[5]).max() > 1e-5  # (which differs from frame 3 as the earlier)
    # a pause longer than max_pause_s (the pilot was switched off) starts from itself again
    paused = DonkeyPilot(result.onnx_path, max_pause_s=1e-9)
    paused.run(frames[3])
    paused.run(frames[4])
    np.testing.assert_allclose(paused.run(frames[5]), alone, atol=1e-4)


def test_finetune_refuses_a_frame_network_in_one_line(tmp_path, capsys):
    from sim2real.experiments.cli import main

    net = _net()
    save_checkpoint(tmp_path / "ckpt", net, ModelCard(spec=net.spec, trained_on={"test": True}))
    code = main(["finetune", "--checkpoint", str(tmp_path / "ckpt"), "--data",
                 str(sample_path()), "--frames", "100", "--out", str(tmp_path / "ft")])  # fmt: skip
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "a temporal network" in line and "previous_frame_gap': 1" in line
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("gap", ["0", "two"])
def test_pilot_refuses_a_bad_frame_gap_in_the_metadata_in_one_line(exported, tmp_path, gap):
    import onnx

    from sim2real.transfer.pilot import META_FRAME_GAP

    _, result, _ = exported
    model = onnx.load(str(result.onnx_path))
    (entry,) = [p for p in model.metadata_props if p.key == META_FRAME_GAP]
    entry.value = gap
    edited = tmp_path / "edited.onnx"
    onnx.save(model, str(edited))
    with pytest.raises(ValueError, match=f"{META_FRAME_GAP} = '{gap}'") as error:
        DonkeyPilot(edited)
    assert "\n" not in str(error.value) and str(edited) in str(error.value)
