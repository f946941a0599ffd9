"""Cut the shipped real sample out of usi-track-a: a few contiguous blocks, images copied as is.

    python scripts/make_sample.py --src ../shared/data/real/usi-track-a \
        --out transfer/sample_data/usi-track-a-sample

Frames keep their catalog values (labels, timestamps, session) and their JPEG bytes; indexes
are renumbered from 0. The first and fourth blocks reach into frames the owner deleted, and
those stay listed in `deleted_indexes`, so the sample exercises the reader's deleted handling.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from sim2real.common.io import atomic_write_text
from sim2real.transfer.tub import IMAGES, TubWriter, read_manifest

# Inclusive ranges of original `_index`es: 5 blocks of 200 usable frames (10 s each) from the
# start, middle and end of the session; 11043-11082 and 18542-18581 are deleted in the source.
BLOCKS = [(11043, 11282), (13500, 13699), (15800, 15999), (18342, 18581), (20500, 20699)]
SOURCE = "github.com/criscola/donkeycar"
COMMIT = "ff5a5fab980f8a21f2a1409c00b2a4257f1d0ed1"


def latest_records(tub: Path) -> dict[int, dict]:
    """Every catalog record of `tub` by `_index`, the last written copy of each index."""
    manifest = read_manifest(tub)
    records: dict[int, dict] = {}
    for name in manifest["catalog"]["paths"]:
        for line in (tub / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                records[int(record["_index"])] = record
    return records


def make_sample(src: Path, out: Path) -> dict[str, int]:
    manifest = read_manifest(src)
    inputs, types = manifest["inputs"], manifest["types"]
    deleted_src = set(manifest["catalog"]["deleted_indexes"])
    records = latest_records(src)
    image_key = inputs[types.index("image_array")]
    deleted_new: list[int] = []
    rows = []
    metadata = {
        "sample_of": "usi-track-a",
        "source": f"{SOURCE}@{COMMIT} mycar/data",
        "blocks": ",".join(f"{a}-{b}" for a, b in BLOCKS),
    }
    with TubWriter(out, inputs, types, metadata=metadata, max_len=1000) as writer:
        for first, last in BLOCKS:
            for index in range(first, last + 1):
                raw = records[index]
                image = (src / IMAGES / raw[image_key]).read_bytes()
                fields = {k: raw[k] for k in inputs if k != image_key}
                fields["_timestamp_ms"] = raw["_timestamp_ms"]
                fields["_session_id"] = raw["_session_id"]
                new = writer.write(fields, image)
                if index in deleted_src:
                    deleted_new.append(new)
            rows.append((first, last, new - (last - first), new))
        writer.delete(deleted_new)
    shutil.copyfile(src / "LICENSE", out / "LICENSE")
    total = sum(last - first + 1 for first, last in BLOCKS)
    atomic_write_text(out / "README.md", readme(rows, deleted_new, total))
    return {"records": total, "deleted": len(deleted_new), "usable": total - len(deleted_new)}


def readme(rows: list[tuple[int, int, int, int]], deleted: list[int], total: int) -> str:
    table = "\n".join(f"| {a}-{b} | {c}-{d} |" for a, b, c, d in rows)
    spans = _spans(deleted)
    return f"""# usi-track-a-sample: a small real DonkeyCar tub shipped with sim2real

{total} records ({total - len(deleted)} usable, {len(deleted)} deleted) cut from the real
recording `usi-track-a`: a 1/10-scale DonkeyCar driven by a person around a printed road mat
indoors, 160x120 RGB JPEGs from a wide-angle Raspberry Pi camera, labels `user/angle`
(-1 = full left) and `user/throttle`.

- Source: the public repository {SOURCE}, commit {COMMIT}, folder `mycar/data/`.
- Licence: MIT, the repository's root licence, copied unchanged in `LICENSE`
  ("Copyright (c) 2017 Will Roscoe").
- Made by `scripts/make_sample.py`: catalog values (labels, `_timestamp_ms`, `_session_id`)
  and JPEG bytes are copied unchanged; `_index` is renumbered from 0.
- Deleted indexes (flagged bad by the dataset's owner, kept and listed in
  `deleted_indexes` as DonkeyCar does): {spans}.

| original `_index` (inclusive) | sample `_index` |
|---|---|
{table}

Five blocks of 200 usable frames (10 s at 20 Hz) from the start, middle and end of the
session: each holds straights and turns both ways. Blocks are contiguous in time; there are
gaps between blocks.
"""


def _spans(indexes: list[int]) -> str:
    spans, start = [], None
    for i, index in enumerate(indexes):
        if start is None:
            start = index
        if i + 1 == len(indexes) or indexes[i + 1] != index + 1:
            spans.append(f"{start}-{index}")
            start = None
    return ", ".join(spans) or "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="the usi-track-a tub folder")
    parser.add_argument("--out", type=Path, required=True, help="new sample tub folder")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args()
    if args.out.exists():
        if not args.force:
            print(f"{args.out} exists; pass --force to replace it", file=sys.stderr)
            return 2
        shutil.rmtree(args.out)
    print(make_sample(args.src, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
