"""SIGTERM while events flow, again and again: each stop lands while a chunk of events is
taken, its flushes are in flight and the stores are closing. Whatever a stop cut short is
taken again by the next start, once; the tables and the CSVs stay exact."""

from __future__ import annotations

from tests.faults.harness import FaultStack


def test_stops_while_events_flow_lose_and_double_nothing(stack: FaultStack) -> None:
    # Few products: every position takes many events, so a position written fresh over
    # its real value (a read of a closed store) would show in the fold.
    traffic = stack.traffic(seed=51, products=4)
    chunks = [traffic.events(100) + traffic.bad_events(1) for _ in range(3)]
    worker = stack.start_worker()
    for chunk in chunks:
        worker.wait_ready()
        stack.publish(chunk)  # consumed as it arrives
        # SIGTERM; the harness falls back to SIGKILL after 30 s. What this test checks is
        # the books, below. Not asserted here: that the stop is clean. One full run in six
        # saw a worker hang in Faust's shutdown after its services stopped (its lag
        # monitor still retrying); that is open (closing note of this stop).
        worker.stop()
        worker = stack.restart(worker)
    everything = [event for chunk in chunks for event in chunk]
    expected = traffic.expected(everything)
    stack.wait_published(expected, timeout=180)
    stack.assert_exact(expected)
    stack.assert_dead_letters_once(traffic.bad_ids)
    stack.assert_positions(worker, expected)
