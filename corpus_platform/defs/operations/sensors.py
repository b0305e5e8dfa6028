"""deletion_requests_sensor: each request the capture API queued becomes one delete_user_data run."""

import json

import dagster as dg

from corpus_platform.defs.operations.erasure import delete_user_data
from corpus_platform.defs.resources import CorpusHome


@dg.sensor(job=delete_user_data, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def deletion_requests_sensor(context: dg.SensorEvaluationContext, corpus_home: CorpusHome) -> dg.SensorResult:
    queue = corpus_home.layout.home / "requests" / "deletions.jsonl"
    done = int(context.cursor or 0)  # complete lines already turned into runs (redaction keeps line count)
    if not queue.exists():
        return dg.SensorResult(run_requests=[], cursor=str(done))
    data = queue.read_bytes()
    lines = data[: data.rfind(b"\n") + 1].splitlines()  # a line still being written waits for the next tick
    requests = []
    for line in lines[done:]:
        try:
            request = json.loads(line)
        except ValueError:
            context.log.warning("skipped an unreadable deletion request line")
            continue
        if request.get("type") == "user_deletion" and request.get("request_id") and request.get("status") != "done":
            requests.append(dg.RunRequest(
                run_key=request["request_id"],
                run_config={"ops": {"erase_user_data": {"config": {"request_id": request["request_id"]}}}},
                tags={"corpus/trigger": "deletion_request"},
            ))
    return dg.SensorResult(run_requests=requests, cursor=str(len(lines)))
