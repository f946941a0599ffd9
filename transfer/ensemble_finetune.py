"""`finetune --ensemble-with CKPT ...`: fine-tune several starts on the same frames, save the
average (`sim2real.agents.ensemble`).

Each start (``config.checkpoint`` first, then the `--ensemble-with` ones) goes through
`finetune` itself, with the same config (rung search, seeds, mirror average, ...) and the same
frames, into ``OUT/member-<i>``; then ``OUT/model.json`` lists the members and records each
one's start, rung and ladder table, and the ensemble's validation metrics (the network as
saved). Resumable: a member whose checkpoint is written is kept, an interrupted one resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sim2real.agents.checkpoint import CARD_FILE, ModelCard, check_one_network, read_card
from sim2real.agents.ensemble import check_members, load_ensemble, member_folder, save_ensemble
from sim2real.agents.shipped import checkpoint_reference, resolve_checkpoint
from sim2real.agents.training import RESUMABLE_CHANGES, RESUME_FILE
from sim2real.common.runs import check_run_dir, code_version, describe_run
from sim2real.transfer.training_data import TrainingData


def member_rung(step: dict) -> str | None:
    """The rung a member's last card step picked; for a self-trained member (no ladder of its
    own) its teacher's, as ``"student of RUNG"``; None for a rung named by the user."""
    if step.get("ladder"):
        return step["ladder"].get("pick")
    teacher_rung = (step.get("teacher") or {}).get("rung")
    return f"student of {teacher_rung}" if teacher_rung else None


def check_starts(config, starts: Sequence[str]) -> None:
    """ValueError (one line) unless `starts` can be fine-tuned into one ensemble: no start
    twice, no ensemble, single-frame networks taking the same input (outputs are the
    adapter's)."""
    if config.from_scratch:
        raise ValueError("--ensemble-with fine-tunes pretrained starts; drop --from-scratch")
    if config.checkpoint is None:
        raise ValueError("no checkpoint given (--checkpoint): the first start of the ensemble")
    folders = [resolve_checkpoint(s).resolve() for s in starts]
    for i, folder in enumerate(folders):
        if folder in folders[:i]:
            raise ValueError(f"{starts[i]} is given twice as an ensemble start ({folder})")
    specs = []
    for start in starts:
        card = read_card(start)
        check_one_network(resolve_checkpoint(start), card)
        specs.append(card.spec.model_copy(update={"outputs": list(config.adapter.outputs)}))
    check_members(specs, [str(s) for s in starts])


def finetune_ensemble(
    config,
    out_dir: Path,
    starts: Sequence[str],
    *,
    resume: bool = False,
    data: TrainingData | None = None,
    log_line: Callable[[str], None] | None = None,
):
    """Fine-tune every start in `starts` as `finetune` does, on the same frames, into
    `out_dir`/member-<i>, and save the ensemble card in `out_dir`; a `FinetuneResult`."""
    from sim2real.transfer.finetune import (
        FinetuneResult,
        finetune,
        input_preprocessing,
        open_finetune_data,
        validation_scores,
    )

    started = time.perf_counter()
    check_starts(config, starts)
    members = [member_folder(i) for i in range(len(starts))]
    # any run begun there, an ensemble's or (interrupted) a single network's, counts
    begun = (
        (out_dir / CARD_FILE).is_file()
        or (out_dir / "config.yaml").is_file()
        or any((out_dir / m / "config.yaml").is_file() for m in members)
        or any(out_dir.glob(f"**/{RESUME_FILE}"))
    )
    check_run_dir(
        out_dir,
        config,
        started=begun,
        resume=resume,
        what="an ensemble fine-tuning run",
        may_change=RESUMABLE_CHANGES,
    )
    first = config.model_copy(update={"checkpoint": str(starts[0]), "ensemble_with": []})
    if data is None:  # the same frames for every member (they share crop and input size)
        data = open_finetune_data(
            first, input_preprocessing(first, read_card(starts[0]).spec.preprocessing)
        )
    if config.selftrain is not None:  # too few unlabeled frames: refused before any write
        from sim2real.transfer.selftrain import check_unlabeled

        check_unlabeled(first, data)
    describe_run(out_dir, config)
    cards: list[ModelCard] = []
    for i, (start, name) in enumerate(zip(starts, members, strict=True)):
        folder = out_dir / name
        if (folder / CARD_FILE).is_file():
            cards.append(read_card(folder))
            if log_line is not None:
                log_line(f"member {i} ({start}): already fine-tuned in {folder}, kept")
            continue
        member = config.model_copy(update={"checkpoint": str(start), "ensemble_with": []})
        if log_line is not None:
            log_line(f"member {i}: fine-tuning {start} into {folder}")
        result = finetune(member, folder, resume=resume, data=data, log_line=log_line)
        if result.ladder is not None and log_line is not None:
            log_line(result.ladder.table())
        cards.append(result.card)

    provisional = ModelCard(kind=cards[0].kind, spec=cards[0].spec, members=members)
    model = load_ensemble(out_dir, provisional)
    val_loss, val_metrics = validation_scores(model, data.val, config.train)
    seconds = time.perf_counter() - started
    step = {
        "step": "finetune_ensemble",  # fitted `split` on real frames (`evaluate.card_split`)
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "members": [
            {
                "folder": name,
                "parent": checkpoint_reference(start),
                "rung": member_rung(card.history[-1]),
                "mirror_average": card.spec.mirror_average,  # (may differ: `calibrate`)
                "ladder": card.history[-1].get("ladder")
                or (card.history[-1].get("teacher") or {}).get("ladder"),
                "val": card.metrics.get("val"),
                "best_val_loss": card.metrics.get("best_val_loss"),
                "seconds": card.history[-1].get("seconds"),
            }
            for name, start, card in zip(members, starts, cards, strict=True)
        ],
        "data": data.trained_on,
        "seconds": seconds,
    }
    parents = [m["parent"] for m in step["members"]]
    card = ModelCard(
        kind=cards[0].kind,
        spec=model.spec,
        trained_on={**data.trained_on, "parent_checkpoint": parents[0], "parents": parents},
        split=data.split,
        metrics={"val": val_metrics, "best_val_loss": val_loss},
        code_version=code_version(),
        history=[step],
        members=members,
    )
    save_ensemble(out_dir, card)
    return FinetuneResult(out_dir, card, [], [], False, seconds)
