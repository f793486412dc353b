"""`make bench`: run every benchmark in turn (BENCH_RUNS, BENCH_EVENTS, BENCH_B3_SECONDS
and BENCH_POSITIONS scale them down for a quick look)."""

from __future__ import annotations

from bench import codec, console_load, latency, recovery, scale_out, throughput

if __name__ == "__main__":
    codec.main()
    throughput.main()
    scale_out.main()
    latency.main()
    recovery.main()
    console_load.main()
