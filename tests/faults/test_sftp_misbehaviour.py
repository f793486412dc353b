"""Scenario 5: the SFTP server misbehaves: a full disk, a csv/ folder we may not write to,
and a host key that is not the pinned one. Batches wait, nothing is lost, and once the
problem is fixed every row arrives exactly once."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from sinks.feeds import ADJUSTMENT, FEEDS
from sinks.layout import netsuite_tree
from streams.devstack.sftp_server import load_or_create_key
from tests.faults.harness import WINDOW_SECONDS, FaultStack
from tests.fixtures.ci import require
from tests.fixtures.worker import wait_for


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        require(f"{what} needs root")


@contextlib.contextmanager
def small_disk(folder: Path, size_kib: int) -> Iterator[None]:
    """A tmpfs of `size_kib` mounted at `folder` (the whole NetSuite base, so that the
    staging folder and csv/ share one filesystem, as the rename needs)."""
    folder.mkdir(parents=True, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(folder))
    try:
        yield
    finally:
        run("umount", "-l", str(folder))


def fill(folder: Path) -> Path:
    filler = folder / "filler.bin"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):  # ENOSPC: the disk is full, as intended
            while True:
                os.write(descriptor, b"\0" * 4096)
    finally:
        os.close(descriptor)
    return filler


def test_a_full_disk_delays_batches_until_space_is_freed(stack: FaultStack) -> None:
    require_root("mounting a small filesystem")
    traffic = stack.traffic(seed=51)
    events = traffic.events(30)
    with small_disk(stack.root, 512):
        for folder in netsuite_tree():
            (stack.root / folder).mkdir(parents=True, exist_ok=True)
        filler = fill(stack.root)
        worker = stack.start_worker()
        worker.wait_ready()
        stack.publish(events)
        wait_for(lambda: "DestinationRefused" in worker.log(), 30, "a refused upload", worker)
        time.sleep(4 * WINDOW_SECONDS)
        assert not list((stack.root / ADJUSTMENT.name / "csv").iterdir())
        assert worker.alive
        filler.unlink()
        stack.wait_published(traffic.expected(events))
        stack.assert_exact(traffic.expected(events))


def test_a_csv_folder_we_may_not_write_delays_batches(stack: FaultStack) -> None:
    require_root("chattr +i")
    traffic = stack.traffic(seed=52)
    events = traffic.events(30)
    csv_dirs = [stack.root / feed.name / "csv" for feed in FEEDS]
    for folder in csv_dirs:
        folder.mkdir(parents=True, exist_ok=True)
        run("chattr", "+i", str(folder))
    try:
        worker = stack.start_worker()
        worker.wait_ready()
        stack.publish(events)
        wait_for(lambda: "keeping the batch" in worker.log(), 30, "a refused rename", worker)
        time.sleep(4 * WINDOW_SECONDS)
        assert all(not list(folder.iterdir()) for folder in csv_dirs)
        assert worker.alive
    finally:
        for folder in csv_dirs:
            run("chattr", "-i", str(folder))
    stack.wait_published(traffic.expected(events))
    stack.assert_exact(traffic.expected(events))


def test_a_wrong_host_key_is_refused_clearly_and_nothing_is_lost(stack: FaultStack) -> None:
    traffic = stack.traffic(seed=53)
    events = traffic.events(20)
    impostor = load_or_create_key(stack.tmp_path / "impostor_key").export_public_key().decode()
    wrong = stack.tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{stack.sshd.port} {impostor}")
    bad_config = stack.tmp_path / "bad.toml"
    bad_config.write_text(stack.config_text(known_hosts=wrong), encoding="utf-8")
    refused = stack.start_worker(config=bad_config)
    stack.publish(events)
    wait_for(lambda: "HostKeyMismatch" in refused.log(), 30, "the host key refusal", refused)
    log = refused.log()
    assert "is not the one pinned in" in log
    assert str(stack.sshd.params.client_keys[0]) not in log
    assert not (stack.root / ADJUSTMENT.name / "csv").exists() or not list(
        (stack.root / ADJUSTMENT.name / "csv").iterdir()
    )
    status, body = refused.get("/ready")
    assert (status, body["checks"]["destination_reachable"]) == (503, False)
    refused.stop()
    stack.start_worker().wait_ready()
    stack.wait_published(traffic.expected(events))
    stack.assert_exact(traffic.expected(events))
