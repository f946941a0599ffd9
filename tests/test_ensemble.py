"""Ensemble checkpoints (`sim2real.agents.ensemble`) and `finetune --ensemble-with`: the
average in torch, ONNX Runtime and the pilot part, the folder format, fine-tuning every start
through `finetune` itself, resuming, and bad input, on real frames of the shipped sample."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from model_helpers import finetune_config, save_parent, set_batchnorm_statistics

from sim2real.agents.checkpoint import (
    ModelCard,
    load_checkpoint,
    override_mirror_average,
    read_card,
    read_weights,
    save_checkpoint,
)
from sim2real.agents.ensemble import EnsembleNet, load_predictor, save_ensemble
from sim2real.agents.model import DrivingNet, ModelSpec, predict
from sim2real.agents.preprocessing import Preprocessing
from sim2real.agents.temporal import Temporal
from sim2real.experiments.cli import main
from sim2real.transfer.datasets import open_records
from sim2real.transfer.evaluate import evaluate_offline
from sim2real.transfer.export import export_onnx, load_frames, run_onnx
from sim2real.transfer.finetune import finetune
from sim2real.transfer.pilot import DonkeyPilot
from sim2real.transfer.sample_data import sample_path

OUTPUTS = ["user/angle", "user/throttle", "sim/cte"]


def _net(seed: int, normalization: str = "fixed", **spec) -> DrivingNet:
    pre = Preprocessing(normalization=normalization)
    torch.manual_seed(seed)
    net = DrivingNet(ModelSpec(outputs=OUTPUTS, hidden=16, preprocessing=pre, **spec))
    return set_batchnorm_statistics(net).eval()


def _save(folder: Path, net: DrivingNet) -> Path:
    save_checkpoint(folder, net, ModelCard(spec=net.spec, source_size=(120, 160)))
    return folder


def _ensemble(folder: Path, nets: list[DrivingNet], mirror: bool = False) -> Path:
    names = [f"member-{i}" for i in range(len(nets))]
    for name, net in zip(names, nets, strict=True):
        _save(folder / name, net)
    spec = nets[0].spec.model_copy(update={"mirror_average": mirror})
    save_ensemble(folder, ModelCard(spec=spec, source_size=(120, 160), members=names))
    return folder


@pytest.fixture(scope="module")
def frames():
    records = open_records([sample_path()]).records
    return load_frames([r.image_path for r in records[::90]])  # 12 real frames, 120x160


def _inputs(frames: np.ndarray) -> torch.Tensor:
    pre = Preprocessing()
    return torch.from_numpy(np.stack([pre.apply(f).transpose(2, 0, 1) for f in frames]))


@pytest.mark.parametrize("mirror", [False, True])
def test_the_ensemble_predicts_the_mean_of_its_members_in_torch_onnx_and_the_pilot(
    tmp_path, frames, mirror
):
    # members that normalise differently (each inside its own network), other weights
    a, b = _net(0), _net(1, "per_image")
    folder = _ensemble(tmp_path / "ens", [a, b], mirror=mirror)
    model, card = load_predictor(folder)
    assert isinstance(model, EnsembleNet) and card.members == ["member-0", "member-1"]
    x = _inputs(frames)
    for net in (a, b):
        net.spec.mirror_average = mirror
    pa, pb = predict(a, x), predict(b, x)
    assert np.abs(pa[:, 0] - pb[:, 0]).max() > 1e-3  # the members disagree
    np.testing.assert_allclose(predict(model, x), (pa + pb) / 2, atol=1e-6, rtol=0)

    result = export_onnx(folder, tmp_path / "pilot.onnx", check_frames=frames[:4], dynamo=False)
    assert result.max_abs_diff is not None and result.max_abs_diff <= 1e-4
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    got = run_onnx(session, frames)  # one graph runs both members
    np.testing.assert_allclose(got["steering"], (pa[:, 0] + pb[:, 0]) / 2, atol=1e-4)
    np.testing.assert_allclose(got["sim_cte"], (pa[:, 2] + pb[:, 2]) / 2, atol=1e-4)
    pilot = DonkeyPilot(result.onnx_path, image_size=(120, 160))
    angle, throttle = pilot.run(frames[5])
    assert angle == pytest.approx(float(np.clip(got["steering"][5], -1, 1)), abs=1e-5)
    assert throttle == pytest.approx(float(np.clip(got["throttle"][5], -1, 1)), abs=1e-5)
    if mirror:  # the average inside each member keeps the whole graph mirror-equivariant
        flipped = run_onnx(session, np.ascontiguousarray(frames[:, :, ::-1]))
        np.testing.assert_allclose(flipped["steering"], -got["steering"], atol=1e-5)


def test_round_trip_and_evaluate_of_an_ensemble_folder(tmp_path):
    folder = _ensemble(tmp_path / "ens", [_net(0), _net(1)])
    card = read_card(folder)
    assert card.members == ["member-0", "member-1"] and not card.spec.mirror_average
    assert not (folder / "model.safetensors").exists()  # weights live in the members only
    data = [str(sample_path())]
    ens = evaluate_offline(folder, data, split="all", n_boot=20, progress=False)
    one = evaluate_offline(folder / "member-0", data, split="all", n_boot=20, progress=False)
    assert ens.info["architecture"] == "pilotnet" and ens.metrics["steering_r2"].value != (
        one.metrics["steering_r2"].value
    )
    on = evaluate_offline(folder, data, split="all", n_boot=20, progress=False, mirror_average=True)
    assert on.info["mirror_average"] and not ens.info["mirror_average"]
    assert ens.info["members"] == ["member-0", "member-1"] and one.info["members"] == []


def test_bad_ensembles_are_one_line_errors(tmp_path):
    folder = _ensemble(tmp_path / "ens", [_net(0), _net(1)])
    # what needs one network (finetune, gap) refuses an ensemble, naming a member
    with pytest.raises(ValueError, match=r"is an ensemble of 2 networks.*member-0"):
        load_checkpoint(folder)
    with pytest.raises(FileNotFoundError, match="has no weights"):
        read_weights(folder)
    # a member missing
    card = json.loads((folder / "model.json").read_text())
    card["members"] = ["member-0", "member-2"]
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(FileNotFoundError, match=r"member 'member-2' of the ensemble .* missing"):
        load_predictor(folder)
    card["members"] = ["member-0", "../elsewhere"]
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="members must be sub-folder names"):
        read_card(folder)
    card["members"] = ["member-0"]  # the card file is named, in one line
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"model.json.*at least two members") as error:
        load_predictor(folder)
    assert "\n" not in str(error.value)
    # members with other outputs
    other = DrivingNet(ModelSpec(outputs=["user/angle", "user/throttle"], hidden=16)).eval()
    with pytest.raises(ValueError, match="must have the same outputs in the same order"):
        _ensemble(tmp_path / "outputs", [_net(0), other])
    # a temporal member
    temporal = _net(1, temporal=Temporal(previous_action=True))
    with pytest.raises(ValueError, match="temporal network .* cannot be an ensemble member"):
        _ensemble(tmp_path / "temporal", [_net(0), temporal])
    # another crop
    small = DrivingNet(
        ModelSpec(outputs=OUTPUTS, hidden=16, preprocessing=Preprocessing(crop_top=20))
    ).eval()
    with pytest.raises(ValueError, match="must take the same input"):
        _ensemble(tmp_path / "size", [_net(0), small])
    with pytest.raises(ValueError, match="at least two members"):
        EnsembleNet([_net(0)])


def _second_parent(folder: Path) -> Path:
    """A second small 'pretrained' start with other weights than `save_parent`'s."""
    net = _net(7)
    save_checkpoint(folder, net, ModelCard(spec=net.spec, history=[{"step": "pretrain"}]))
    return folder


def test_finetune_ensemble_with_fine_tunes_each_start_as_finetune_does(tmp_path, capsys):
    first = save_parent(tmp_path / "first", {"paths": []})
    second = _second_parent(tmp_path / "second")
    cache = tmp_path / "cache"
    args = [
        "finetune",
        "--checkpoint",
        str(first),
        "--ensemble-with",
        str(second),
        "--data",
        str(sample_path()),
        "--frames",
        "40",
        "--freeze",
        "gain",
        "--folds",
        "2",
        "--set",
        f"cache_dir={cache}",
        "--set",
        "train.progress=false",
        "--set",
        "train.tensorboard=false",
        "--out",
        str(tmp_path / "ens"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2 fine-tuned on 40 real frames" in out and "member-1: from" in out
    model, card = load_predictor(tmp_path / "ens")
    assert isinstance(model, EnsembleNet) and card.spec.mirror_average  # finetune's default
    step = card.history[-1]
    assert [m["parent"] for m in step["members"]] == [str(first), str(second)]
    assert all(m["rung"] == "gain" and m["ladder"]["pick"] == "gain" for m in step["members"])
    assert [m["mirror_average"] for m in step["members"]] == [True, True]  # (the export's card)
    assert card.metrics["val"]["user/angle"]["n"] > 0 and card.source_size == (120, 160)

    # member 1 is exactly what `finetune` makes of the second start alone
    alone = finetune_config(second, cache, frames=40)
    alone.adapter.freeze, alone.ladder.folds = "gain", 2
    finetune(alone, tmp_path / "alone")
    member = read_weights(tmp_path / "ens" / "member-1")
    for name, tensor in read_weights(tmp_path / "alone").items():
        assert torch.equal(member[name], tensor), name

    # not redone: a finished member is kept on --resume; without it, a clear refusal
    assert main([*args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert out.count("already fine-tuned") == 2 and "fine-tuning" not in out
    assert main(args) == 2
    assert "already holds an ensemble fine-tuning run" in capsys.readouterr().err


def test_finetune_ensemble_bad_starts_are_one_line_errors(tmp_path, capsys):
    first = save_parent(tmp_path / "first", {"paths": []})
    base = ["finetune", "--checkpoint", str(first), "--data", str(sample_path())]
    assert main([*base, "--ensemble-with", str(first), "--out", str(tmp_path / "a")]) == 2
    assert "is given twice as an ensemble start" in capsys.readouterr().err
    assert main([*base, "--ensemble-with", str(tmp_path / "nope"), "--out", str(tmp_path / "b")])
    assert "nope not found" in capsys.readouterr().err
    temporal = _save(tmp_path / "temporal", _net(2, temporal=Temporal(previous_action=True)))
    assert main([*base, "--ensemble-with", str(temporal), "--out", str(tmp_path / "c")]) == 2
    assert "cannot be an ensemble member" in capsys.readouterr().err
    mixed = ["--ensemble-with", "none", "pilotnet-styles", "--out", str(tmp_path / "d")]
    assert main([*base, *mixed]) == 2
    assert "'none' cannot be combined" in capsys.readouterr().err


def test_the_shipped_network_is_ensembled_with_pilotnet_styles_unless_told_otherwise(tmp_path):
    from sim2real.experiments.commands.finetune import default_ensemble
    from sim2real.transfer.finetune import FinetuneConfig
    from sim2real.transfer.selftrain import SelfTrainConfig

    def starts(**fields) -> list[str] | None:
        return default_ensemble(FinetuneConfig(data=["tub"], **fields))

    assert starts(checkpoint="pilotnet-recipe") == ["pilotnet-styles"]
    assert starts(checkpoint="pilotnet-recipe", ensemble_with=[]) == []  # --ensemble-with none
    assert starts(checkpoint="pilotnet-recipe", ensemble_with=["x"]) == ["x"]
    assert starts(checkpoint="pilotnet-styles") is None  # another start: one network
    assert starts(checkpoint=str(save_parent(tmp_path / "p", {"paths": []}))) is None
    assert starts(checkpoint="pilotnet-recipe", from_scratch=True) is None
    # self-training (the default where frames are left over) trains one network on more
    # unlabeled frames instead (measured so: docs/selftrain.md), unless the user names starts
    assert starts(checkpoint="pilotnet-recipe", selftrain=SelfTrainConfig()) is None
    both = {"selftrain": SelfTrainConfig(), "ensemble_with": ["pilotnet-styles"]}
    assert starts(checkpoint="pilotnet-recipe", **both) == ["pilotnet-styles"]


def test_members_that_differ_in_mirror_averaging_each_keep_their_own(tmp_path, frames):
    # what `finetune --ensemble-with` saves when one start picks `calibrate` (plain: the
    # average would cancel its offset) and the other a mirror-averaged rung: the card
    # carries the first member's flag; each member must still predict as it was validated
    plain, mirrored = _net(0), _net(1, mirror_average=True)
    names = ["member-0", "member-1"]
    for name, net in zip(names, (plain, mirrored), strict=True):
        _save(tmp_path / "ens" / name, net)
    save_ensemble(tmp_path / "ens", ModelCard(spec=plain.spec, members=names))
    model, _ = load_predictor(tmp_path / "ens")
    x = _inputs(frames)
    expected = (predict(plain, x) + predict(mirrored, x)) / 2
    np.testing.assert_allclose(predict(model, x), expected, atol=1e-6, rtol=0)
    assert not model.spec.mirror_average  # not every member averages
    # --mirror-average on|off sets every member's
    override_mirror_average(model, True, tmp_path / "ens")
    plain.spec.mirror_average = True
    np.testing.assert_allclose(
        predict(model, x), (predict(plain, x) + predict(mirrored, x)) / 2, atol=1e-6, rtol=0
    )
    assert model.spec.mirror_average


def test_an_ensemble_run_refuses_a_folder_holding_an_interrupted_single_run(tmp_path):
    first = save_parent(tmp_path / "first", {"paths": []})
    second = _second_parent(tmp_path / "second")
    single = finetune_config(first, tmp_path / "cache", frames=40, ensemble_with=[])
    single.adapter.freeze = 0  # trains epochs: leaves resume.pt as an interrupted run does
    out = tmp_path / "out"
    finetune(single, out)
    (out / "model.json").unlink()  # interrupted before its card was written
    saved = (out / "config.yaml").read_text()
    ensemble = single.model_copy(update={"ensemble_with": [str(second)]})
    with pytest.raises(ValueError, match="already holds"):
        finetune(ensemble, out)
    assert (out / "config.yaml").read_text() == saved and not (out / "member-0").exists()


def test_an_ensemble_or_no_checkpoint_as_a_start_fails_before_any_training(tmp_path, capsys):
    first = save_parent(tmp_path / "first", {"paths": []})
    ens = _ensemble(tmp_path / "ens", [_net(0), _net(1)])
    fast = ["--frames", "40", "--freeze", "gain", "--folds", "2"]
    fast += ["--set", "train.progress=false", "--set", "train.tensorboard=false"]
    base = ["finetune", "--data", str(sample_path()), *fast]
    out = tmp_path / "a"
    args = [*base, "--checkpoint", str(first), "--ensemble-with", str(ens), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{ens} is an ensemble of 2 networks" in err and "member-0" in err
    assert not (out / "member-0").exists()  # refused before the first member trained
    assert main([*base, "--ensemble-with", str(first), "--out", str(tmp_path / "b")]) == 2
    assert "no checkpoint given (--checkpoint)" in capsys.readouterr().err


def test_an_ensemble_card_that_disagrees_with_its_members_is_a_one_line_error(tmp_path):
    folder = _ensemble(tmp_path / "ens", [_net(0), _net(1)])  # members: 160x120 frames
    good = json.loads((folder / "model.json").read_text())
    card = {**good, "spec": {**good["spec"]}}
    card["spec"]["preprocessing"] = {**good["spec"]["preprocessing"], "crop_top": 20}
    (folder / "model.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"spec.preprocessing .*crop_top': 20.* differs from"):
        load_predictor(folder)
    (folder / "model.json").write_text(json.dumps({**good, "source_size": [240, 320]}))
    with pytest.raises(ValueError, match=r"camera frames of one size .*member-0: 160x120"):
        load_predictor(folder)
    # a member recorded on another camera than its partner
    other = _net(2)
    save_checkpoint(folder / "member-1", other, ModelCard(spec=other.spec, source_size=(240, 320)))
    (folder / "model.json").write_text(json.dumps(good))
    with pytest.raises(ValueError, match=r"member-1: 320x240"):
        load_predictor(folder)


def test_resume_and_evaluate_keep_what_the_ensemble_run_was_started_with(tmp_path, capsys):
    first = save_parent(tmp_path / "first", {"paths": []})
    second = _second_parent(tmp_path / "second")
    fast = ["--frames", "40", "--freeze", "gain", "--folds", "2"]
    fast += ["--set", "train.progress=false", "--set", "train.tensorboard=false"]
    base = ["finetune", "--checkpoint", str(first), "--data", str(sample_path()), *fast]
    out = ["--out", str(tmp_path / "ens")]
    split = ["--set", "split.test_fraction=0.3"]  # not evaluate's default split
    assert main([*base, *split, "--ensemble-with", str(second), *out]) == 0
    capsys.readouterr()
    # evaluate holds out the test block the ensemble was fine-tuned without, as for a member
    data = [str(sample_path())]
    ens = evaluate_offline(tmp_path / "ens", data, n_boot=20, progress=False)
    one = evaluate_offline(tmp_path / "ens" / "member-0", data, n_boot=20, progress=False)
    assert read_card(tmp_path / "ens").split.test_fraction == 0.3
    assert ens.n_frames == one.n_frames
    # --resume without repeating --ensemble-with: the run's own ensemble, not the default
    assert main([*base, *split, *out, "--resume"]) == 0
    assert capsys.readouterr().out.count("already fine-tuned") == 2
    # an explicit, different choice is still refused in one line
    assert main([*base, *split, "--ensemble-with", "none", *out, "--resume"]) == 2
    assert "config.yaml differs" in capsys.readouterr().err


def test_a_members_rung_is_its_ladder_pick_or_its_teachers_when_self_trained():
    from sim2real.transfer.ensemble_finetune import member_rung

    assert member_rung({"step": "finetune", "ladder": {"pick": "head"}}) == "head"
    selftrained = {"step": "finetune_selftrain", "teacher": {"rung": "gain", "ladder": {}}}
    assert member_rung(selftrained) == "student of gain"
    assert member_rung({"step": "finetune", "ladder": None}) is None  # --freeze 3: no rung
