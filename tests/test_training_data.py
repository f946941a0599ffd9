"""The one data path: the exact frames each command trains, validates and tests on, pinned on
the shipped sample tub (1000 usable records, indexes 40-1079 with 840-879 deleted), so a
change of split or subsample fails here; and the typed split in model cards, old and new."""

import json

import pytest
from model_helpers import finetune_config

from sim2real.agents.checkpoint import ModelCard, read_card
from sim2real.agents.model import ModelSpec
from sim2real.agents.pretrain import PretrainConfig
from sim2real.common.splitspec import SplitSpec
from sim2real.experiments.pretraining import open_sim_data
from sim2real.transfer.datasets import open_records
from sim2real.transfer.evaluate import card_split
from sim2real.transfer.finetune import open_finetune_data
from sim2real.transfer.sample_data import sample_path
from sim2real.transfer.splits import REAL_SPLIT, split_records
from sim2real.transfer.training_data import open_training_data

# measured with the code before open_training_data (open_real_data, open_sim_data +
# split_datasets, evaluate's DEFAULT_SPLIT): the same record indexes, part by part
FINETUNE_64_SEED_0 = {
    "train": [
        [107, 116],
        [178, 186],
        [255, 263],
        [323, 331],
        [413, 421],
        [479, 487],
        [568, 576],
    ],
    "val": [[701, 710], [778, 787]],
}
PRETRAIN_300_SEED_1 = {  # max_frames 300, val_fraction 0.2, gap 2
    "train_first": [[51, 60], [86, 95], [126, 135]],
    "train_last": [[796, 805], [821, 828]],
    "val": [[901, 910], [922, 931], [958, 967], [999, 1008], [1016, 1025], [1054, 1063]],
}


def runs(records):
    """[[first index, last index], ...] of the contiguous runs of record indexes."""
    out: list[list[int]] = []
    for record in records:
        if out and record.index == out[-1][1] + 1:
            out[-1][1] = record.index
        else:
            out.append([record.index, record.index])
    return out


def test_real_split_of_the_sample_is_the_one_evaluate_and_the_study_use():
    records = open_records([sample_path()]).records
    parts = split_records(records, REAL_SPLIT, seed=0)
    assert (runs(parts.train), runs(parts.val), runs(parts.test)) == (
        [[40, 649]],
        [[670, 819]],
        [[880, 1079]],
    )
    # a card fine-tuned with another split is scored on its own test block, any other card
    # (the shipped sim-pretrained one here) on the fine-tuning default
    assert card_split(read_card("pilotnet-recipe")) == REAL_SPLIT
    own = SplitSpec(val_fraction=0.1, test_fraction=0.3, gap=0)
    tuned = ModelCard(split=own, history=[{"step": "finetune"}])
    assert card_split(tuned) == own
    assert runs(split_records(records, own, seed=0).test) == [[740, 839], [880, 1079]]


def test_finetune_frames_are_the_pinned_blocks(tmp_path, cache_dir):
    config = finetune_config(tmp_path / "parent", cache_dir, 64)  # (only the data is read)
    data = open_finetune_data(config, ModelSpec().preprocessing, progress=False)
    assert {"train": runs(data.train.records), "val": runs(data.val.records)} == (
        FINETUNE_64_SEED_0
    )
    assert runs(data.parts.test) == [[880, 1079]]  # the same test block whatever `frames`
    assert data.trained_on["frames"] == {"train": 64, "val": 20, "test": 200}
    assert data.split == REAL_SPLIT
    other_seed = config.model_copy(update={"train": config.train.model_copy(update={"seed": 3})})
    moved = open_finetune_data(other_seed, ModelSpec().preprocessing, progress=False)
    assert runs(moved.train.records)[0] == [104, 113]


def test_pretrain_frames_are_the_pinned_blocks(cache_dir):
    config = PretrainConfig(
        data=[str(sample_path())],
        cache_dir=str(cache_dir),
        max_frames=300,
        split={"val_fraction": 0.2, "gap": 2},
        model={"outputs": ["user/angle", "user/throttle"]},
        train={"seed": 1, "progress": False},
    )
    data = open_sim_data(config)
    train = runs(data.train.records)
    assert train[:3] == PRETRAIN_300_SEED_1["train_first"]
    assert train[-2:] == PRETRAIN_300_SEED_1["train_last"]
    assert runs(data.val.records) == PRETRAIN_300_SEED_1["val"]
    assert data.trained_on["frames"] == {"train": 238, "val": 60, "test": 0}
    assert data.randomization is None  # a real tub records none


def test_open_training_data_names_the_data_in_its_errors(cache_dir):
    sample = str(sample_path())
    pre = ModelSpec().preprocessing
    with pytest.raises(ValueError, match=r"no record has label\(s\) \['sim/cte'\]"):
        open_training_data([sample], ["user/angle", "sim/cte"], pre, REAL_SPLIT)
    with pytest.raises(ValueError, match="usi-track-a-sample.*at least 2"):
        open_training_data([sample], ["user/angle"], pre, SplitSpec(kind="episodes"))
    with pytest.raises(ValueError, match="no data given"):
        open_training_data([], ["user/angle"], pre, REAL_SPLIT)


def test_cards_of_earlier_versions_load_with_a_typed_split(tmp_path):
    shipped = read_card("pilotnet-recipe")
    assert shipped.split == SplitSpec(kind="episodes", val_fraction=0.15)
    assert "split" not in shipped.trained_on
    old = {  # a fine-tuned card as the code before SplitSpec wrote it
        "trained_on": {
            "frames": {"train": 64, "val": 20, "test_held_out": 200},
            "split": {
                "kind": "time_block",
                "val_fraction": 0.1,
                "test_fraction": 0.25,
                "gap": 5,
                "subsample_frames": 64,
                "subsample_seed": 2,
            },
        },
        "history": [{"step": "finetune"}],
    }
    path = tmp_path / "model.json"
    path.write_text(json.dumps(old))
    card = read_card(tmp_path)
    assert card.split == SplitSpec(val_fraction=0.1, test_fraction=0.25, gap=5)
    assert card.trained_on["subsample"] == {"frames": 64, "seed": 2}
    assert card_split(card).test_fraction == 0.25
    # and what the card writes now reads back the same
    again = ModelCard.model_validate(card.model_dump(mode="json"))
    assert again.split == card.split and again.trained_on == card.trained_on


def test_finetune_config_composes_the_split_and_reads_the_flat_keys_of_earlier_versions():
    from sim2real.transfer.finetune import FinetuneConfig

    assert FinetuneConfig().split == REAL_SPLIT
    old = FinetuneConfig(val_fraction=0.1, test_fraction=0.3, split_gap=0)  # as YAML had them
    assert old.split == SplitSpec(val_fraction=0.1, test_fraction=0.3, gap=0)
    assert FinetuneConfig(split={"gap": 5}).split.test_fraction == REAL_SPLIT.test_fraction
    with pytest.raises(ValueError, match="leaves nothing to train on"):
        FinetuneConfig(split={"val_fraction": 0.5, "test_fraction": 0.5})


def test_the_card_records_that_the_split_was_cut_with_the_pilots_frames(cache_dir):
    # evaluate reads it to cut the same blocks (test_transfer_evaluate)
    sample, pre = [str(sample_path())], ModelSpec().preprocessing
    kw = {"frames": 40, "cache_dir": cache_dir, "progress": False}
    plain = open_training_data(sample, ["user/angle"], pre, REAL_SPLIT, **kw)
    pilot = open_training_data(sample, ["user/angle"], pre, REAL_SPLIT, include_pilot=True, **kw)
    assert "include_pilot" not in plain.trained_on and pilot.trained_on["include_pilot"] is True
