"""A corpus of bad inputs, each run through every command that reads it.

Every case builds a small corrupted dataset, checkpoint, run folder or config in its own
folder, runs `sim2real.experiments.cli.main` in-process and asserts what a careful user is
owed: exit code 2, one `sim2real CMD: error: ...` line that names the file or field, no
traceback, the input's bytes unchanged, and no output left behind.
"""

# ruff: noqa: E501 (the table of cases reads best one case per line)
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from test_pretrain_cli import make_sim_run, write_config
from test_untrusted_files import Payload, plant_sb3_zip

from sim2real.agents.checkpoint import ModelCard, save_checkpoint
from sim2real.agents.model import DrivingNet, ModelSpec
from sim2real.experiments.cli import main
from sim2real.transfer.tub import TubWriter

INPUTS = ["cam/image_array", "user/angle", "user/throttle", "sim/cte", "sim/heading_error"]
TYPES = ["image_array", "float", "float", "float", "float"]
OUT = "OUT"  # every case's output path; it must not exist after the failure
POLICY = {
    "total_timesteps": 16,
    "n_envs": 1,
    "vec_env": "dummy",
    "architecture": "pilotnet",
    "env": {"max_episode_steps": 20},
    "eval": {"freq": 0, "episodes": 1, "max_steps": 5},
    "ppo": {"n_steps": 16, "batch_size": 8, "n_epochs": 1},
}


# -- builders of good inputs ------------------------------------------------------------------


def tub(path: Path, n: int = 90, size=(120, 160), gray: bool = False) -> Path:
    """A real-looking tub of `n` frames (H, W = `size`), colour unless `gray`."""
    rng = np.random.default_rng(0)
    with TubWriter(path, INPUTS, TYPES) as writer:
        for i in range(n):
            image = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
            if gray:
                ok, jpeg = cv2.imencode(".jpg", image[..., 0])
                image = jpeg.tobytes()
            labels = {"user/angle": float(np.sin(i)), "user/throttle": 0.3}
            writer.write({**labels, "sim/cte": 0.1, "sim/heading_error": 0.0}, image)
    return path


def checkpoint(path: Path, hidden: int = 8) -> Path:
    spec = ModelSpec(
        architecture="pilotnet", hidden=hidden, outputs=["user/angle", "user/throttle"]
    )
    torch.manual_seed(0)
    card = ModelCard(spec=spec, trained_on={"source_size": [120, 160]})
    save_checkpoint(path, DrivingNet(spec).eval(), card)
    return path


def csv_folder(path: Path, rows: list[str], header: str = "image,user/angle") -> Path:
    path.mkdir(parents=True)
    (path / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return path


def images(path: Path) -> list[Path]:
    return sorted((path / "images").glob("*.jpg"))


def edit_manifest(path: Path, edit: Callable[[list], None]) -> None:
    lines = [json.loads(x) for x in (path / "manifest.json").read_text().splitlines()]
    edit(lines)
    (path / "manifest.json").write_text("".join(json.dumps(x) + "\n" for x in lines))


# -- the corrupted datasets -------------------------------------------------------------------


def no_manifest(d):
    (tub(d / "data") / "manifest.json").unlink()


def manifest_not_json(d):
    (tub(d / "data") / "manifest.json").write_text("{not json\n")


def manifest_three_lines(d):
    path = tub(d / "data") / "manifest.json"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:3]))


def all_deleted(d):
    edit_manifest(tub(d / "data"), lambda lines: lines[4].update(deleted_indexes=list(range(90))))


def all_images_garbage(d):
    for image in images(tub(d / "data")):
        image.write_bytes(b"not a jpeg")


def most_images_garbage(d):
    for image in images(tub(d / "data"))[:60]:
        image.write_bytes(b"\xff\xd8 cut short")


def images_missing(d):
    shutil.rmtree(tub(d / "data") / "images")


def labels_out_of_range(d):
    path = tub(d / "data")
    for catalog in path.glob("*.catalog"):
        records = [json.loads(line) for line in catalog.read_text().splitlines()]
        lines = [json.dumps({**r, "user/angle": 9.0}) + "\n" for r in records]
        catalog.write_text("".join(lines))
        sidecar = catalog.with_name(catalog.name + "_manifest")
        meta = json.loads(sidecar.read_text())
        meta["line_lengths"] = [len(line) for line in lines]
        sidecar.write_text(json.dumps(meta))


def catalog_garbled(d):
    path = tub(d / "data")
    for catalog in path.glob("*.catalog"):
        catalog.write_bytes(b"\x00\x01 garbage\n" * 90)


def tub_v1(d):
    (d / "data").mkdir()
    (d / "data" / "meta.json").write_text('{"inputs": [], "types": []}')
    (d / "data" / "record_1.json").write_text("{}")


def empty_folder(d):
    (d / "data").mkdir()


def not_there(d):
    pass  # d / "data" does not exist


def text_file(d):
    (d / "data").write_text("hello")


def csv_missing_images(d):
    csv_folder(d / "data", ["frames/a.jpg,0.1", "frames/b.jpg,0.2"])


def csv_no_image_column(d):
    csv_folder(d / "data", ["0.1", "0.2"], header="user/angle")


def csv_empty(d):
    (d / "data").mkdir()
    (d / "data" / "labels.csv").write_text("")


def frames_320x240(d):
    tub(d / "data", size=(240, 320))


def frames_grayscale(d):
    tub(d / "data", gray=True)


# -- the corrupted checkpoints ----------------------------------------------------------------


def ck_missing(d):
    pass


def ck_card_not_json(d):
    (checkpoint(d / "ck") / "model.json").write_text("{oops")


def ck_card_is_list(d):
    (checkpoint(d / "ck") / "model.json").write_text("[1, 2]")


def ck_card_bad_architecture(d):
    path = checkpoint(d / "ck") / "model.json"
    card = json.loads(path.read_text())
    card["spec"]["architecture"] = "resnet9000"
    path.write_text(json.dumps(card))


def ck_card_newer_format(d):
    path = checkpoint(d / "ck") / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": 99}))


def ck_no_card(d):
    (checkpoint(d / "ck") / "model.json").unlink()


def ck_no_weights(d):
    (checkpoint(d / "ck") / "model.safetensors").unlink()


def ck_weights_truncated(d):
    path = checkpoint(d / "ck") / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])


def ck_weights_other_shapes(d):
    checkpoint(d / "other", hidden=4)
    checkpoint(d / "ck")
    shutil.copy(d / "other" / "model.safetensors", d / "ck" / "model.safetensors")
    shutil.rmtree(d / "other")


def ck_weights_pickle(d):
    import pickle

    path = checkpoint(d / "ck") / "model.safetensors"
    path.write_bytes(pickle.dumps(Payload(d / "PWNED")))


def ck_is_a_file(d):
    checkpoint(d / "ck")


# -- cases ------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    build: Callable[[Path], None]
    args: list[str]
    expect: list[str]
    """strings the error line must hold (the file or field it names)"""
    needs: tuple[str, ...] = ()
    """good inputs the case also uses: "ck" (a checkpoint in GOOD/ck), "tub" (GOOD/tub)"""


def dataset_cases(name, build, expect, commands=("inspect", "evaluate", "finetune", "pretrain")):
    argv = {
        "inspect": ["data", "inspect", "data"],
        "evaluate": ["evaluate", "--checkpoint", "GOOD/ck", "--data", "data", "--n-boot", "10"],
        "finetune": ["finetune", "--checkpoint", "GOOD/ck", "--data", "data", "--out", OUT],
        "pretrain": ["pretrain", "--data", "data", "--out", OUT],
        "gap": ["gap", "--checkpoint", "GOOD/ck", "--sim", "GOOD/tub", "--real", "data"],
    }
    return [Case(f"{name}-{cmd}", build, argv[cmd], expect, ("ck", "tub")) for cmd in commands]


def checkpoint_cases(name, build, expect, path="ck"):
    argv = {
        "evaluate": ["evaluate", "--checkpoint", path, "--data", "GOOD/tub", "--n-boot", "10"],
        "finetune": ["finetune", "--checkpoint", path, "--data", "GOOD/tub", "--out", OUT],
        "export": ["export", "--checkpoint", path, "--onnx", f"{OUT}.onnx"],
        "gap": ["gap", "--checkpoint", path, "--sim", "GOOD/tub", "--real", "GOOD/tub"],
    }
    return [Case(f"{name}-{cmd}", build, args, expect, ("tub",)) for cmd, args in argv.items()]


def config_file(text: bytes | str) -> Callable[[Path], None]:
    def build(d):
        data = text.encode() if isinstance(text, str) else text
        (d / "config.yaml").write_bytes(data)

    return build


def nothing(d):
    pass


FT = ["finetune", "--checkpoint", "GOOD/ck", "--data", "GOOD/tub", "--out", OUT]
PT = ["pretrain", "--data", "GOOD/tub", "--out", OUT]

CASES = [
    *dataset_cases("no-manifest", no_manifest, ["manifest.json is missing"]),
    *dataset_cases("manifest-not-json", manifest_not_json, ["manifest.json"]),
    *dataset_cases("manifest-three-lines", manifest_three_lines, ["manifest.json", "5 JSON"]),
    *dataset_cases("all-deleted", all_deleted, ["data", "no usable records", "deleted 90"]),
    # (only inspect decodes every image first; training and evaluation find bad images as
    # they decode the part they need, and stop once max_bad_fraction is passed)
    *dataset_cases("all-images-garbage", all_images_garbage, ["_cam_image_array_.jpg", "decod", "repair"]),
    *dataset_cases("most-images-garbage", most_images_garbage, ["_cam_image_array_.jpg", "decod", "repair"], ("evaluate", "finetune", "pretrain")),
    *dataset_cases("images-missing", images_missing, ["no usable records", "missing"]),
    *dataset_cases("labels-out-of-range", labels_out_of_range, ["no usable records", "user/angle=9.0 outside"]),
    *dataset_cases("catalog-garbled", catalog_garbled, ["no usable records", "catalog"]),
    *dataset_cases("tub-v1", tub_v1, ["tub v1 is not supported"]),
    *dataset_cases("empty-folder", empty_folder, ["data: not a dataset"]),
    *dataset_cases("not-there", not_there, ["data", "no such file or folder"]),
    *dataset_cases("text-file", text_file, ["data: not a dataset"]),
    *dataset_cases("csv-missing-images", csv_missing_images, ["frames/a.jpg", "missing"]),
    *dataset_cases("csv-no-image-column", csv_no_image_column, ["labels.csv", "image column"]),
    *dataset_cases("csv-empty", csv_empty, ["labels.csv", "empty CSV"]),
    *dataset_cases("frames-320x240", frames_320x240, ["320x240", "160x120"], ("evaluate", "finetune")),
    *dataset_cases("grayscale", frames_grayscale, ["grayscale"], ("evaluate", "finetune")),
    *dataset_cases("real-data-for-gap", all_images_garbage, ["decod"], ("gap",)),
    *checkpoint_cases("ck-missing", ck_missing, ["ck", "not found"]),
    *checkpoint_cases("ck-card-not-json", ck_card_not_json, ["model.json", "not valid JSON"]),
    *checkpoint_cases("ck-card-is-list", ck_card_is_list, ["model.json", "JSON object"]),
    *checkpoint_cases("ck-bad-arch", ck_card_bad_architecture, ["model.json", "resnet9000"]),
    *checkpoint_cases("ck-newer-format", ck_card_newer_format, ["format_version 99"]),
    *checkpoint_cases("ck-no-card", ck_no_card, ["model.json not found"]),
    *checkpoint_cases("ck-no-weights", ck_no_weights, ["model.safetensors not found"]),
    *checkpoint_cases("ck-truncated", ck_weights_truncated, ["model.safetensors", "readable"]),
    *checkpoint_cases("ck-other-shapes", ck_weights_other_shapes, ["model.safetensors", "shape"]),
    *checkpoint_cases("ck-pickle", ck_weights_pickle, ["model.safetensors", "readable"]),
    *checkpoint_cases("ck-is-a-file", ck_is_a_file, ["model.json is a file", "pass"], "ck/model.json"),
    # configs given with --config, and options that set a config field out of range
    Case("config-binary", config_file(b"\x89PNG\r\n\x1a\n\x00\xff"), [*FT, "--config", "config.yaml"], ["config.yaml", "not a text file"], ("ck", "tub")),
    Case("config-list", config_file("- 1\n- 2\n"), [*FT, "--config", "config.yaml"], ["config.yaml", "mapping"], ("ck", "tub")),
    Case("config-bad-yaml", config_file("a: [1, 2\n"), [*PT, "--config", "config.yaml"], ["config.yaml", "not valid YAML"], ("tub",)),
    Case("config-unknown-key", config_file("epochz: 3\n"), [*FT, "--config", "config.yaml"], ["config.yaml", "epochz"], ("ck", "tub")),
    Case("config-wrong-type", config_file("train:\n  epochs: many\n"), [*PT, "--config", "config.yaml"], ["config.yaml", "train.epochs"], ("tub",)),
    Case("config-missing", nothing, [*FT, "--config", "nope.yaml"], ["nope.yaml", "not found"], ("ck", "tub")),
    Case("config-is-a-folder", lambda d: (d / "conf").mkdir(), [*FT, "--config", "conf"], ["conf", "is a folder"], ("ck", "tub")),
    Case("frames-0", nothing, [*FT, "--frames", "0"], ["--frames 0", "FinetuneConfig.frames"], ("ck", "tub")),
    Case("frames-negative", nothing, [*FT, "--frames", "-5"], ["--frames -5"], ("ck", "tub")),
    Case("epochs-0-finetune", nothing, [*FT, "--epochs", "0"], ["--epochs 0", "epochs"], ("ck", "tub")),
    Case("epochs-0-pretrain", nothing, [*PT, "--epochs", "0"], ["--epochs 0", "epochs"], ("tub",)),
    Case("device-tpu-finetune", nothing, [*FT, "--device", "tpu"], ["--device 'tpu'", "cpu"], ("ck", "tub")),
    Case("device-tpu-pretrain", nothing, [*PT, "--device", "tpu"], ["--device 'tpu'", "cpu"], ("tub",)),
    Case("pretrain-init-other-spec", nothing, [*PT, "--init", "GOOD/ck", "--set", "model.hidden=7"], ["init GOOD/ck", "model.outputs is", "in the checkpoint but"], ("ck", "tub")),
    Case("pretrain-init-missing", nothing, [*PT, "--init", "nope"], ["'nope' not found"], ("tub",)),
    Case("freeze-abc", nothing, [*FT, "--freeze", "abc"], ["freeze", "abc"], ("ck", "tub")),
    Case("pseudo-label-missing", nothing, [*FT, "--frames", "40", "--pseudo-label", "nope"], ["--pseudo-label nope", "no such file"], ("ck", "tub")),
    Case("pseudo-label-missing-ensemble", nothing, [*FT, "--frames", "40", "--ensemble-with", "GOOD/ck", "--pseudo-label", "nope"], ["--pseudo-label nope", "no such file"], ("ck", "tub")),
    Case("simulate-frames-0", nothing, ["simulate", "--out", OUT, "--frames", "0"], ["frames"]),
    Case("policy-device-tpu", config_file(yaml.safe_dump({**POLICY, "device": "tpu"})), ["train-policy", "--config", "config.yaml", "--out", OUT], ["config.yaml", "device", "tpu"]),
    Case("policy-timesteps-0", config_file(yaml.safe_dump(POLICY)), ["train-policy", "--config", "config.yaml", "--out", OUT, "--timesteps", "0"], ["--timesteps 0"]),
    Case("experiment-unknown-key", config_file("nonsense_key: 1\n"), ["experiment", "config.yaml", "--out", OUT], ["config.yaml", "nonsense_key"]),
    # outputs that cannot or must not be written
    Case("export-onnx-folder", lambda d: (d / "dest").mkdir(), ["export", "--checkpoint", "GOOD/ck", "--onnx", "dest"], ["--onnx dest is a folder"], ("ck",)),
    Case("export-no-force", lambda d: (d / "old.onnx").write_bytes(b"keep me"), ["export", "--checkpoint", "GOOD/ck", "--onnx", "old.onnx"], ["old.onnx exists", "--force"], ("ck",)),
    Case("evaluate-json-folder", lambda d: (d / "dest").mkdir(), ["evaluate", "--checkpoint", "GOOD/ck", "--data", "GOOD/tub", "--n-boot", "10", "--json", "dest"], ["directory: dest;"], ("ck", "tub")),
]  # fmt: skip


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    folder = tmp_path_factory.mktemp("good")
    tub(folder / "tub", n=90)
    checkpoint(folder / "ck")
    return folder


@pytest.fixture(autouse=True)
def _cache_outside(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SIM2REAL_CACHE", str(tmp_path_factory.mktemp("cache")))


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


def check_failure(folder: Path, args: list[str], expect: list[str], capsys, monkeypatch) -> str:
    """Run `args` in `folder`; assert the clean failure; return the error line."""
    before = snapshot(folder)
    monkeypatch.chdir(folder)
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (args, out, err)
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"sim2real {args[0]}: error: "), err
    line = errors[0]
    for text in expect:
        assert text in line, (text, line)
    assert snapshot(folder) == before  # inputs unchanged, nothing written (OUT included)
    return line


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each builder runs once; cases that share it (one per command) get copies."""
    templates: dict[Callable, Path] = {}

    def get(build: Callable[[Path], None]) -> Path:
        if build not in templates:
            templates[build] = tmp_path_factory.mktemp("template")
            build(templates[build])
        return templates[build]

    return get


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_cleanly(case: Case, good, built, tmp_path, capsys, monkeypatch):
    shutil.copytree(built(case.build), tmp_path, symlinks=True, dirs_exist_ok=True)
    if case.needs:
        (tmp_path / "GOOD").symlink_to(good)
    check_failure(tmp_path, case.args, case.expect, capsys, monkeypatch)
    assert not (tmp_path / "PWNED").exists()


def test_the_corpus_is_large_and_covers_every_command():
    assert len(CASES) >= 40
    commands = {c.args[0] if c.args[0] != "data" else "data" for c in CASES}
    assert commands >= {"data", "evaluate", "finetune", "pretrain", "gap", "export"}


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory):
    """A finished tiny pretraining run (it keeps resume.pt) and its command line."""
    folder = tmp_path_factory.mktemp("pretrain")
    data = make_sim_run(folder / "sim", n=40)
    config = write_config(folder / "pretrain.yaml", folder / "cache", epochs=1)
    args = ["pretrain", "--data", str(data), "--config", str(config), "--out", str(folder / "run")]
    assert main(args) == 0
    assert (folder / "run" / "resume.pt").is_file()
    return folder, args


@pytest.mark.parametrize("corruption", ["truncated", "untrusted", "not-a-state"])
def test_a_bad_resume_file_is_refused_before_the_run_folder_changes(
    corruption, pretrain_run, capsys, monkeypatch
):
    folder, args = pretrain_run
    work = folder / corruption
    shutil.copytree(folder / "run", work)
    resume = work / "resume.pt"
    if corruption == "truncated":
        resume.write_bytes(resume.read_bytes()[:300])
    elif corruption == "untrusted":
        torch.save({"config": {}, "model": Payload(folder / "PWNED")}, resume)
    else:
        torch.save([1, 2, 3], resume)
    args = [*args[:-1], str(work), "--resume"]
    line = check_failure(work, args, [str(resume)], capsys, monkeypatch)
    assert "weights_only=False" not in line and "delete it" in line
    assert not (folder / "PWNED").exists()


def test_a_pretraining_folder_is_not_called_a_fine_tuning_run(pretrain_run, capsys, monkeypatch):
    folder, _ = pretrain_run
    data = folder / "sim" / "tub"
    args = ["finetune", "--checkpoint", str(folder / "run"), "--data", str(data)]
    line = check_failure(
        folder / "run", [*args, "--out", str(folder / "run")], ["another kind"], capsys, monkeypatch
    )
    assert "a fine-tuning run" in line and "not a FinetuneConfig" in line


def test_policy_runs_refuse_an_sb3_zip_and_a_broken_state(tmp_path, capsys, monkeypatch):
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    args = ["train-policy", "--config", "policy.yaml", "--out", "run", "--resume"]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(POLICY))
    plant_sb3_zip(tmp_path / "run" / "sb3_model.zip", b"not even a pickle")
    check_failure(tmp_path, args, ["sb3_model.zip", "--trust-pickle"], capsys, monkeypatch)
    (tmp_path / "run" / "sb3_model.zip").unlink()
    (tmp_path / "run" / "policy_state.safetensors").write_bytes(b"\x08" + b"\x00" * 20)
    check_failure(tmp_path, args, ["policy_state.safetensors", "readable"], capsys, monkeypatch)


def test_a_failed_run_leaves_no_stub_folder_and_internal_errors_keep_their_traceback(
    tmp_path, capsys, monkeypatch
):
    from sim2real.common.runs import describe_run
    from sim2real.experiments.commands import finetune as command

    def fails_after_describing(error: Exception):
        def handler(args):
            describe_run(args.out, None)  # what a run writes before its real work
            raise error

        return handler

    args = ["finetune", "--out", str(tmp_path / "new"), "--data", "x", "--checkpoint", "y"]
    monkeypatch.setattr(command, "handler", fails_after_describing(ValueError("bad input")))
    assert main(args) == 2
    assert "finetune: error: bad input" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()

    # an ensemble's stub: the members' records in their own folders go too
    def members_described(args):
        describe_run(args.out, None)
        describe_run(Path(args.out) / "member-0", None)
        raise ValueError("bad input")

    monkeypatch.setattr(command, "handler", members_described)
    assert main(args) == 2
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr(command, "handler", fails_after_describing(ValueError("bad input")))
    # a folder that existed before is left as it was (only the run's own stub goes)
    (tmp_path / "old").mkdir()
    assert main([*args[:2], str(tmp_path / "old"), *args[3:]]) == 2
    assert (tmp_path / "old" / "run.json").is_file()
    # an internal error is not dressed up as a user error: its traceback stays
    monkeypatch.setattr(command, "handler", fails_after_describing(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(args)
