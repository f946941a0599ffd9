"""`sim2real train-policy` end to end: run folder, policy checkpoint, resume, clear errors."""

import json

import torch
import yaml

from sim2real.agents.checkpoint import load_checkpoint
from sim2real.experiments.cli import main

CONFIG = {
    "total_timesteps": 16,
    "n_envs": 1,
    "vec_env": "dummy",
    "architecture": "resnet_small",
    "preprocessing": {"crop_top": 8, "height": 32, "width": 32},
    "hidden": 16,
    "freeze": 1,
    "env": {"image_size": [40, 48], "max_episode_steps": 40},
    "eval": {"freq": 0, "episodes": 1, "max_steps": 5},
    "ppo": {"n_steps": 16, "batch_size": 8, "n_epochs": 1},
}


def test_train_policy_writes_a_resumable_run_and_a_policy_checkpoint(tmp_path, capsys):
    torch.set_num_threads(1)
    config = tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "run"
    assert main(["train-policy", "--config", str(config), "--out", str(out)]) == 0
    for name in ("config.yaml", "run.json", "evals.json", "policy_state.safetensors"):
        assert (out / name).is_file(), name
    assert any((out / "tb").rglob("events.out.tfevents.*"))
    evals = json.loads((out / "evals.json").read_text())
    assert [e["timesteps"] for e in evals] == [0, 16]
    net, card = load_checkpoint(out / "checkpoint")
    assert card.kind == "policy" and net.outputs == ["user/angle", "user/throttle"]
    assert card.spec.dropout == 0.0 and card.metrics["frozen_stages"] == ["stage1"]
    assert card.trained_on["timesteps"] == 16
    first = {k: v.clone() for k, v in net.state_dict().items()}

    # an existing run is not overwritten ...
    assert main(["train-policy", "--config", str(config), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    # ... but continues with --resume, up to the new total
    args = ["train-policy", "--config", str(config), "--out", str(out), "--timesteps", "32"]
    assert main([*args, "--resume"]) == 0
    evals = json.loads((out / "evals.json").read_text())
    assert [e["timesteps"] for e in evals] == [0, 16, 32]
    # nothing left to do: the run folder stays as it is
    assert main([*args, "--resume"]) == 0
    assert len(json.loads((out / "evals.json").read_text())) == 3
    # another config cannot resume this run
    config.write_text(yaml.safe_dump({**CONFIG, "hidden": 8}))
    assert main([*args, "--resume"]) == 2
    assert "differs" in capsys.readouterr().err
    net2, card2 = load_checkpoint(out / "checkpoint")
    assert card2.trained_on["timesteps"] == 32
    state = net2.state_dict()
    stage1 = [k for k in first if k.startswith("encoder.stages.stage1.")]
    assert stage1 and all(torch.equal(state[k], first[k]) for k in stage1)  # still frozen
    assert any(not torch.equal(state[k], first[k]) for k in first if k.startswith("head."))


def test_bad_init_checkpoint_is_a_clear_cli_error(tmp_path, capsys):
    config = tmp_path / "policy.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "init_checkpoint": str(tmp_path / "nope")}))
    assert main(["train-policy", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "not found" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**CONFIG, "algorithm": "dqn"}))
    assert main(["train-policy", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "algorithm" in capsys.readouterr().err
