"""domain_gap on a real network, the freeze rule, and `sim2real gap` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.experiments.cli import main
from sim2real.experiments.domain_gap import (
    FreezeRule,
    domain_gap,
    format_gap_table,
    measure_gap,
    pick_indices,
    random_model,
    recommend_freeze,
    stage_activations,
)
from sim2real.transfer.sample_data import sample_path


@pytest.fixture(scope="module")
def model():
    return random_model("pilotnet", seed=0)


def noise_images(n: int, seed: int, low: int = 0, high: int = 256) -> torch.Tensor:
    """(n, 3, 64, 128) uint8 uniform in [low, high), from an explicit generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, 64, 128), generator=generator, dtype=torch.uint8)


def test_stage_activations_are_pooled_stage_outputs(model):
    images = noise_images(10, seed=1)
    model.train()
    acts = stage_activations(model, images, batch_size=3)
    assert model.training, "the caller's mode is restored"
    assert list(acts) == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    assert [a.shape for a in acts.values()] == [(10, 24), (10, 32), (10, 64), (10, 64), (10, 64)]
    model.eval()
    with torch.no_grad():
        direct = model.encoder.forward_stages(model.normalize(images.float() / 255))
    for name, out in direct.items():
        np.testing.assert_allclose(
            acts[name], out.mean(dim=(2, 3)).double().numpy(), rtol=1e-5, atol=1e-7
        )


def test_stage_activations_reject_wrong_input(model):
    with pytest.raises(ValueError, match="uint8"):
        stage_activations(model, noise_images(2, 0).float())
    with pytest.raises(ValueError, match="shape"):
        stage_activations(model, torch.zeros(2, 3, 32, 32, dtype=torch.uint8))


def test_pick_indices_sorted_distinct_and_reproducible():
    a = pick_indices(100, 10, np.random.default_rng(3))
    b = pick_indices(100, 10, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 10 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(pick_indices(5, 10, np.random.default_rng(0)), np.arange(5))


def test_domain_gap_zero_for_same_frames_and_large_for_shifted(model):
    images = noise_images(40, seed=2)
    same = domain_gap(model, images, images, max_frames=None, seed=0, reference=model)
    assert list(same) == list(model.encoder.stage_names)
    for entry in same.values():
        assert entry["frechet"] == pytest.approx(0.0, abs=1e-6)
        assert abs(entry["mmd2"]) < 0.05
        assert entry["proxy_a_distance"] == pytest.approx(0.0, abs=1e-9)
        assert entry["cka_vs_reference"] == pytest.approx(1.0, abs=1e-9)
    dark, bright = noise_images(40, seed=3, high=100), noise_images(40, seed=4, low=156)
    shifted = domain_gap(model, dark, bright, max_frames=None, seed=0)
    for name, entry in shifted.items():
        assert entry["proxy_a_distance"] == pytest.approx(2.0), name
        assert entry["mmd2"] > 0.5
        assert entry["frechet"] > 0
        assert "cka_vs_reference" not in entry


def test_domain_gap_caps_frames(model):
    gap = domain_gap(model, noise_images(30, 5), noise_images(9, 6), max_frames=8, seed=1)
    assert set(gap) == set(model.encoder.stage_names)
    with pytest.raises(ValueError, match="at least 4 frames"):
        domain_gap(model, noise_images(30, 5), noise_images(3, 6), max_frames=8, seed=1)


def gap_with(pads: list[float]) -> dict[str, dict[str, float]]:
    return {f"stage{i + 1}": {"proxy_a_distance": p} for i, p in enumerate(pads)}


@pytest.mark.parametrize(
    ("n_real", "pads", "scarce_freeze", "freeze", "regime"),
    [
        (100, [1.8, 0.5, 0.5, 0.5, 0.5], "all", 5, "scarce"),  # default: head only
        (100, [0.2, 0.5, 0.9, 1.5, 1.9], "half", 3, "scarce"),  # similar prefix 3 > ceil(5/2)
        (100, [1.8, 0.5, 0.5, 0.5, 0.5], "half", 3, "scarce"),  # nothing similar: lower half
        (100, [0.1, 0.1, 0.1, 0.1, 0.1], "half", 5, "scarce"),  # all similar: head only
        (1000, [0.2, 0.5, 1.2, 0.1, 0.1], "all", 2, "moderate"),  # prefix stops at a gap
        (1000, [1.2, 0.1, 0.1, 0.1, 0.1], "all", 0, "moderate"),
        (5000, [0.1, 0.1, 0.1, 0.1, 0.1], "all", 0, "plentiful"),
    ],
)
def test_freeze_rule(n_real, pads, scarce_freeze, freeze, regime):
    advice = recommend_freeze(n_real, gap_with(pads), FreezeRule(scarce_freeze=scarce_freeze))
    assert (advice.freeze, advice.regime) == (freeze, regime)
    assert advice.stages == [f"stage{i + 1}" for i in range(freeze)]
    assert ("head only" in advice.rule) == (scarce_freeze == "all")


def test_freeze_rule_thresholds_are_configurable():
    pads = [0.6, 0.6, 1.5, 1.5]
    assert recommend_freeze(500, gap_with(pads)).freeze == 2
    strict = FreezeRule(max_similar_pad=0.5)
    assert recommend_freeze(500, gap_with(pads), strict).freeze == 0
    with pytest.raises(ValueError, match="plentiful_frames"):
        FreezeRule(scarce_frames=500, plentiful_frames=100)


def test_table_shows_stages_numbers_and_rule():
    gap = {
        name: {**entry, "channels": 8, "mmd2": 0.1, "frechet": 2.0, "domain_error": 0.3}
        for name, entry in gap_with([0.4, 1.5]).items()
    }
    text = format_gap_table(gap, recommend_freeze(100, gap))
    assert "stage2" in text and "0.400" in text and "1.500" in text
    assert "freeze 2 of 2 stages (stage1, stage2)" in text and "scarce" in text
    assert "rule:" in text


@pytest.fixture(scope="module")
def sim_tub(tmp_path_factory):
    simulate_module = pytest.importorskip("sim2real.experiments.simulate")
    pytest.importorskip("sim2real.envs.recording", reason="ENVS recording not present")
    out = tmp_path_factory.mktemp("gap") / "sim"
    config = simulate_module.SimulateConfig(frames=40, chunk_frames=20, seed=1)
    return simulate_module.simulate(out, config, progress=False)


def test_cli_gap_on_shipped_sample(sim_tub, tmp_path, capsys):
    out = tmp_path / "gap.json"
    args = ["gap", "--architecture", "pilotnet", "--sim", str(sim_tub)]
    args += ["--real", str(sample_path()), "--frames", "40", "--json", str(out)]
    args += ["--no-progress", "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert list(result["stages"]) == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    assert result["frames"] == {
        "sim_used": 40,
        "sim_available": 40,
        "real_used": 40,
        "real_available": 1000,
    }
    advice = result["recommendation"]
    assert advice["n_real"] == 1000 and advice["regime"] == "moderate"
    assert FreezeRule(**result["freeze_rule"]) == FreezeRule()
    assert f"freeze {advice['freeze']} of 5 stages" in printed
    for name, entry in result["stages"].items():
        assert name in printed
        assert 0.0 <= entry["domain_error"] <= 1.0
        assert entry["mmd2"] > 0.0  # sim and real frames differ at every stage
    assert not list(tmp_path.glob("*.tmp*"))


def test_cli_gap_with_checkpoint_and_reference(sim_tub, tmp_path, capsys):
    model = random_model("pilotnet", seed=2)
    ckpt = save_checkpoint(tmp_path / "ckpt", model, ModelCard(spec=model.spec))
    out = tmp_path / "gap.json"
    args = ["gap", "--checkpoint", str(ckpt), "--reference", str(ckpt), "--sim", str(sim_tub)]
    args += ["--real", str(sample_path()), "--frames", "24", "--n-real", "100"]
    args += ["--json", str(out), "--no-progress", "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["recommendation"]["regime"] == "scarce"
    assert result["recommendation"]["freeze"] >= 3
    for entry in result["stages"].values():
        assert entry["cka_vs_reference"] == pytest.approx(1.0, abs=1e-9)
    assert "CKA(ref)" in capsys.readouterr().out


def test_real_vs_itself_is_closer_than_sim_vs_real(sim_tub, model, tmp_path):
    sample, cache = sample_path(), tmp_path / "cache"
    kwargs = {"max_frames": 40, "seed": 0, "cache_dir": cache, "progress": False}
    itself = measure_gap(model, [sample], [sample], **kwargs)
    across = measure_gap(model, [sim_tub], [sample], **kwargs)
    for name in model.encoder.stage_names:
        # two independent draws of the same recording, not the same frames twice
        assert itself["stages"][name]["frechet"] > 0
        assert itself["stages"][name]["mmd2"] < across["stages"][name]["mmd2"]


def test_cli_gap_reports_user_errors(tmp_path, capsys):
    args = ["gap", "--checkpoint", str(tmp_path / "nope"), "--sim", str(tmp_path)]
    args += ["--real", str(sample_path())]
    assert main(args) == 2
    assert "nope" in capsys.readouterr().err
    args = ["gap", "--architecture", "pilotnet", "--sim", str(tmp_path / "missing")]
    args += ["--real", str(sample_path()), "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 2
    assert "missing" in capsys.readouterr().err
