"""B6: Avro single-object decode plus validation, per core, against plain `json.loads`.

The baseline parses the JSON form of the same events, with no validation: the cheapest
possible way to turn bytes into dicts in Python.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from bench.stats import Figure, rate, report
from schemas.codec import decode_event, encode_avro, encode_json
from schemas.models import CountApproved, ValidationLimits
from streams.devstack.sample import Catalog, SampleGenerator
from streams.producer.client import kind_of

EVENTS = 5_000
RUNS = 5


def main() -> None:
    rng = random.Random(6)
    facilities = {f"STORE_{i}": str(200 + i) for i in range(20)}
    generator = SampleGenerator(Catalog.build(facilities, 2_000, rng), rng)
    events = [generator.next_event() for _ in range(EVENTS)]
    avro = [(kind_of(e), encode_avro(e)) for e in events]
    as_json = [encode_json(e) for e in events]
    limits, now = ValidationLimits(), datetime.now(UTC)

    def decode_all() -> int:
        for kind, payload in avro:
            decode_event(payload, kind, None, limits, now)
        return len(avro)

    def json_all() -> int:
        for payload in as_json:
            json.loads(payload)
        return len(as_json)

    ours = Figure.of("avro decode + validate", "events/s", rate(decode_all, RUNS))
    baseline = Figure.of("json.loads (baseline)", "events/s", rate(json_all, RUNS))
    lines = sum(len(e.lines) if isinstance(e, CountApproved) else 1 for e in events)
    report(
        "b6-codec",
        [ours, baseline],
        {
            "B6 ratio (ours / json.loads)": ours.median / baseline.median,
            "lines per event": lines / EVENTS,
        },
    )


if __name__ == "__main__":
    main()
