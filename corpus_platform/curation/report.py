"""The dataset report: a markdown card with plots, for the Dagster UI and beside the exports.

`build_report` is a pure function of three frames (the splits, the decision record, the duplicate
clusters): totals, a split x source table, the rejection reasons, cluster statistics and five PNGs
(conversation length, heuristic and judged scores, source mix per split, top rejection reasons,
cluster sizes). The returned markdown inlines the PNGs as data URIs (as the loss curves are shown),
so the UI renders it from asset metadata alone; `report.md` in `out_dir` links the PNG files instead.
Output is byte-stable for the same input (fixed figure sizes and dpi, no PNG `Software` stamp, stable
orders), so a rematerialization over unchanged data changes nothing. Files are written to a temp name
and renamed. A frame with no rows gives a section that says "no data", never an exception.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from corpus_platform.training.tracking import png_markdown

SPLIT_ORDER = ("train", "val", "test")
STAGE_ORDER = {"filter": 0, "dedup": 1, "near_dedup": 2, "score": 3, "judge": 4, "split": 5}
IMAGES = {
    "length_histogram": "length_histogram.png",
    "score_histograms": "score_histograms.png",
    "source_mix": "source_mix.png",
    "rejection_reasons": "rejection_reasons.png",
    "cluster_sizes": "cluster_sizes.png",
}
CARD = "report.md"
SIZE_BINS = ((2, 2), (3, 3), (4, 4), (5, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, None))
TOP_REASONS = 15  # bars in the rejection plot
TABLE_ROWS = 40  # rows of the rejection table (the summary keeps every rule)
_FIGSIZE, _DPI = (6.4, 3.4), 80


@dataclass(frozen=True)
class ReportResult:
    markdown: str  # for dg.MetadataValue.md: the images inlined as data URIs
    images: dict[str, Path]  # name -> PNG in out_dir (only the plots that had data)
    summary: dict[str, Any]  # JSON-serializable numbers behind the card, for metadata and checks
    card_path: Path | None = field(default=None)  # out_dir/report.md, images linked by file name


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _describe(values: pl.Series) -> dict[str, Any]:
    v = values.drop_nulls().drop_nans() if values.dtype.is_float() else values.drop_nulls()
    if v.len() == 0:
        return {"n": 0}
    v = v.cast(pl.Float64)
    return {"n": v.len(), "mean": _r(v.mean()), "median": _r(v.median()), "p05": _r(v.quantile(0.05, "nearest")),
            "p95": _r(v.quantile(0.95, "nearest")), "min": _r(v.min()), "max": _r(v.max())}


def _split_key(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split), "") if split in SPLIT_ORDER else (len(SPLIT_ORDER), str(split))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=_FIGSIZE, dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    import io

    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:  # counts are whole numbers
        if ax.get_ylabel() == "examples":
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})  # no version stamp: byte-stable
    _write_atomic(path, buf.getvalue())
    return path


def _length_plot(chars: pl.Series, median: float, path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    values = chars.drop_nulls().cast(pl.Float64).clip(lower_bound=1).to_list()
    lo, hi = min(values), max(values)
    if hi / lo > 50:  # heavy tail: log-spaced bins on a log axis
        edges = [lo] + [10 ** (math.log10(lo) + i * (math.log10(hi) - math.log10(lo)) / 40) for i in range(1, 40)] + [hi]
        ax.set_xscale("log")
    else:
        edges = 40
    ax.hist(values, bins=edges, color="tab:blue", alpha=0.85)
    ax.axvline(median, color="tab:orange", linestyle="--", linewidth=1, label=f"median {median:,.0f}")
    ax.set_xlabel("conversation length (characters)")
    ax.set_ylabel("examples")
    ax.set_title("Conversation length", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _score_plot(quality: pl.Series, judged: pl.Series, path: Path, *, min_quality: float | None,
                judge_threshold: float | None) -> Path:
    fig = _figure()
    edges = [1 + 0.5 * i for i in range(19)]  # 1.0 .. 10.0
    for i, (values, title, color, line) in enumerate(
            [(quality, "Heuristic quality score", "tab:blue", min_quality),
             (judged, "LLM-judge score", "tab:purple", judge_threshold)]):
        ax = fig.add_subplot(1, 2, i + 1)
        v = values.drop_nulls().cast(pl.Float64).clip(1.0, 10.0).to_list()
        if v:
            ax.hist(v, bins=edges, color=color, alpha=0.85)
            if line is not None:
                ax.axvline(line, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {line:g}")
                ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
        ax.set_xlim(1, 10)
        ax.set_title(f"{title} (n={len(v):,})", fontsize=9)
        ax.set_xlabel("score")
        ax.grid(alpha=0.3)
        if i == 0:
            ax.set_ylabel("examples")
    return _save(fig, path)


def _source_mix_plot(table: pl.DataFrame, splits: list[str], sources: list[str], path: Path) -> Path:
    from matplotlib import colormaps

    fig = _figure()
    ax = fig.add_subplot()
    cmap = colormaps["tab10" if len(sources) <= 10 else "tab20"]
    bottom = [0] * len(splits)
    counts = {(s, src): n for s, src, n in table.select("split", "source", "n").iter_rows()}
    for i, src in enumerate(sources):
        heights = [counts.get((s, src), 0) for s in splits]
        ax.bar(splits, heights, bottom=bottom, label=src, color=cmap(i % cmap.N))
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_ylabel("examples")
    ax.set_title("Source mix per split", fontsize=10)
    ax.legend(fontsize=7, ncols=2 if len(sources) > 6 else 1, loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _reasons_plot(rejections: pl.DataFrame, path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    top = rejections.head(TOP_REASONS)
    labels = [f"{st}: {rule}" for st, rule in top.select("stage", "rule").iter_rows()][::-1]
    from matplotlib.ticker import MaxNLocator

    bars = ax.barh(labels, top["count"].to_list()[::-1], color="tab:red", alpha=0.8)
    ax.bar_label(bars, labels=[f"{c:,}" for c in top["count"].to_list()[::-1]], fontsize=7, padding=2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0.1)
    ax.set_xlabel("examples")
    ax.set_title(f"Top rejection reasons ({min(TOP_REASONS, rejections.height)} of {rejections.height})", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def _cluster_plot(bins: list[tuple[str, int]], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    bars = ax.bar([b for b, _ in bins], [n for _, n in bins], color="tab:green", alpha=0.85)
    ax.bar_label(bars, labels=[f"{n:,}" for _, n in bins], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylim(0.5, max(n for _, n in bins) * 3)  # a bar of 1 stays visible on the log axis
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}" if y >= 1 else ""))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("cluster size (examples)")
    ax.set_ylabel("clusters (log scale)")
    ax.set_title("Duplicate cluster sizes", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def _table(header: Sequence[str], rows: list[Sequence[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(c) for c in row) + " |" for row in rows)]


def build_report(splits: pl.DataFrame, decisions: pl.DataFrame, clusters: pl.DataFrame, out_dir: Path | str, *,
                 title: str = "Dataset report", min_quality: float | None = None,
                 judge_threshold: float | None = None) -> ReportResult:
    """The card for `splits` (example_id, source, split, quality_score, judged_score nullable, chars),
    `decisions` (corpus.decisions columns) and `clusters` (cluster_id, size; clusters of 2+ members;
    per-member rows are collapsed by cluster_id). PNGs and report.md are written into `out_dir`;
    `min_quality` / `judge_threshold` draw the thresholds on the score histograms."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images: dict[str, Path] = {}
    summary: dict[str, Any] = {}
    body: list[str] = []  # markdown with {image:name} placeholders, rendered twice (inline / file links)

    # -- totals and the split x source table
    n = splits.height
    summary["examples"] = n
    body += ["## Totals", ""]
    if n == 0:
        body += ["No data: the dataset has no examples yet (no split rows).", ""]
        summary.update(splits={}, sources={}, split_source={}, quality_score={"n": 0}, judged_score={"n": 0},
                       chars={"n": 0})
    else:
        table = (splits.group_by("split", "source").agg(pl.len().alias("n"))
                 .sort("split", "source"))
        split_names = sorted(set(table["split"].to_list()), key=_split_key)
        source_counts = splits.group_by("source").agg(pl.len().alias("n")).sort(["n", "source"], descending=[True, False])
        source_names = source_counts["source"].to_list()
        per_split = {s: int(table.filter(pl.col("split") == s)["n"].sum()) for s in split_names}
        counts = {(s, src): c for s, src, c in table.iter_rows()}
        judged = splits["judged_score"] if "judged_score" in splits.columns else pl.Series([], dtype=pl.Float64)
        summary.update(
            splits=per_split, sources=dict(source_counts.iter_rows()),
            split_source={s: {src: counts[(s, src)] for src in source_names if (s, src) in counts} for s in split_names},
            quality_score=_describe(splits["quality_score"]), judged_score=_describe(judged),
            chars=_describe(splits["chars"]) if "chars" in splits.columns else {"n": 0},
        )
        summary["judged_score"]["share_judged"] = _r(summary["judged_score"]["n"] / n)
        body += [f"**{n:,} examples** from {len(source_names)} source(s): "
                 + ", ".join(f"{s} {per_split[s]:,} ({_pct(per_split[s] / n)})" for s in split_names) + ".", ""]
        rows = [[src, *(f"{counts.get((s, src), 0):,}" for s in split_names),
                 f"{sum(counts.get((s, src), 0) for s in split_names):,}"] for src in source_names]
        rows.append(["**total**", *(f"**{per_split[s]:,}**" for s in split_names), f"**{n:,}**"])
        body += _table(["source", *split_names, "total"], rows) + [""]
        q, j, c = summary["quality_score"], summary["judged_score"], summary["chars"]
        stat_rows = [["heuristic quality score", f"{q['n']:,}", q.get("mean"), q.get("median"), q.get("p05"), q.get("p95")]]
        stat_rows.append(["LLM-judge score", f"{j['n']:,} ({_pct(j['share_judged'])})", j.get("mean", "-"),
                          j.get("median", "-"), j.get("p05", "-"), j.get("p95", "-")])
        if c["n"]:
            stat_rows.append(["conversation length (chars)", f"{c['n']:,}",
                              *(f"{c[k]:,.0f}" for k in ("mean", "median", "p05", "p95"))])
        body += _table(["measure", "examples", "mean", "median", "p5", "p95"], stat_rows) + [""]
        if c["n"]:
            images["length_histogram"] = _length_plot(splits["chars"], c["median"], out_dir / IMAGES["length_histogram"])
            body += ["{image:length_histogram}", ""]
        images["score_histograms"] = _score_plot(splits["quality_score"], judged, out_dir / IMAGES["score_histograms"],
                                                 min_quality=min_quality, judge_threshold=judge_threshold)
        images["source_mix"] = _source_mix_plot(table, split_names, source_names, out_dir / IMAGES["source_mix"])
        body += ["{image:score_histograms}", "", "{image:source_mix}", ""]

    # -- the decision record: stage funnel and rejection reasons
    body += ["## Curation decisions", ""]
    if decisions.height == 0:
        body += ["No data: no curation decisions recorded.", ""]
        summary.update(stages={}, rejections=[])
    else:
        stages = decisions.group_by("stage", "decision").agg(pl.len().alias("n")).sort("stage", "decision")
        stage_names = sorted(set(stages["stage"].to_list()), key=lambda st: (STAGE_ORDER.get(st, len(STAGE_ORDER)), st))
        stage_counts = {st: {d: c for s2, d, c in stages.iter_rows() if s2 == st} for st in stage_names}
        summary["stages"] = stage_counts
        funnel = [[st, f"{sum(v.values()):,}", f"{v.get('kept', 0):,}", f"{v.get('rejected', 0):,}",
                   f"{v.get('duplicate', 0):,}"] for st, v in stage_counts.items()]
        body += _table(["stage", "decided", "kept", "rejected", "duplicate"], funnel) + [""]
        totals = decisions.group_by("stage").agg(pl.len().alias("decided"))
        rejections = (decisions.filter(pl.col("decision") != "kept")
                      .with_columns(pl.coalesce(pl.col("rule"), pl.concat_str(pl.lit("("), pl.col("decision"), pl.lit(")"))).alias("rule"))
                      .group_by("stage", "rule").agg(pl.len().alias("count"))
                      .join(totals, on="stage").with_columns((pl.col("count") / pl.col("decided")).alias("share"))
                      .sort(["count", "stage", "rule"], descending=[True, False, False]))
        summary["rejections"] = [{"stage": st, "rule": rule, "count": cnt, "share": _r(share, 4)}
                                 for st, rule, cnt, _, share in rejections.iter_rows()]
        if rejections.height == 0:
            body += ["No rejections: every decided example was kept.", ""]
        else:
            body += ["Rejections and duplicates by rule (share = of the examples decided at that stage):", ""]
            body += _table(["stage", "rule", "count", "share"],
                           [[st, f"`{rule}`", f"{cnt:,}", _pct(share)]
                            for st, rule, cnt, _, share in rejections.head(TABLE_ROWS).iter_rows()])
            if rejections.height > TABLE_ROWS:
                rest = rejections.slice(TABLE_ROWS)
                body.append(f"| … | {rest.height:,} more rules | {int(rest['count'].sum()):,} | |")
            body += ["", "{image:rejection_reasons}", ""]
            images["rejection_reasons"] = _reasons_plot(rejections, out_dir / IMAGES["rejection_reasons"])

    # -- duplicate clusters
    body += ["## Duplicate clusters", ""]
    cl = (clusters.select("cluster_id", "size").unique("cluster_id").filter(pl.col("size") > 1)
          if clusters.height else pl.DataFrame(schema={"cluster_id": pl.Utf8, "size": pl.Int64}))
    if cl.height == 0:
        body += ["No data: no duplicate clusters (no example had an exact or near duplicate).", ""]
        summary["clusters"] = {"count": 0}
    else:
        sizes = cl["size"].cast(pl.Int64)
        bins = []
        for lo, hi in SIZE_BINS:
            mask = (sizes >= lo) if hi is None else ((sizes >= lo) & (sizes <= hi))
            count = int(mask.sum())
            label = str(lo) if lo == hi else (f"{lo}-{hi}" if hi is not None else f">{lo - 1}")
            if count:
                bins.append((label, count))
        summary["clusters"] = {"count": cl.height, "members": int(sizes.sum()), "removed": int((sizes - 1).sum()),
                               "max_size": int(sizes.max()), "median_size": _r(sizes.median()),
                               "mean_size": _r(sizes.mean()), "size_bins": dict(bins)}
        s = summary["clusters"]
        body += [f"{s['count']:,} clusters with {s['members']:,} members; one example kept per cluster removes "
                 f"{s['removed']:,}. Size: median {s['median_size']}, mean {s['mean_size']}, max {s['max_size']:,}.", ""]
        body += _table(["cluster size", "clusters"], [[b, f"{c:,}"] for b, c in bins]) + [""]
        biggest = cl.sort(["size", "cluster_id"], descending=[True, False]).head(5)
        body += ["Largest: " + ", ".join(f"`{cid}` ({sz:,})" for cid, sz in biggest.iter_rows()) + ".", ""]
        images["cluster_sizes"] = _cluster_plot(bins, out_dir / IMAGES["cluster_sizes"])
        body += ["{image:cluster_sizes}", ""]

    for name, file in IMAGES.items():  # a plot with no data this time must not survive from an earlier run
        if name not in images:
            (out_dir / file).unlink(missing_ok=True)

    def render(image: Any) -> str:
        lines = [f"# {title}", ""]
        for line in body:
            if line.startswith("{image:") and line.endswith("}"):
                name = line[len("{image:"):-1]
                lines.append(image(name))
            else:
                lines.append(line)
        return "\n".join(lines).rstrip() + "\n"

    alt = lambda name: name.replace("_", " ")  # noqa: E731
    inline = render(lambda name: png_markdown(images[name], alt(name)))
    card = render(lambda name: f"![{alt(name)}]({IMAGES[name]})")
    card_path = out_dir / CARD
    _write_atomic(card_path, card.encode("utf-8"))
    return ReportResult(markdown=inline, images=images, summary=summary, card_path=card_path)
