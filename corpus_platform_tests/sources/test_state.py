"""Connector state survives crashes: atomic checkpoints and a spool that tolerates a torn line."""

from datetime import date

from corpus_platform.sources.state import PartitionState


def test_checkpoint_round_trip_and_spool_order(tmp_path):
    state = PartitionState(tmp_path, "reddit", date(2026, 1, 1))
    assert state.load_checkpoint() == {} and list(state.read_spool()) == []
    state.append([{"id": 1}, {"id": 2}])
    state.save_checkpoint({"after": "t3_b"})
    state.append([{"id": 3}])
    assert [i["id"] for i in state.read_spool()] == [1, 2, 3]
    assert PartitionState(tmp_path, "reddit", date(2026, 1, 1)).load_checkpoint() == {"after": "t3_b"}
    assert not list(state.folder.glob(".*tmp*"))


def test_append_after_a_torn_line_keeps_every_whole_item(tmp_path):
    state = PartitionState(tmp_path, "youtube", date(2026, 1, 1))
    state.append([{"id": 1}])
    with open(state.spool_path, "a", encoding="utf-8") as f:
        f.write('{"id": 2, "ti')  # the process died mid-write
    assert [i["id"] for i in state.read_spool()] == [1]
    state.append([{"id": 3}])  # the rerun goes on
    assert [i["id"] for i in state.read_spool()] == [1, 3]


def test_reset_forgets_the_partition(tmp_path):
    state = PartitionState(tmp_path, "synthetic", date(2026, 1, 1))
    state.append([{"id": 1}])
    state.save_checkpoint({"n": 1})
    state.reset()
    assert state.load_checkpoint() == {} and list(state.read_spool()) == []
