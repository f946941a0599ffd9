"""`sim2real train-policy`: PPO or SAC from camera images with the project's encoder."""

from __future__ import annotations

import argparse
from pathlib import Path


def handler(args: argparse.Namespace) -> int:
    from sim2real.agents.policy import PolicyConfig, train_policy
    from sim2real.experiments.config_options import config_from_args

    config = config_from_args(PolicyConfig, args)
    result = train_policy(config, args.out, resume=args.resume, trust_pickle=args.trust_pickle)
    print(
        f"{config.algorithm} policy: {result.evals[-1]['timesteps']} env steps in "
        f"{result.seconds:.0f} s; checkpoint {result.checkpoint_dir}"
    )
    print("  steps     laps   lap fraction  |cte| m  speed m/s")
    for e in result.evals:
        print(
            f"  {e['timesteps']:7d}  {100 * e['lap_completion_rate']:4.0f}%  "
            f"{e['mean_lap_fraction']:12.2f}  {e['mean_abs_cte_m']:7.3f}  "
            f"{e['mean_speed_mps']:9.2f}"
        )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.config_options import add_set_option, add_shortcut

    parser = subparsers.add_parser(
        "train-policy",
        help="train a PPO/SAC driving policy in sim",
        description="Reinforcement learning in sim2real/TrackDriving-v1 from camera images, "
        "with the project's encoder (optionally initialised from a perception checkpoint, "
        "lower stages frozen). OUT gets config.yaml, run.json, tb/, evals.json (closed-loop "
        "metrics on held-out tracks), policy_state.safetensors (for --resume; no pickle) and "
        "checkpoint/ "
        "(model.safetensors + model.json, kind policy).",
    )
    parser.add_argument("--config", type=Path, help="YAML PolicyConfig")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    add_shortcut(parser, "--timesteps", "total_timesteps", type=int, help="env steps to train")
    add_shortcut(parser, "--seed", "seed", type=int, help="training seed")
    parser.add_argument("--resume", action="store_true", help="continue the run in OUT")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="with --resume, allow reading OUT/sb3_model.zip (written by earlier versions). "
        "RISK: stable-baselines3 unpickles that file, which runs any code placed in it; use "
        "only on a run folder you made yourself",
    )
    add_set_option(parser)
    parser.set_defaults(func=handler)
