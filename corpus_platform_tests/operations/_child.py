"""The processes the crash-safety tests kill with SIGKILL (`python -m corpus_platform_tests.operations._child`).

Each prints progress markers on stdout (one line each, flushed) so the parent can kill it at a chosen
point, and `--pause` holds the process at a marker (reading stdin, which the parent never answers), so a
kill lands exactly there:

- `curate HOME DATE SOURCE`: the `curate_partition` job for one partition, in process, with the live
  sources from CORPUS_TEST_* (see `_location.py`). `WRITE <n> <table> <rows>` is printed inside the
  warehouse transaction of every write, after the partition's old rows were deleted and before the new
  ones are inserted; `--pause N` holds there at the N-th write (`--after`: once its rows are inserted,
  still uncommitted).
- `train ARGS_JSON`: `train_lora` on a tiny model; `STEP <n>` after every optimizer step, `SAVED <n>`
  after every checkpoint, `CARD` when the finished adapter's files are written into its temp dir and the
  model card is next (`--pause` holds there: mid-save).
- `export ROOT ROWS`: `write_exports` of ROWS generated examples; `EXPORT` before it starts.

Every command ends with `DONE ok` or `DONE failed`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def hold() -> None:
    say("PAUSED")
    sys.stdin.readline()
    time.sleep(3600)  # the parent kills us here


def curate(args: argparse.Namespace) -> bool:
    from datetime import date

    import dagster as dg

    from corpus_platform import warehouse
    from corpus_platform.definitions import make_definitions
    from corpus_platform.defs.partitions import partition_key
    from corpus_platform.demo.run import QUIET
    from corpus_platform_tests.operations._harness import live_resources_from_env

    insert, count = warehouse._insert, [0]

    def announced(con, table, df):
        count[0] += 1
        say(f"WRITE {count[0]} {table} {df.height}")
        if args.pause == count[0] and not args.after:
            hold()
        insert(con, table, df)
        if args.pause == count[0] and args.after:
            hold()

    warehouse._insert = announced  # replace_rows looks it up at call time, inside its transaction
    defs = make_definitions(Path(args.home), sources=live_resources_from_env())
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("curate_partition").execute_in_process(
            partition_key=partition_key(date.fromisoformat(args.date), args.source), instance=instance,
            run_config=QUIET, raise_on_error=False)
    return result.success


def train(args: argparse.Namespace) -> bool:
    from transformers import TrainerCallback

    from corpus_platform.training import card
    from corpus_platform.training.lora import LoraTrainingConfig, train_lora

    spec = json.loads(args.spec)

    class Announce(TrainerCallback):
        def on_step_end(self, _args, state, control, **kw):
            say(f"STEP {state.global_step}")

        def on_save(self, _args, state, control, **kw):
            say(f"SAVED {state.global_step}")

    write_card = card.write_model_card

    def announced_card(*a, **kw):
        say("CARD")
        if args.pause:
            hold()
        return write_card(*a, **kw)

    card.write_model_card = announced_card  # train_lora imports it when it runs
    metrics = train_lora(spec["model"], spec["train"], spec["val"], spec["out"], LoraTrainingConfig(**spec["config"]),
                         lineage=spec.get("lineage"), callbacks=(Announce(),))
    say("METRICS " + json.dumps({k: metrics[k] for k in ("steps", "resumed_from_step", "eval_loss")}))
    return True


def export(args: argparse.Namespace) -> bool:
    import polars as pl

    from corpus_platform.curation.exports import write_exports

    n = args.rows
    df = pl.DataFrame({
        "example_id": [f"ex{i:07d}" for i in range(n)],
        "split": ["train" if i % 20 else ("val" if i % 40 else "test") for i in range(n)],
        "content_hash": [f"h{i}" for i in range(n)],
        "source": ["public"] * n,
        "quality_score": [7.0] * n,
        "messages": [[{"role": "user", "content": f"Question {i}: what is {i} plus {i}?"},
                      {"role": "assistant", "content": f"{i} plus {i} is {2 * i}, because adding a number to itself doubles it."}]
                     for i in range(n)],
    })
    say("EXPORT")
    write_exports(df, Path(args.root))
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("curate")
    c.add_argument("home")
    c.add_argument("date")
    c.add_argument("source")
    c.add_argument("--pause", type=int, default=0)
    c.add_argument("--after", action="store_true")
    t = sub.add_parser("train")
    t.add_argument("spec")
    t.add_argument("--pause", action="store_true")
    e = sub.add_parser("export")
    e.add_argument("root")
    e.add_argument("rows", type=int)
    args = parser.parse_args(argv)
    ok = {"curate": curate, "train": train, "export": export}[args.command](args)
    say("DONE " + ("ok" if ok else "failed"))


if __name__ == "__main__":
    main()
