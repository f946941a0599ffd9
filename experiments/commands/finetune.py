"""`sim2real finetune`: adapt a pretrained checkpoint to real frames (or train from scratch)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

RULE = "rule"
"""--freeze rule: the domain-gap freeze rule (experiments.domain_gap.recommend_freeze)"""
ENSEMBLE_DEFAULT = {"pilotnet-recipe": ["pilotnet-styles"]}
"""shipped start -> the shipped starts `finetune` ensembles it with when --ensemble-with is
not given (a plain fine-tune; docs/ensembles.md: chosen on two recordings' validation blocks)"""
SELFTRAIN_MIN_UNLABELED = 1000
"""the fewest unlabeled frames (the rest of --data's training part after --frames) with which
`finetune` self-trains by default (docs/selftrain.md, "The default")"""
COMMAND_TEACHER = "motion"
"""the teacher of `finetune`'s self-training when no one names one (`SelfTrainConfig`'s own
default stays ``network`` for configs saved before the field; docs/selftrain.md, "The motion
teacher")"""
COMMAND_MAX_FRAMES = 6000
COMMAND_EPOCHS = 4
"""the unlabeled frames and student epochs of `finetune`'s self-training when no one names
them (`SelfTrainConfig`'s own defaults stay 2,000 and 6, so a saved config reproduces its
run); with them the command trains one network, not the ensemble: about the ensemble's
frame-epochs spent on three times the frames (docs/selftrain.md, "Closing the
student-teacher gap")"""
COMMAND_SELFTRAIN = {
    "teacher": COMMAND_TEACHER,
    "max_frames": COMMAND_MAX_FRAMES,
    "epochs": COMMAND_EPOCHS,
}
"""`SelfTrainConfig` fields the command fills in where nobody named them"""


def saved_run_config(config, resuming: Path | None):
    """The config the run folder `resuming` was saved with, as `config`'s type; None when not
    resuming, when none was saved, or when it is not a fine-tuning config (the resume check
    then says so in one line)."""
    from sim2real.common.config import load_config

    saved = None if resuming is None else resuming / "config.yaml"
    if saved is None or not saved.is_file():
        return None
    try:
        return load_config(type(config), saved)
    except ValueError:
        return None


def default_ensemble(config, resuming: Path | None = None) -> list[str] | None:
    """``ensemble_with`` for a run that did not set it: when `resuming` a run folder with a
    saved config, that run's own; else `ENSEMBLE_DEFAULT`'s partners of a shipped start, for a
    fine-tune that is not from scratch, co-training, alignment or self-training (whose
    measurements were of one network; self-training spends the ensemble's second member on
    more unlabeled frames for one: docs/selftrain.md, "Closing the student-teacher gap");
    else None (one network)."""
    from sim2real.agents.shipped import checkpoint_reference

    if config.ensemble_with is not None:
        return config.ensemble_with
    saved = saved_run_config(config, resuming)
    if saved is not None:
        return saved.ensemble_with
    if config.checkpoint is None:
        return None
    plain = (
        not config.from_scratch
        and config.cotrain is None
        and config.align is None
        and config.selftrain is None
    )
    return ENSEMBLE_DEFAULT.get(checkpoint_reference(config.checkpoint)) if plain else None


def default_selftrain(
    config,
    chosen: bool,
    resuming: Path | None = None,
    *,
    in_file: bool = False,
    off: bool = False,
) -> tuple[object, str]:
    """(``selftrain``, a line saying why) for a run: the config's own when the user `chosen`
    it (``--pseudo-label``, ``--set selftrain...``, the ``--config`` file, `in_file` when
    that file has a ``selftrain:`` mapping), with `command_fields` (None when `off`:
    ``--pseudo-label none``); when `resuming` a run folder with a saved config, that run's
    own; else self-training on the rest of --data's training part when a pretrained network
    is adapted by ``--freeze auto`` (no co-training or alignment) to --frames frames and at
    least `SELFTRAIN_MIN_UNLABELED` frames are left (off, with a line saying so, when fewer
    are left or --frames is not given: every training frame is labelled)."""
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.ladder import AUTO
    from sim2real.transfer.selftrain import SelfTrainConfig
    from sim2real.transfer.splits import split_records

    if off:  # --pseudo-label none (the option leaves the field alone: a file's stays)
        return None, ""
    if chosen:
        return command_fields(config, resuming, in_file), ""
    if resuming is not None and (resuming / "config.yaml").is_file():
        saved = saved_run_config(config, resuming)  # (None: the resume check reports it)
        return (None if saved is None else saved.selftrain), ""
    plain = config.cotrain is None and config.align is None and config.adapter.freeze == AUTO
    if config.checkpoint is None or config.from_scratch or not plain:
        return None, ""
    if config.frames is None:
        return None, (
            "self-training off: every training frame of --data is labelled, none is left to "
            "pseudo-label (--pseudo-label REAL...: other recordings instead)"
        )
    try:
        records = open_records(config.data, include_pilot=config.include_pilot).records
        train = split_records(records, config.split, seed=config.train.seed).train
    except (OSError, ValueError):
        return None, ""  # finetune reads the data again and says what is wrong in one line
    left = len(train) - config.frames
    if left < SELFTRAIN_MIN_UNLABELED:
        return None, (
            f"self-training off: {max(left, 0)} unlabeled frames left in --data's training "
            f"part, {SELFTRAIN_MIN_UNLABELED} needed (--pseudo-label REAL...: other recordings "
            "instead)"
        )
    selftrain = SelfTrainConfig(**COMMAND_SELFTRAIN)
    return selftrain, (
        f"self-training: the fine-tuned network and the recording's motion label "
        f"{min(left, selftrain.max_frames)} of the {left} other training frames, and a student "
        "learns from them too (--pseudo-label none: off)"
    )


class SelftrainChoice(NamedTuple):
    """What the command line and its --config file say of ``selftrain``."""

    chosen: bool
    """the command line or the file sets it"""
    in_file: bool
    """the file has a ``selftrain:`` mapping"""
    off: bool
    """``--pseudo-label none``: off, whatever the file says"""


def selftrain_mentions(args: argparse.Namespace) -> SelftrainChoice:
    """`default_selftrain`'s `chosen`, `in_file` and `off` for `args`; ValueError (one line)
    for ``--pseudo-label none`` beside a ``--set selftrain...`` (off, and set: which?)."""
    from sim2real.common.config import load_yaml_mapping, parse_assignment
    from sim2real.experiments.config_options import SET_DEST, config_mentions

    in_file = args.config is not None and isinstance(
        load_yaml_mapping(args.config).get("selftrain"), dict
    )
    off = [str(v).lower() for v in getattr(args, "pseudo_label", None) or []] == ["none"]
    sets = [
        t
        for t in getattr(args, SET_DEST, None) or []
        if parse_assignment(t)[0].split(".")[0] == "selftrain"
    ]
    if off and sets:
        raise ValueError(
            f"--pseudo-label none turns self-training off, but --set {sets[0]} sets it: drop one"
        )
    return SelftrainChoice(config_mentions(args, "selftrain"), in_file, off)


def command_fields(config, resuming: Path | None, in_file: bool):
    """`config.selftrain` with `COMMAND_SELFTRAIN`'s values where nobody named the field: a
    ``selftrain`` set on the command line alone (``--pseudo-label``, ``--set
    selftrain.KNOB=...``) gets the command's teacher, unlabeled frames and epochs, or, `resuming` a
    run, the values that run was saved with (a config.yaml from before the teacher field
    reads as ``network``: it resumes as it started). A ``--config`` file's ``selftrain:``
    keeps `SelfTrainConfig`'s defaults (``network``, 2,000 frames, 6 epochs), so a saved config.yaml
    reproduces its run."""
    st = config.selftrain
    if st is None or in_file:
        return st
    saved = saved_run_config(config, resuming)
    source = saved.selftrain if saved is not None and saved.selftrain is not None else None
    update = {
        name: value if source is None else getattr(source, name)
        for name, value in COMMAND_SELFTRAIN.items()
        if name not in st.model_fields_set
    }
    return st.model_copy(update=update)


def rule_freeze(config) -> tuple[int, str]:
    """(stages to freeze, why) by the freeze rule for `config`'s checkpoint and real frames.

    The rule needs the number of real training frames and, between its scarce and plentiful
    thresholds, the per-stage domain gap, measured against the sim data the checkpoint was
    pretrained on (its card's ``trained_on.paths``).
    """
    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.experiments.domain_gap import FreezeRule, measure_gap, recommend_freeze
    from sim2real.transfer.datasets import open_records
    from sim2real.transfer.splits import split_records

    if config.checkpoint is None:
        raise ValueError("--freeze rule: no checkpoint given (--checkpoint)")
    if not config.data:
        raise ValueError("--freeze rule: no real data given (--data)")
    records = open_records(config.data).records
    split = split_records(records, config.split, seed=config.train.seed)
    n = len(split.train) if config.frames is None else min(config.frames, len(split.train))
    model, card = load_checkpoint(config.checkpoint)
    rule = FreezeRule()
    stages = list(model.encoder.stage_names)
    if n < rule.scarce_frames and rule.scarce_freeze == "all":
        return len(stages), f"{n} real frames < {rule.scarce_frames}: scarce, head only"
    if n >= rule.plentiful_frames:
        return 0, f"{n} real frames >= {rule.plentiful_frames}: plentiful, nothing frozen"
    sim = [p for p in card.trained_on.get("paths", []) if Path(p).exists()]
    if not sim:
        raise ValueError(
            f"--freeze rule with {n} real frames needs the domain gap, measured against the sim "
            f"data {config.checkpoint} was pretrained on, and its card names none that exist; "
            "run `sim2real gap` and pass --freeze K"
        )
    gap = measure_gap(model, sim, config.data, n_real=n, rule=rule, progress=False)
    advice = recommend_freeze(n, gap["stages"], rule)
    return advice.freeze, f"{advice.regime}: {advice.rule}"


def freeze_value(text: str):
    """A ``--freeze`` value as ``adapter.freeze`` takes it (None for ``rule``, decided later
    from the data by `rule_freeze`)."""
    from sim2real.transfer.finetune import parse_freeze

    return None if text == RULE else parse_freeze(text)


def cotrain_value(paths: list[str]) -> dict:
    """``--cotrain-sim [SIM_TUB ...]`` as the ``cotrain`` mapping: co-training on, on these
    tubs (none: the file's, else the parent checkpoint's pretraining data)."""
    return {"sim": [str(p) for p in paths]} if paths else {}


def none_alone(flag: str, values: list, what: str) -> bool:
    """Whether an option's `values` are the word ``none`` alone (the option's "off");
    ValueError (one line) for ``none`` among other `what`."""
    words = [str(v).lower() for v in values]
    if words == ["none"]:
        return True
    if "none" in words:
        raise ValueError(f"{flag}: 'none' cannot be combined with {what}: {values}")
    return False


def pseudo_label_value(paths: list[str]) -> dict | None:
    """``--pseudo-label [REAL ...]`` as the ``selftrain`` mapping: self-training on, on these
    unlabeled recordings (no path: the rest of the training part of --data); ``none`` alone:
    off (None leaves the field unset)."""
    if none_alone("--pseudo-label", paths, "paths"):
        return None
    return {"unlabeled": [str(p) for p in paths]}  # the teacher, frames: `command_fields`


def ensemble_value(refs: list[str]) -> list[str]:
    """``--ensemble-with CKPT ...`` as ``ensemble_with``; ``none`` alone: one network."""
    if none_alone("--ensemble-with", refs, "checkpoints"):
        return []
    return [str(r) for r in refs]


def print_val_metrics(metrics: dict) -> None:
    """One line per output of a card's validation metrics: RMSE, MAE and frame count."""
    for name, m in metrics["val"].items():
        print(f"  {name:20s} val RMSE {m['rmse']:.4f}  MAE {m['mae']:.4f}  (n={m['n']})")


def _report_ensemble(result) -> None:
    """Print each member's start, rung and validation loss, then the ensemble's."""
    step = result.card.history[-1]
    for m in step["members"]:
        print(
            f"  {m['folder']}: from {m['parent']}, rung {m['rung']}, val loss "
            f"{m['best_val_loss']:.4f}"
        )
    metrics = result.card.metrics
    frames = result.card.trained_on["frames"]
    print(
        f"ensemble of {len(step['members'])} fine-tuned on {frames['train']} real frames (val "
        f"{frames['val']}) in {result.seconds:.1f} s: val loss {metrics['best_val_loss']:.4f}; "
        f"checkpoint {result.out_dir}"
    )
    print_val_metrics(metrics)


def handler(args: argparse.Namespace) -> int:
    from sim2real.experiments.config_options import config_from_args
    from sim2real.transfer.finetune import FinetuneConfig, finetune

    config = config_from_args(FinetuneConfig, args)
    resuming = args.out if args.resume else None
    chosen, in_file, off = selftrain_mentions(args)
    config.selftrain, why = default_selftrain(config, chosen, resuming, in_file=in_file, off=off)
    if why:
        print(why)
    config.ensemble_with = default_ensemble(config, resuming)
    if config.ensemble_with:
        others = ", ".join(config.ensemble_with)
        print(f"ensemble: {config.checkpoint} + {others} (--ensemble-with; none: one network)")
    if args.freeze == RULE:
        config.adapter.freeze, why = rule_freeze(config)
        print(f"freeze rule: freeze {config.adapter.freeze} stage(s) ({why})")
    result = finetune(config, args.out, resume=args.resume, log_line=print)
    if result.card.members:
        _report_ensemble(result)
        return 0
    frames = result.card.trained_on["frames"]
    how = "from scratch" if config.from_scratch else f"frozen {', '.join(result.frozen) or 'none'}"
    if result.ladder is not None:
        search = result.ladder
        print(search.table())
        how = f"rung {search.pick}, {search.epochs} epochs; " + how
    if config.selftrain is not None:
        step = result.card.history[-1]
        how = (
            f"student on {result.card.trained_on['pseudo_labelled']} pseudo-labelled frames, "
            f"teacher in {result.out_dir / 'teacher'} ({step['teacher']['seconds']:.1f} s); " + how
        )
    if result.cached_features:
        how += ", cached features"
    metrics = result.card.metrics
    print(
        f"fine-tuned {config.adapter.outputs} on {frames['train']} real frames "
        f"(val {frames['val']}; {how}) in {result.seconds:.1f} s: val loss "
        f"{metrics['best_val_loss']:.4f}; checkpoint {result.out_dir}"
    )
    print_val_metrics(metrics)
    if config.align is not None:
        _report_gap(config, result.out_dir)
    return 0


def _report_gap(config, out_dir: Path) -> None:
    """Print (and save as alignment_gap.json) the per-stage sim-vs-real gap of the parent
    and the fine-tuned network on the unlabeled frames, when sim frames are at hand."""
    from sim2real.agents.checkpoint import load_checkpoint
    from sim2real.common.io import atomic_write_json
    from sim2real.experiments.alignment_gap import format_before_after, gap_before_after
    from sim2real.transfer.alignment import open_unlabeled
    from sim2real.transfer.cotrain import (
        CotrainConfig,
        held_out_images,
        open_sim_frames,
        sim_paths,
    )

    parent, card = load_checkpoint(config.checkpoint)
    tuned, _ = load_checkpoint(out_dir)
    cotrain = config.cotrain or CotrainConfig()
    try:
        paths = sim_paths(cotrain, card)
    except ValueError as exc:
        print(f"domain gap not measured: {exc}")
        return
    cache = Path(config.cache_dir) if config.cache_dir else None
    pre, progress = tuned.spec.preprocessing, config.train.progress
    small = cotrain.model_copy(update={"max_sim_frames": 500})
    sim = open_sim_frames(small, paths, tuned.outputs, pre, cache_dir=cache, progress=progress)
    align = config.align.model_copy(update={"max_frames": 500})
    held_out = held_out_images(config)
    real = open_unlabeled(align, pre, exclude=held_out, cache_dir=cache, progress=progress)
    gap = gap_before_after(parent, tuned, sim.images, real)
    atomic_write_json(out_dir / "alignment_gap.json", gap)
    print("per-stage sim-vs-real gap on the unlabeled frames, parent -> fine-tuned:")
    print(format_before_after(gap))


def register(subparsers: argparse._SubParsersAction) -> None:
    from sim2real.experiments.config_options import add_crop_top, add_set_option, add_shortcut
    from sim2real.transfer.ladder import RUNG_TEXT

    rungs = "; ".join(f"{name}: {text}" for name, text in RUNG_TEXT.items())
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a pretrained checkpoint on real frames",
        description="Adapt a sim-pretrained checkpoint to real DonkeyCar data. By default "
        "(--freeze auto) K-fold cross-validation over contiguous time blocks of the training "
        "frames picks how much to adapt (a rung of the ladder) and for how many epochs, then "
        "trains that on every frame; augmentation mirrors frames with steering negated "
        "(image rungs also change colour and geometry); a later time block is reported as "
        "validation, the last block held out for `sim2real evaluate`. OUT becomes a "
        "checkpoint folder. --from-scratch trains the same architecture from random init "
        "with the same budget (the baseline).",
    )
    add_shortcut(
        parser,
        "--checkpoint",
        "checkpoint",
        type=Path,
        help="pretrained checkpoint folder, or a shipped name (sim2real models)",
    )
    add_shortcut(
        parser, "--data", "data", nargs="+", metavar="REAL", help="real tub(s) or CSV folders"
    )
    parser.add_argument("--out", required=True, type=Path, help="output checkpoint folder")
    add_shortcut(
        parser, "--frames", "frames", type=int, help="train on N frames (default: all usable)"
    )
    add_shortcut(
        parser,
        "--freeze",
        "adapter.freeze",
        convert=freeze_value,
        metavar="WHAT",
        help="auto (default: the rung and epochs picked by K-fold CV); a rung, least to most "
        f"capacity ({rungs}; epochs picked by CV); rule (the domain-gap freeze rule); or "
        "stages frozen, early stopping on the validation block: K (the first K), all, none, "
        "stage names (stage1,stage2)",
    )
    add_shortcut(
        parser, "--folds", "ladder.folds", type=int, help="K of the cross-validation (default 5)"
    )
    add_shortcut(
        parser,
        "--from-scratch",
        "from_scratch",
        action="store_true",
        help="random init, all trainable",
    )
    add_crop_top(parser)
    add_shortcut(parser, "--epochs", "train.epochs", type=int, help="the CV's maximum")
    add_shortcut(parser, "--seed", "train.seed", type=int, help="training seed")
    parser.add_argument("--config", type=Path, help="YAML FinetuneConfig (adapter, train, ...)")
    add_shortcut(parser, "--device", "train.device", help="auto, cpu, cuda")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in OUT")
    add_shortcut(
        parser,
        "--cotrain-sim",
        "cotrain",
        convert=cotrain_value,
        nargs="*",
        metavar="SIM_TUB",
        help="co-train on sim frames too: these sim tubs, or with no path the parent "
        "checkpoint's pretraining data",
    )
    add_shortcut(
        parser,
        "--cotrain-ratio",
        "cotrain.ratio",
        type=float,
        help="co-training: real share of each batch and of its loss (default 0.5)",
    )
    add_shortcut(
        parser,
        "--real-unlabeled",
        "align.unlabeled",
        nargs="+",
        metavar="REAL",
        help="unlabeled real frames (labels ignored): AdaBN statistics and a CORAL loss",
    )
    add_shortcut(
        parser,
        "--pseudo-label",
        "selftrain",
        convert=pseudo_label_value,
        nargs="*",
        metavar="REAL",
        help="self-training: the fine-tuned network (teacher, kept in OUT/teacher) labels "
        "these unlabeled real frames (no path: the rest of --data's training part), steering "
        "from the recording's future optical flow (the motion teacher; "
        "--set selftrain.teacher=network: the network alone), the labels are smoothed along "
        f"time, and a student trains on at most {COMMAND_MAX_FRAMES:,} of them and the "
        "labelled frames; none: off (default: "
        "on, on the rest of --data's training part, for "
        f"--freeze auto from a pretrained network when {SELFTRAIN_MIN_UNLABELED} or more "
        "frames are left after --frames)",
    )
    add_shortcut(
        parser,
        "--mirror-average",
        "mirror_average",
        convert=lambda text: text == "on",
        choices=["on", "off"],
        help="the saved network averages its prediction with the mirror image's (steering "
        "negated back) at inference: evaluate, export and the pilot run it (default: on, "
        "except for --freeze calibrate, whose steering offset it would cancel)",
    )
    add_shortcut(
        parser,
        "--ensemble-with",
        "ensemble_with",
        convert=ensemble_value,
        nargs="+",
        metavar="CKPT",
        help="also fine-tune these pretrained starts (folders or shipped names) on the same "
        "frames with the same settings, and save the average of all (one checkpoint, one ONNX "
        "graph; OUT/member-<i> holds each); none: one network (default: pilotnet-styles "
        "when --checkpoint is pilotnet-recipe, for a plain fine-tune that does not "
        "self-train)",
    )
    add_set_option(parser)
    parser.set_defaults(func=handler)
