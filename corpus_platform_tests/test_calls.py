"""call_all: answers recorded as they complete; once stopped, nothing new starts, and what is in flight
is still recorded (it is being paid for)."""

import threading

import pytest

from corpus_platform.calls import call_all


def test_a_stop_cancels_what_has_not_started_and_records_what_was_in_flight():
    release, started, recorded = threading.Event(), [], []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        if i == 0:
            return i  # answers at once: its record stops the loop
        release.wait(5)  # 1 and 2 are in flight when the stop comes
        return i

    def record(i: int, fut) -> None:
        recorded.append((i, fut.result()))

    def on_stop() -> None:
        release.set()

    call_all(list(range(10)), work, record, workers=3, name="t", stopped=lambda: bool(recorded), on_stop=on_stop)
    assert recorded[0] == (0, 0)
    assert sorted(i for i, _ in recorded) == sorted(started)  # every call that ran was recorded
    assert len(started) < 10  # the rest were cancelled before they started


def test_an_error_in_record_propagates_after_in_flight_calls_finish():
    finished = []

    def work(i: int) -> int:
        finished.append(i)
        return i

    def record(i: int, fut) -> None:
        if i == 0:
            raise ValueError("bad answer")

    with pytest.raises(ValueError, match="bad answer"):
        call_all([0, 1, 2], work, record, workers=1, name="t", stopped=lambda: False)
    assert 0 in finished
