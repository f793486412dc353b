"""`make bench`: run every benchmark in turn."""

from __future__ import annotations

from bench import codec

if __name__ == "__main__":
    codec.main()
