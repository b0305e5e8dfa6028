"""The asset graph's shape is reviewed like code: a change to assets, deps, groups, partitioning or
checks shows up as a diff of snapshots/asset_graph.json. Regenerate with UPDATE_SNAPSHOTS=1."""

import json
import os
from pathlib import Path

from corpus_platform.definitions import make_definitions

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def graph_shape(defs) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "group": node.group_name,
            "partitioned": type(node.partitions_def).__name__ if node.partitions_def else None,
            "kinds": sorted(node.kinds),
        }
    checks = {}
    for key in graph.asset_check_keys:  # standalone checks and check specs evaluated in their asset's step
        checks[f"{key.asset_key.to_user_string()}.{key.name}"] = {
            "blocking": graph.get(key).blocking,
            "partitioned": graph.get(key).partitions_def is not None,
            "in_asset_step": key in graph.get(key.asset_key).assets_def.check_keys,
        }
    jobs = {}
    for name in ("curate_partition", "train_and_evaluate"):
        job = defs.resolve_job_def(name)
        jobs[name] = sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
    return {"assets": assets, "checks": dict(sorted(checks.items())), "jobs": jobs}


def test_asset_graph_matches_snapshot(tmp_path):
    shape = graph_shape(make_definitions(tmp_path))
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(shape, indent=2) + "\n")
    assert shape == json.loads(SNAPSHOT.read_text()), "asset graph changed: review, then UPDATE_SNAPSHOTS=1"
