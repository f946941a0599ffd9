"""How a network's steering errs while the expert drives: slow bias or fast noise?

    python benchmarks/steering_error_probe.py CHECKPOINT --randomization SPEC \
        --group failed 20004 20020 ... --group lapped 20000 20001 ...

For each group of seeds the expert drives each track (perturbation 0.2, up to --steps steps)
while the network only predicts. Prints per group: the steering error's RMS, split into a slow
part (a 7-step moving average) and the fast rest; R² and Pearson r of the steering, cte
and heading outputs on their labels; and the least-squares weights of the expert's steering on the
network's steering, cte and heading outputs (+ intercept) with that fit's RMS.
Also prints how the blind expert's steering (`oracle_split.BlindView`: nominal speed, no
latency) agrees with the expert's labels over the same frames. docs/closed-loop.md, "Which half
of the command loses the laps".
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from oracle_split import BlindView

from sim2real.agents.closed_loop import camera_size_for
from sim2real.agents.ensemble import load_predictor
from sim2real.agents.sb3_env import PreprocessObservation
from sim2real.envs.expert import ExpertDriver
from sim2real.envs.track_env import TrackDrivingEnv
from sim2real.transfer.metrics import pearson_r, r2

OUTPUTS = ("user/angle", "sim/cte", "sim/heading_error")


def probe(model, env, seed: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(network outputs (T, 3), labels (T, 3), blind steering (T,)) along one expert drive."""
    obs, info = env.reset(seed=seed, options={"randomize": True})
    expert = ExpertDriver(env, 0.2, seed=seed)
    blind = ExpertDriver(BlindView(env))
    columns = [model.outputs.index(name) for name in OUTPUTS]
    outputs, labels, blinds = [], [], []
    for _ in range(steps):
        action = expert.act()
        image = torch.from_numpy(obs).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        outputs.append(model(image)[0, columns].numpy())
        labels.append([expert.label[0], info["cte"], info["heading_error"]])
        blinds.append(blind.act()[0])
        obs, _, terminated, _, info = env.step(action)
        if terminated or info["laps"] >= 1:
            break
    return np.array(outputs), np.array(labels), np.array(blinds)


def report(name: str, runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
    slow, fast, total = [], [], []
    for out, lab, _ in runs:
        error = out[:, 0] - lab[:, 0]
        smooth = np.convolve(error, np.ones(7) / 7, mode="same")
        total.append(error)
        slow.append(smooth)
        fast.append(error - smooth)
    rms = [float(np.sqrt(np.mean(np.concatenate(part) ** 2))) for part in (total, slow, fast)]
    out = np.concatenate([r[0] for r in runs])
    lab = np.concatenate([r[1] for r in runs])
    blind = np.concatenate([r[2] for r in runs])
    r2s, rs = r2(out.T, lab.T), pearson_r(out.T, lab.T)  # per output, on its label
    design = np.c_[out, np.ones(len(out))]
    weights, *_ = np.linalg.lstsq(design, lab[:, 0], rcond=None)
    fit = float(np.sqrt(np.mean((design @ weights - lab[:, 0]) ** 2)))
    print(f"{name}: {len(runs)} tracks, {len(out)} frames")
    print(f"  steering error RMS {rms[0]:.3f} (slow {rms[1]:.3f}, fast {rms[2]:.3f})")
    scores = zip(OUTPUTS, r2s, rs, strict=True)
    print("  R² / r on labels: " + ", ".join(f"{n} {a:.3f} / {r:.3f}" for n, a, r in scores))
    print(
        f"  expert steering ~ {np.round(weights, 3).tolist()} . [steer, cte, heading, 1]"
        f", RMS {fit:.3f} (label spread {lab[:, 0].std():.3f})"
    )
    difference = float(np.sqrt(np.mean((blind - lab[:, 0]) ** 2)))
    print(
        f"  blind vs expert steering: R² {r2(blind, lab[:, 0])[0]:.3f}, "
        f"r {pearson_r(blind, lab[:, 0])[0]:.3f}, "
        f"RMS difference {difference:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="folder or shipped name")
    parser.add_argument("--randomization", default=None)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument(
        "--group", nargs="+", action="append", required=True, metavar=("NAME", "SEED")
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, card = load_predictor(args.checkpoint)
    env = PreprocessObservation(
        TrackDrivingEnv(image_size=camera_size_for(card), randomization=args.randomization),
        model.spec.preprocessing,
    )
    with torch.no_grad():
        for name, *seeds in args.group:
            report(name, [probe(model, env, int(s), args.steps) for s in seeds])
    env.close()


if __name__ == "__main__":
    main()
