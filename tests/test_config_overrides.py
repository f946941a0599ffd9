"""`--set key.path=value` and the named options: one override path onto every command's config."""

from __future__ import annotations

import pytest
import yaml
from test_pretrain_cli import make_sim_run, write_config

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.common.config import ConfigError, StrictModel, load_config, parse_assignment
from sim2real.experiments.cli import build_parser, main
from sim2real.experiments.config_options import config_from_args


class Inner(StrictModel):
    lr: float = 1e-3
    epochs: int = 6


class Outer(StrictModel):
    name: str = "x"
    data: list[str] = []
    train: Inner = Inner()


def test_overrides_merge_into_the_file_and_are_validated_once(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: file\ntrain:\n  epochs: 2\n")
    config = load_config(Outer, path, {"train.lr": 0.5, "data": ["a", tmp_path]})
    assert config.name == "file" and config.train.epochs == 2  # the file's other fields kept
    assert config.train.lr == 0.5
    assert config.data == ["a", str(tmp_path)]  # paths as strings, as a YAML file holds them
    merged = load_config(Outer, path, {"train": {"lr": 0.25}})  # a mapping merges
    assert (merged.train.epochs, merged.train.lr) == (2, 0.25)
    assert load_config(Outer, None, {"train.epochs": 9}).train.epochs == 9  # no file: defaults


def test_assignment_values_are_yaml():
    assert parse_assignment("train.lr=3e-4") == ("train.lr", "3e-4")  # YAML 1.1: a string
    assert parse_assignment("train.lr=0.0003") == ("train.lr", 0.0003)
    assert parse_assignment("data=[a, b]") == ("data", ["a", "b"])
    assert parse_assignment("name='5'") == ("name", "5")
    assert parse_assignment("align=null") == ("align", None)
    for bad in ("train.epochs", "=3", "train..lr=1", "data=[a"):
        with pytest.raises(ConfigError, match="--set"):
            parse_assignment(bad)


def test_errors_name_the_override_or_the_file_and_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: many\n")
    with pytest.raises(ConfigError) as err:
        load_config(Outer, path, {"train.lr": "fast"}, given={"train.lr": "--lr 'fast'"})
    message = str(err.value)
    assert "\n" not in message
    assert "--lr 'fast': Input should be a valid number" in message
    assert "(config field Outer.train.lr)" in message
    assert f"{path}: train.epochs: Input should be a valid integer" in message
    with pytest.raises(ConfigError, match=r"train.epoch=3: Extra inputs .*Outer.train.epoch\)"):
        load_config(Outer, None, {"train.epoch": 3})


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_set_and_named_options_change_the_saved_config_of_a_run(tmp_path, capsys):
    tub = make_sim_run(tmp_path / "sim", n=60)
    config = write_config(tmp_path / "p.yaml", tmp_path / "cache", tensorboard=False)
    out = tmp_path / "run"
    code, _, err = run_cli(
        capsys,
        *("pretrain", "--data", str(tub), "--out", str(out), "--config", str(config)),
        *("--epochs", "1", "--set", "train.lr=0.0005", "--set", "model.hidden=8"),
    )
    assert code == 0, err
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["lr"] == 0.0005 and saved["train"]["epochs"] == 1
    assert saved["train"]["batch_size"] == 32  # from the file
    assert saved["data"] == [str(tub)]
    model, card = load_checkpoint(out)
    assert model.spec.hidden == 8 and card.metrics["epochs_run"] == 1  # and it trained so


def test_set_comes_after_the_named_options(capsys):
    code, out, _ = run_cli(
        capsys, "pretrain", "--print-config", "--epochs", "2", "--set", "train.epochs=3"
    )
    assert code == 0
    assert yaml.safe_load(out)["train"]["epochs"] == 3


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--set", "train.epoch=3"], ["--set train.epoch=3", "Extra inputs are not permitted"]),
        (["--set", "train.epochs=many"], ["--set train.epochs=many", "valid integer"]),
        (["--set", "epochs"], ["--set epochs", "expected KEY=VALUE"]),
        (["--epochs", "0"], ["--epochs 0", "greater than or equal to 1"]),
    ],
)
def test_bad_key_or_value_is_a_one_line_error(capsys, args, expect):
    code, out, err = run_cli(capsys, "pretrain", "--print-config", *args)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sim2real pretrain: error: ")
    for text in expect:
        assert text in lines[0]
    if "=" in args[-1] or args[0] == "--epochs":
        assert "(config field PretrainConfig.train.epoch" in lines[0]


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


def test_finetune_shortcuts_map_onto_the_config_fields(tmp_path):
    from sim2real.transfer.finetune import FinetuneConfig

    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump({"cotrain": {"sim": ["s1"], "ratio": 0.3}}))
    base = ("finetune", "--out", str(tmp_path / "o"), "--config", str(path))
    config = config_from_args(
        FinetuneConfig,
        parse(*base, "--freeze", "stage1,stage2", "--folds", "3", "--cotrain-sim", "--seed", "4"),
    )
    assert config.adapter.freeze == ["stage1", "stage2"]
    assert config.ladder.folds == 3 and config.train.seed == 4
    assert config.cotrain.sim == ["s1"] and config.cotrain.ratio == 0.3  # bare flag: file's tubs
    config = config_from_args(
        FinetuneConfig, parse(*base, "--freeze", "rule", "--cotrain-sim", "a", "--from-scratch")
    )
    assert config.adapter.freeze == "auto"  # rule: decided later, from the data
    assert config.cotrain.sim == ["a"] and config.from_scratch
    with pytest.raises(ConfigError, match=r"--folds 1: .*FinetuneConfig.ladder.folds"):
        config_from_args(FinetuneConfig, parse(*base, "--folds", "1"))


def test_experiment_shortcuts_set_the_study_runtime(tmp_path):
    from sim2real.experiments.study import StudyConfig, packaged_config

    args = parse(
        "experiment", "quickstart", "--out", str(tmp_path), "--no-progress", "--num-threads", "2"
    )
    config = config_from_args(StudyConfig, args, packaged_config("quickstart"))
    assert config.runtime.progress is False and config.runtime.num_threads == 2
    default = config_from_args(
        StudyConfig, parse("experiment", "quickstart", "--out", "o"), packaged_config("quickstart")
    )
    assert default.runtime.progress is True


def field_exists(cls: type, key: str) -> bool:
    """Whether the dotted `key` names a field of the pydantic model `cls` (through nested,
    possibly optional, models)."""
    from typing import get_args

    from pydantic import BaseModel

    for part in key.split("."):
        if cls is None or part not in cls.model_fields:
            return False
        annotation = cls.model_fields[part].annotation
        options = [annotation, *get_args(annotation)]
        cls = next((t for t in options if isinstance(t, type) and issubclass(t, BaseModel)), None)
    return True


def test_every_named_option_sets_a_field_of_its_command_config():
    from sim2real.agents.policy import PolicyConfig
    from sim2real.agents.pretrain import PretrainConfig
    from sim2real.experiments.dagger import DaggerConfig
    from sim2real.experiments.fit_sim import FitSimConfig
    from sim2real.experiments.simulate import SimulateConfig
    from sim2real.experiments.study import StudyConfig
    from sim2real.transfer.adapt import AdaptConfig
    from sim2real.transfer.finetune import FinetuneConfig

    configs = {
        "adapt": AdaptConfig,
        "finetune": FinetuneConfig,
        "pretrain": PretrainConfig,
        "simulate": SimulateConfig,
        "train-policy": PolicyConfig,
        "dagger": DaggerConfig,
        "experiment": StudyConfig,
        "fit-sim": FitSimConfig,
    }
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    with_shortcuts = {
        name: parser.get_default("shortcuts")
        for name, parser in subparsers.choices.items()
        if parser.get_default("shortcuts")
    }
    assert set(with_shortcuts) == set(configs)
    for name, shortcuts in with_shortcuts.items():
        for shortcut in shortcuts.values():
            assert field_exists(configs[name], shortcut.key), (name, shortcut)
    assert not field_exists(FinetuneConfig, "train.epoch")  # the check can fail


def test_a_field_of_a_nested_default_keeps_the_other_defaults_of_that_config(tmp_path):
    from sim2real.transfer.finetune import FinetuneConfig

    default = FinetuneConfig().train  # fine-tuning's own defaults, not TrainConfig's
    for extra in (["--epochs", "5"], ["--set", "train={epochs: 5}"]):
        config = config_from_args(FinetuneConfig, parse("finetune", "--out", "o", *extra))
        assert config.train.epochs == 5
        assert config.train.model_dump(exclude={"epochs"}) == default.model_dump(exclude={"epochs"})
    assert default.batch_size != 128  # (TrainConfig's): so the check above can fail
