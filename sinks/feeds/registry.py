"""The registry of feeds: the one list that code handling every feed iterates.

Open: a deployment (or a test) registers another `FeedSpec` and it goes through routing,
batching, rendering, sealing, publishing and `reconcile` with no other change. Register
before the worker is built: a worker reads the registry once, when it assigns partitions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from schemas.models import EventKind
from sinks.feeds.spec import AnyFeed, RowFacts


class FeedRegistry:
    def __init__(self, *feeds: AnyFeed) -> None:
        self._feeds: list[AnyFeed] = []
        self._by_precedence: list[AnyFeed] = []
        for feed in feeds:
            self.register(feed)

    def register(self, feed: AnyFeed) -> None:
        """Add `feed`; ValueError if its folder or file label is taken."""
        for known in self._feeds:
            if known.name == feed.name or known.file_label == feed.file_label:
                raise ValueError(f"feed {feed.name} ({feed.file_label}) clashes with {known}")
        self._feeds.append(feed)
        # Listing keeps registration order (folders, reports); routing asks by precedence.
        self._by_precedence = sorted(self._feeds, key=lambda f: (f.precedence, f.name))

    def unregister(self, feed: AnyFeed) -> None:
        self._feeds.remove(feed)
        self._by_precedence.remove(feed)

    @contextmanager
    def registered(self, feed: AnyFeed) -> Iterator[AnyFeed]:
        """`feed` registered for the length of the block."""
        self.register(feed)
        try:
            yield feed
        finally:
            self.unregister(feed)

    def __iter__(self) -> Iterator[AnyFeed]:
        return iter(tuple(self._feeds))

    def names(self) -> tuple[str, ...]:
        return tuple(feed.name for feed in self._feeds)

    def labelled(self, label: str) -> AnyFeed | None:
        return next((feed for feed in self._feeds if feed.file_label == label), None)

    def for_kind(self, kind: EventKind) -> tuple[AnyFeed, ...]:
        """The feeds that rows of `kind` events may go to."""
        return tuple(feed for feed in self._feeds if kind in feed.kinds)

    def route(self, facts: RowFacts) -> AnyFeed | None:
        """The feed that takes `facts`: the first, by precedence, that claims it."""
        claiming = (f for f in self._by_precedence if facts.kind in f.kinds and f.claims(facts))
        return next(claiming, None)
