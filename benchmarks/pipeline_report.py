"""Targets and the markdown table of the pipeline benchmark (benchmarks/results/pipeline.{json,md})."""

from __future__ import annotations

from pathlib import Path

TARGET_N, TARGET_S, TARGET_MB, TARGET_RATIO = 1_000_000, 300.0, 2048.0, 0.03


def targets(e: dict) -> dict:
    """Whether each issue target is met; below 1M the time is projected linearly (and says so)."""
    out: dict = {}
    lib = e.get("incremental", {}).get("library")
    if lib:
        n, total, cpu = e["n"], lib["total_s"], lib["total_cpu_s"]
        full = e.get("full", {}).get("full")
        if full and e["full"]["docs"] >= 0.99 * TARGET_N:  # the full rebuild is N + N/100 documents
            n, total, cpu = e["full"]["docs"], full["total_s"], full["total_cpu_s"]
            basis = f"measured: full rebuild of {n:,} documents, scaled to 1M"
        elif n >= TARGET_N:
            basis = "measured"
        else:
            basis = f"projected linearly from N={n:,} (not measured at 1M)"
        at_1m = total * TARGET_N / n
        out["time_1m"] = {"target_s": TARGET_S, "seconds": round(at_1m, 1), "basis": basis, "met": at_1m <= TARGET_S,
                          # CPU seconds (all threads) barely depend on the machine's load, unlike wall: on an
                          # idle machine the wall is about this or less (the stages use a second core in part).
                          "cpu_seconds": round(cpu * TARGET_N / n, 1)}
        measured = n >= 0.99 * TARGET_N
        # With worker processes the target is the whole process tree's (polled sum of RSS: driver, workers,
        # the loader); older entries ran in one process and give that process's stage peak.
        tree = "workers" in e.get("incremental", {})
        peak = max(e[m]["process_peak_mb" if tree else ("library_peak_rss_mb" if m == "incremental" else "peak_rss_mb")]
                   for m in ("incremental", "full") if m in e)
        out["peak_memory"] = {"target_mb": TARGET_MB, "peak_mb": peak, "at_n": n, "met": peak <= TARGET_MB,
                              "of": "process tree (polled)" if tree else "the stages' process (VmHWM)",
                              "basis": "measured" if measured else f"measured at N={n:,}; the target is for 1M"}
    if "incremental" in e and "full" in e:
        new, full = e["incremental"]["new_day"]["total_s"], e["full"]["full"]["total_s"]
        new_cpu, full_cpu = e["incremental"]["new_day"]["total_cpu_s"], e["full"]["full"]["total_cpu_s"]
        # Wall times of two runs on a loaded machine differ by the load; CPU seconds compare fairly.
        out["incremental"] = {"target_ratio": TARGET_RATIO, "new_day_s": new, "full_rebuild_s": full,
                              "ratio": round(new / full, 4), "met": new / full <= TARGET_RATIO,
                              "new_day_cpu_s": new_cpu, "full_rebuild_cpu_s": full_cpu,
                              "cpu_ratio": round(new_cpu / full_cpu, 4), "met_cpu": new_cpu / full_cpu <= TARGET_RATIO}
    if "identical" in e:
        out["identical_output"] = {"met": all(v["identical"] for v in e["identical"].values())}
    return out


STAGE_HEAD = ["| stage | rows in | wall s | CPU s | rows/s | wall: lock wait / read / compute / index lookups / write s |",
              "|---|---|---|---|---|---|"]


def _stage_rows(report: dict) -> list[str]:
    rows = []
    for stage, s in report["stages"].items():
        rate = f"{s['rows_per_s']:,}" if s["rows_per_s"] else "-"
        parts = (f"{s.get('wait_s', 0):.1f} / {s['read_s']:.1f} / {s['compute_s']:.1f} / {s.get('index_s', 0):.1f} / "
                 f"{s['write_s']:.1f}") if "read_s" in s else "-"
        rows.append(f"| {stage} | {s['rows_in']:,} | {s['seconds']:.1f} | {s['cpu_s']:.1f} | {rate} | {parts} |")
    return rows


def _load(r: dict) -> str:
    return f"{r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}"


def _section(e: dict) -> list[str]:
    n, lines = e["n"], []
    inc, full, dag = e.get("incremental"), e.get("full"), e.get("dagster")
    lines.append(f"### N = {n:,} ({e['days']} days x {e['sources']} sources; run {e['started']})\n")
    if inc:
        lib = inc["library"]
        workers = inc.get("workers", 1)
        note = (f" on {workers} worker processes: a stage's wall is summed over the workers, the total is the elapsed "
                f"wall (CPU: the workers' and the driver's, the workers' start included)" if workers > 1 else "")
        lines += [f"Library mode, {inc['base_docs']:,} documents, {inc['partitions']} partitions{note} "
                  f"(loading raw_examples apart: {inc['load_s']:.1f} s). Rows/s = rows into the stage / its wall.\n",
                  *STAGE_HEAD, *_stage_rows(lib),
                  f"| **total** | {inc['base_docs']:,} docs | **{lib['total_s']:.1f}** | {lib['total_cpu_s']:.1f} | "
                  f"{round(inc['base_docs'] / lib['total_s']):,} docs/s | |", ""]
        nd = inc["new_day"]
        lines += [f"New day of {inc['new_docs']:,} documents (1 %) on top of it:\n",
                  *STAGE_HEAD, *_stage_rows(nd),
                  f"| **total** | {inc['new_docs']:,} docs | **{nd['total_s']:.1f}** | {nd['total_cpu_s']:.1f} | - | |", ""]
    if full:
        fr = full["full"]
        lines += [f"Full rebuild of {full['docs']:,} documents ({full['partitions']} partitions):\n", *STAGE_HEAD, *_stage_rows(fr),
                  f"| **total** | {full['docs']:,} docs | **{fr['total_s']:.1f}** | {fr['total_cpu_s']:.1f} | "
                  f"{round(full['docs'] / fr['total_s']):,} docs/s | |", ""]
    lines += ["| measure | value |", "|---|---|"]
    if inc:
        lines.append(f"| library mode, wall / CPU | {inc['library']['total_s']:.1f} s / {inc['library']['total_cpu_s']:.1f} s "
                     f"({round(inc['base_docs'] / inc['library']['total_s']):,} docs/s) |")
        lines.append(f"| peak memory, library mode: the stages (VmHWM after loading); the process tree (polled, incl. "
                     f"reading the corpus and the new day) | {inc['library_peak_rss_mb']:.0f} MB; {inc['process_peak_mb']:.0f} MB |")
    if full:
        lines.append(f"| full rebuild of {full['docs']:,} docs, wall / CPU | {full['full']['total_s']:.1f} s / "
                     f"{full['full']['total_cpu_s']:.1f} s, peak {full['peak_rss_mb']:.0f} MB |")
    if inc and full:
        t = e["targets"]["incremental"]
        lines.append(f"| new day (1 %) / full rebuild (target <= 3 %) | wall {t['new_day_s']:.1f} s / {t['full_rebuild_s']:.1f} s = "
                     f"**{100 * t['ratio']:.2f} %**; CPU {t['new_day_cpu_s']:.1f} s / {t['full_rebuild_cpu_s']:.1f} s = "
                     f"**{100 * t['cpu_ratio']:.2f} %** |")
    if "identical" in e:
        same = ", ".join(f"{k} {'=' if v['identical'] else '!='} ({v['rows_full']:,} rows)" for k, v in e["identical"].items())
        lines.append(f"| incremental == full rebuild | {same} |")
    if dag:
        lib = (inc if dag["docs"] == n else e.get("dagster_library", {})).get("library")
        d = dag["dagster"]
        over = (f"wall {d['total_s'] - lib['total_s']:.1f} s ({100 * (d['total_s'] / lib['total_s'] - 1):.0f} %); "
                f"CPU {d['cpu_s'] - lib['total_cpu_s']:.1f} s ({100 * (d['cpu_s'] / lib['total_cpu_s'] - 1):.0f} %), "
                f"{(d['cpu_s'] - lib['total_cpu_s']) / (dag['partitions'] + 1):.2f} CPU s per run") if lib else "-"
        lines.append(f"| Dagster mode, {dag['docs']:,} docs: {dag['partitions']} partition runs + 1 global run | "
                     f"{d['partition_runs_s']:.1f} s + {d['global_run_s']:.1f} s = {d['total_s']:.1f} s "
                     f"(CPU {d['cpu_s']:.1f} s), peak {dag['peak_rss_mb']:.0f} MB |")
        lines.append(f"| Dagster overhead (Dagster - library mode, same N) | {over} |")
    for mode in ("incremental", "full", "dagster"):
        if e.get(mode):
            lines.append(f"| load average during `{mode}` (1 min, before -> after) | {_load(e[mode])} |")
    t = e.get("targets", {})
    if "time_1m" in t:
        lines.append(f"| target: 1M in <= 5 min | {'met' if t['time_1m']['met'] else '**not met**'}: "
                     f"{t['time_1m']['seconds']:.0f} s wall, {t['time_1m']['cpu_seconds']:.0f} CPU s ({t['time_1m']['basis']}) |")
        lines.append(f"| target: peak <= 2 GB | {'met' if t['peak_memory']['met'] else '**not met**'}: "
                     f"{t['peak_memory']['peak_mb']:.0f} MB, {t['peak_memory'].get('of', 'one process')} "
                     f"({t['peak_memory']['basis']}) |")
    return lines + [""]


def write_table(data: dict, path: Path) -> str:
    head = ["# Curation pipeline benchmark", "",
            "Generated by `benchmarks/run_pipeline.py` (benchmarks/README.md). Stages as the assets run them "
            "(read the upstream partition, compute, replace the partition and its decisions in one transaction), "
            "`CurationSettings()` defaults without NER or LLM judge. Wall and CPU seconds per stage; the machine's "
            "load average is recorded with each run (a shared 2-core machine inflates wall times).", ""]
    order = sorted(data["runs"], key=lambda k: (int(k.split("-")[0]), k))
    body = [line for k in order for line in _section(data["runs"][k])]
    text = "\n".join(head + body)
    path.write_text(text)
    return text
