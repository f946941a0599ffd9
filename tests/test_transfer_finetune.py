"""Fine-tuning end to end on the shipped real sample: frozen means frozen, clear errors."""

import json

import pytest
import torch
from model_helpers import finetune_config, save_parent

from sim2real.agents.checkpoint import load_checkpoint, read_card, read_weights
from sim2real.experiments.cli import main
from sim2real.transfer.adapter import AdapterConfig
from sim2real.transfer.finetune import (
    FinetuneConfig,
    finetune,
    input_preprocessing,
    open_finetune_data,
)
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.splits import REAL_SPLIT
from sim2real.transfer.tub import TubWriter


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A 'pretrained' checkpoint with sim-only heads and non-trivial BatchNorm statistics."""
    return save_parent(tmp_path_factory.mktemp("parent"), {"sim": True})


@pytest.fixture
def tmp_cfg(parent, cache_dir):
    """config(**changes) for this test, sharing the module's frame cache."""
    return lambda **changes: config(parent, cache_dir, **changes)


def config(parent, cache_dir, **changes):
    return finetune_config(parent, cache_dir, 64, **changes)


def stage_tensors(weights, stages):
    return {k: v for k, v in weights.items() if any(f".{s}." in k for s in stages)}


def test_default_freeze_is_auto():
    assert FinetuneConfig().adapter.freeze == "auto"


def test_frozen_stages_come_out_bit_identical(parent, tmp_path, tmp_cfg):
    cfg = tmp_cfg(adapter=AdapterConfig(freeze=3, bn="adabn", lr_decay=0.5))
    result = finetune(cfg, tmp_path / "out")
    assert result.frozen == ["stage1", "stage2", "stage3"] and not result.cached_features
    before, after = read_weights(parent), read_weights(tmp_path / "out")
    frozen_weights = [
        k
        for k in stage_tensors(after, ["stage1", "stage2", "stage3"])
        if k.endswith(".0.weight") or k.endswith(".1.weight") or k.endswith(".1.bias")
    ]
    assert frozen_weights
    for k in frozen_weights:
        assert torch.equal(before[k], after[k]), k
    # AdaBN re-estimated the statistics of the frozen stages on real frames
    key = "encoder.stages.stage1.1.running_mean"
    assert not torch.equal(before[key], after[key])
    # the trainable stages and the head did train
    assert not torch.equal(
        before["encoder.stages.stage5.0.weight"], after["encoder.stages.stage5.0.weight"]
    )
    model, card = load_checkpoint(tmp_path / "out")
    assert model.spec.outputs == ["user/angle", "user/throttle"]
    step = card.history[-1]
    assert [h["step"] for h in card.history] == ["pretrain", "finetune"]
    assert step["adapter"]["bn"] == "adabn" and step["parent"] == str(parent.resolve())
    assert card.trained_on["frames"]["train"] == 64
    assert card.split == REAL_SPLIT and "split" not in card.trained_on
    assert card.trained_on["subsample"] == {"max_frames": None, "frames": 64, "seed": 0}
    assert set(card.metrics["val"]) == {"user/angle", "user/throttle"}
    assert (tmp_path / "out" / "config.yaml").is_file()


def test_all_frozen_trains_the_head_on_cached_features(parent, tmp_path, tmp_cfg):
    cfg = tmp_cfg(adapter=AdapterConfig(freeze="all"))
    result = finetune(cfg, tmp_path / "out")
    assert result.cached_features
    before, after = read_weights(parent), read_weights(tmp_path / "out")
    for k, v in after.items():
        if k.startswith("encoder."):
            assert torch.equal(before[k], v), k
    # the hidden layer and the kept steering row of the output layer both trained
    assert not torch.equal(before["head.1.weight"], after["head.1.weight"])
    assert not torch.equal(before["head.4.weight"][0], after["head.4.weight"][0])
    assert result.fits[0].val_metrics["user/angle"]["n"] > 0


def test_gradual_unfreezing_runs_phases_and_resume_repeats_nothing(parent, tmp_path, tmp_cfg):
    adapter = AdapterConfig(freeze=2, unfreeze_epochs=[1])
    cfg = tmp_cfg(adapter=adapter)
    result = finetune(cfg, tmp_path / "out")
    assert [len(f.history) for f in result.fits] == [2, 1]
    assert (tmp_path / "out" / "phase2" / "resume.pt").is_file()
    before, after = read_weights(parent), read_weights(tmp_path / "out")
    k1, k2 = "encoder.stages.stage1.0.weight", "encoder.stages.stage2.0.weight"
    assert torch.equal(before[k1], after[k1]) and not torch.equal(before[k2], after[k2])
    with pytest.raises(ValueError, match="already holds"):
        finetune(cfg, tmp_path / "out")
    again = finetune(cfg, tmp_path / "out", resume=True)
    assert all(f.history == g.history for f, g in zip(again.fits, result.fits, strict=True))
    assert torch.equal(read_weights(tmp_path / "out")[k2], after[k2])


def test_from_scratch_is_the_same_architecture_with_random_init(parent, tmp_path, tmp_cfg):
    result = finetune(tmp_cfg(from_scratch=True), tmp_path / "out")
    assert result.frozen == [] and result.card.history[-1]["step"] == "finetune_from_scratch"
    before, after = read_weights(parent), read_weights(tmp_path / "out")
    assert set(before) - {"head.4.weight", "head.4.bias"} == set(after) - {
        "head.4.weight",
        "head.4.bias",
    }
    assert not torch.equal(
        before["encoder.stages.stage1.0.weight"], after["encoder.stages.stage1.0.weight"]
    )


def test_clear_errors(parent, tmp_path, tmp_cfg):
    with pytest.raises(FileNotFoundError, match="not found"):
        finetune(tmp_cfg(checkpoint=str(tmp_path / "nothing")), tmp_path / "o1")
    with pytest.raises(FileNotFoundError, match="no such file"):
        finetune(tmp_cfg(data=[str(tmp_path / "none")]), tmp_path / "o2")
    empty = tmp_path / "empty_tub"
    with TubWriter(empty, ["cam/image_array", "user/angle"], ["image_array", "float"]):
        pass
    with pytest.raises(ValueError, match="no usable records"):
        finetune(tmp_cfg(data=[str(empty)]), tmp_path / "o3")
    adapter = AdapterConfig(outputs=["user/angle", "sim/cte"])
    with pytest.raises(ValueError, match=r"no record has label\(s\) \['sim/cte'\]"):
        finetune(tmp_cfg(adapter=adapter), tmp_path / "o4")
    with pytest.raises(ValueError, match="cannot freeze 9"):
        finetune(tmp_cfg(adapter=AdapterConfig(freeze=9)), tmp_path / "o5")
    # a checkpoint whose weights do not fit its card (mismatched sizes)
    broken = tmp_path / "broken"
    broken.mkdir()
    card = json.loads((parent / "model.json").read_text())
    card["spec"]["preprocessing"]["height"] = 96
    (broken / "model.json").write_text(json.dumps(card))
    (broken / "model.safetensors").write_bytes((parent / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="does not match the network"):
        finetune(tmp_cfg(checkpoint=str(broken)), tmp_path / "o6")


def test_finetune_command(parent, tmp_path, cache_dir, capsys):
    cfg = tmp_path / "ft.yaml"
    cfg.write_text(
        f"train: {{batch_size: 16, progress: false, tensorboard: false}}\ncache_dir: {cache_dir}\n"
    )
    args = [
        "finetune",
        "--checkpoint",
        str(parent),
        "--data",
        str(sample_path()),
        "--out",
        str(tmp_path / "out"),
        "--frames",
        "40",
        "--freeze",
        "all",
        "--epochs",
        "3",
        "--seed",
        "1",
        "--config",
        str(cfg),
    ]
    assert main(args) == 0
    assert "cached features" in capsys.readouterr().out
    assert main(args) == 2
    assert "already holds" in capsys.readouterr().err


def test_a_cross_validated_run_resumes_only_with_the_patience_and_epochs_it_picked_with(
    parent, tmp_path, tmp_cfg
):
    # the folds stop early by train.patience and run at most train.epochs: with another of
    # either the search would pick anew and the saved state go on under another pick
    from sim2real.agents.training import TrainConfig

    def cfg(freeze, **train):
        base = dict(epochs=2, batch_size=16, patience=0, progress=False, tensorboard=False)
        return tmp_cfg(adapter=AdapterConfig(freeze=freeze), train=TrainConfig(**{**base, **train}))

    out = tmp_path / "rung"
    finetune(cfg("head"), out)
    saved = (out / "config.yaml").read_text()
    for change in ({"patience": 3}, {"epochs": 3}):
        name, value = next(iter(change.items()))
        with pytest.raises(ValueError, match=rf"train.{name} \d -> {value}.*--freeze head"):
            finetune(cfg("head", **change), out, resume=True)
        assert (out / "config.yaml").read_text() == saved  # nothing written on refusal
    # stages named (no cross-validation): patience only decides when training stops
    fixed = tmp_path / "fixed"
    finetune(cfg(4, patience=1), fixed)
    again = finetune(cfg(4, patience=2), fixed, resume=True)
    assert again.fits[0].epochs_run >= 1


def test_crop_top_replaces_the_checkpoints_crop_in_what_the_network_sees_and_saves(
    parent, tmp_path, tmp_cfg
):
    cut = read_card(parent).spec.preprocessing.crop_top
    assert cut > 0  # the sample parent crops, so 0 is a change
    cfg = tmp_cfg(adapter=AdapterConfig(freeze="all"))
    seen = {
        crop: open_finetune_data(
            cfg,
            input_preprocessing(
                cfg.model_copy(update={"crop_top": crop}), read_card(parent).spec.preprocessing
            ),
        ).train[0][0]
        for crop in (None, 0)
    }
    assert not torch.equal(torch.as_tensor(seen[None]), torch.as_tensor(seen[0]))
    finetune(cfg.model_copy(update={"crop_top": 0}), tmp_path / "out")
    model, card = load_checkpoint(tmp_path / "out")
    assert card.spec.preprocessing.crop_top == 0 == model.spec.preprocessing.crop_top
    finetune(cfg, tmp_path / "kept")
    assert read_card(tmp_path / "kept").spec.preprocessing.crop_top == cut


def test_crop_top_on_the_command_line_and_its_bad_value(parent, tmp_path, cache_dir, capsys):
    args = ["finetune", "--checkpoint", str(parent), "--data", str(sample_path())]
    bad = [*args, "--out", str(tmp_path / "bad"), "--crop-top", "-1"]
    assert main(bad) == 2
    assert "crop_top" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    cut = [*args, "--out", str(tmp_path / "cut"), "--crop-top", "200", "--frames", "40"]
    assert main(cut) == 2
    assert "crop_top=200" in capsys.readouterr().err
    assert not (tmp_path / "cut").exists()
