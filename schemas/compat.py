"""Backward-compatibility check of the shipped schemas, for CI.

Backward compatible means a reader on the new schema can read data written with the old
one. The codec resolves every writer version to the latest reader, and a replay can bring
back data of any age, so `check_all` checks every older version against every newer one
(which includes each consecutive pair), not only neighbours.

Run `python -m schemas.compat`: it prints each problem and exits 1 if there is any.
"""

from __future__ import annotations

import sys
from itertools import combinations

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas import registry
from schemas.exceptions import SchemaError
from schemas.models import EventKind


def check_backward(new_schema_json: str, old_schema_json: str) -> list[str]:
    """Why a reader on `new_schema_json` cannot read `old_schema_json` data; empty if it can."""
    reader, writer = _parse(new_schema_json, "new"), _parse(old_schema_json, "old")
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # untyped __init__
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    # The checker reports kinds, locations and messages as separate unordered collections,
    # so they cannot be paired up; one summary line keeps all of them.
    kinds = ", ".join(sorted(kind.value for kind in result.incompatibilities))
    where = ", ".join(sorted(location for location in result.locations if location != "/"))
    details = "; ".join(sorted(str(message) for message in result.messages))
    return [f"{kinds} at {where or '/'}: {details}"]


def check_all(source: registry.Registry | None = None) -> list[str]:
    """Every backward-compatibility problem between versions of each kind (shipped by default)."""
    source = source or registry.DEFAULT
    problems: list[str] = []
    for kind in EventKind:
        for old, new in combinations(source.versions(kind), 2):
            problems.extend(
                f"{new.label} cannot read {old.label}: {problem}"
                for problem in check_backward(new.source, old.source)
            )
    return problems


def _parse(schema_json: str, which: str) -> avro.schema.Schema:
    try:
        return avro.schema.parse(schema_json)
    except avro.errors.AvroException as exc:
        raise SchemaError(f"the {which} schema does not parse: {exc}") from exc


def main() -> int:
    problems = check_all()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
