"""No user-supplied file is ever unpickled: planted pickles in run folders never run.

Each planted file holds a pickle whose loading would create `marker`; the test first shows
that the payload is live (plain `pickle.loads` does create the file), then runs every command
that reads such a file and asserts the marker never appears and the command ends in a clean
error.
"""

import base64
import json
import pickle
import re
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from test_policy import small_config, small_model
from test_policy_cli import CONFIG as POLICY_CONFIG

from sim2real.agents.policy_state import STATE_FILE, load_policy_state, save_policy_state
from sim2real.common.tensorfile import load_state, save_state, save_tensors
from sim2real.experiments.cli import main

ROOT = Path(__file__).resolve().parent.parent


class Payload:
    """Unpickling this calls open(path, "w"): it creates the marker file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def live_payload(marker: Path) -> bytes:
    """A pickle that creates `marker` when loaded; asserts that it really does."""
    data = pickle.dumps(Payload(marker))
    pickle.loads(data).close()
    assert marker.exists(), "the planted payload must be live for this test to mean anything"
    marker.unlink()
    return data


def plant_sb3_zip(path: Path, payload: bytes) -> None:
    """A zip in SB3's layout whose `data` entry holds a serialized (cloudpickled) object."""
    entry = {":type:": "<class 'x'>", ":serialized:": base64.b64encode(payload).decode()}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps({"policy_class": entry, "observation_space": entry}))
        archive.writestr("_stable_baselines3_version", "2.4.0")


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "PWNED"


def run_cli(args, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_train_policy_never_loads_a_planted_sb3_zip_unless_trusted(tmp_path, marker, capsys):
    payload = live_payload(marker)
    out = tmp_path / "run"
    out.mkdir()
    config = tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump(POLICY_CONFIG))
    (out / "config.yaml").write_text(yaml.safe_dump(POLICY_CONFIG))
    plant_sb3_zip(out / "sb3_model.zip", payload)
    before = (out / "sb3_model.zip").read_bytes()

    args = ["train-policy", "--config", config, "--out", out, "--resume"]
    code, err = run_cli(args, capsys)
    assert code == 2 and not marker.exists()
    assert "sb3_model.zip" in err and "--trust-pickle" in err and "pickle" in err
    code, err = run_cli(args[:-1], capsys)  # without --resume: refused as a started run
    assert code == 2 and not marker.exists() and "--resume" in err
    assert (out / "sb3_model.zip").read_bytes() == before
    # the flag really is what stands between the file and SB3's unpickler
    with pytest.raises(Exception):  # noqa: B017 (the planted zip is no model; any failure)
        main([str(a) for a in [*args, "--trust-pickle"]])
    assert marker.exists()


def test_planted_pickles_in_checkpoints_and_resume_files_never_run(tmp_path, marker, capsys):
    payload = live_payload(marker)
    data = ROOT / "transfer" / "sample_data" / "usi-track-a-sample"
    # a checkpoint folder whose weights file is a pickle (and a model.pt beside it)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.json").write_text(json.dumps({"format_version": 1}))
    (ckpt / "model.safetensors").write_bytes(payload)
    torch.save({"weights": Payload(marker)}, ckpt / "model.pt")
    assert not marker.exists()
    # a fine-tuning run folder whose resume.pt holds the payload
    run = tmp_path / "ft"
    run.mkdir()
    torch.save({"config": {}, "model": Payload(marker)}, run / "resume.pt")
    # a policy run whose state file is a pickle in disguise
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "config.yaml").write_text(yaml.safe_dump(POLICY_CONFIG))
    (policy / STATE_FILE).write_bytes(payload)
    policy_yaml = tmp_path / "policy.yaml"
    policy_yaml.write_text(yaml.safe_dump(POLICY_CONFIG))
    inputs = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    commands = [
        ["evaluate", "--checkpoint", ckpt, "--data", data],
        ["export", "--checkpoint", ckpt, "--onnx", tmp_path / "m.onnx"],
        ["finetune", "--checkpoint", ckpt, "--data", data, "--out", tmp_path / "new"],
        ["gap", "--checkpoint", ckpt, "--sim", data, "--real", data],
        ["train-policy", "--config", policy_yaml, "--out", policy, "--resume"],
    ]
    for args in commands:
        code, err = run_cli(args, capsys)
        assert code == 2, (args, err)
        assert not marker.exists(), args
        assert re.search(r"model\.safetensors|model\.json|policy_state", err), (args, err)
    # a resume.pt holding objects is refused by torch's weights-only reader, with a clean error
    from sim2real.agents.training import read_resume_file

    with pytest.raises(ValueError, match="resume.pt: not a training state sim2real can read"):
        read_resume_file(run / "resume.pt")
    assert not marker.exists()
    assert {p: p.read_bytes() for p in inputs} == inputs  # nothing modified


def test_policy_state_round_trips_weights_optimizer_and_counters(tmp_path):
    config = small_config(total_timesteps=16)
    model, _ = small_model(config)
    model.learn(16)
    path = tmp_path / STATE_FILE
    save_policy_state(model, "ppo", path)
    fresh, _ = small_model(config)
    load_policy_state(fresh, "ppo", path)
    assert fresh.num_timesteps == model.num_timesteps == 16
    assert fresh._n_updates == model._n_updates > 0
    saved, loaded = model.get_parameters(), fresh.get_parameters()
    weights = saved["policy"]
    assert all(torch.equal(weights[k], loaded["policy"][k]) for k in weights)
    adam = saved["policy.optimizer"]["state"]
    assert adam and all(
        torch.equal(v, loaded["policy.optimizer"]["state"][i][name])
        for i, entry in adam.items()
        for name, v in entry.items()
    )
    # the same state gives the same bytes; another algorithm's state is refused
    save_policy_state(fresh, "ppo", tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="'ppo' state cannot resume a 'sac' run"):
        load_policy_state(fresh, "sac", path)


def test_state_files_hold_nested_values_and_reject_other_files(tmp_path):
    state = {
        "a": [1, 2.5, None, "x", True],
        3: (torch.arange(4), {"b": torch.ones(2, 2)}),
        "scalar": torch.tensor(7.0),
    }
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    assert back["a"] == state["a"] and isinstance(back[3], tuple)
    assert torch.equal(back[3][0], state[3][0]) and torch.equal(back[3][1]["b"], torch.ones(2, 2))
    assert back["scalar"].shape == () and float(back["scalar"]) == 7.0
    save_tensors(tmp_path / "plain.safetensors", {"w": torch.ones(1)})
    with pytest.raises(ValueError, match="plain.safetensors: not a sim2real state file"):
        load_state(tmp_path / "plain.safetensors")
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "s.safetensors").read_bytes()[:40])
    with pytest.raises(ValueError, match="cut.safetensors: not a readable safetensors file"):
        load_state(tmp_path / "cut.safetensors")


def test_tensor_files_are_byte_identical_for_identical_tensors(tmp_path):
    # safetensors keeps metadata in a hash map: before the header was sorted, the md5 of
    # identical checkpoints changed from one save to the next
    tensors = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    metadata = {"format": "sim2real", "format_version": "1", "x": "1", "y": "2"}
    blobs = set()
    for i in range(6):
        save_tensors(tmp_path / f"{i}.safetensors", tensors, metadata)
        blobs.add((tmp_path / f"{i}.safetensors").read_bytes())
    assert len(blobs) == 1


SOURCES = ["agents", "transfer", "experiments", "common", "envs"]


def test_every_loader_in_the_package_refuses_pickle():
    """Source scan: torch.load only with weights_only=True, np.load only with
    allow_pickle=False, no pickle.load, and SB3's .load only behind trust_pickle."""
    problems = []
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for call in re.findall(r"torch\.load\([^)]*\)", text):
                if "weights_only=True" not in call:
                    problems.append(f"{path}: {call}")
            for call in re.findall(r"np\.load\([^)]*\)", text):
                if "allow_pickle=False" not in call:
                    problems.append(f"{path}: {call}")
            if re.search(r"pickle\.loads?\(|cloudpickle\.loads?\(", text):
                problems.append(f"{path}: pickle.load")
            for match in re.finditer(r"\b(?:cls|PPO|SAC)\.load\(", text):
                before = text[max(0, match.start() - 600) : match.start()]
                if "def _load_sb3_zip" not in before:
                    problems.append(f"{path}: SB3 load outside _load_sb3_zip")
    assert not problems, problems
