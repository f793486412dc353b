"""The shipped alert rules and dashboard against a real Prometheus scraping two workers.

A live stack (Tansu, OpenSSH sshd, two workers on RocksDB) and Debian's Prometheus,
which scrapes both workers' `/metrics` every second and evaluates the shipped rules file
every second. Only the rules' `for:` durations are shortened (to `FOR`), so that a test
minute is not ten real ones; every expression is the shipped one.

The fault: the SFTP server refuses every write to one input partition's ledger folders
(`chattr +i`, which binds root too), so that partition's publish writers fail with
`DestinationRefused`. A refusal is retriable, and a refusal that lasts
`publish.park_after_seconds` (shortened here, like the `for:` durations) parks the
writer: it needs an operator. The parked-writer alert must fire through Prometheus's own
API, then resolve once the folders take writes again (the runbook: fix the cause, the
writer resumes by itself).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from sinks.feeds import ADJUSTMENT, FEEDS, STATE_DIR
from streams.devstack.local_broker import EmbeddedBroker, free_port
from streams.kafka.broker import TopicNames
from streams.producer.client import Event
from tests.faults.harness import FaultStack
from tests.faults.traffic import Traffic
from tests.fixtures.broker import tansu_broker
from tests.fixtures.ci import require
from tests.fixtures.sshd import SSHDServer
from tests.fixtures.worker import WorkerProcess, wait_for

__all__ = ["tansu_broker"]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "variance-sync.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "variance-sync.json"
FOR = "3s"
# Grafana's own variables, as Grafana would fill them in for a one-hour view.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
FAULTED = 0  # STORE_1's partition (of 4, by the default partitioner)
PARK_AFTER = "2"


class Prometheus:
    """`/usr/bin/prometheus` on a free port, on a temporary storage dir."""

    def __init__(self, workdir: Path, targets: Sequence[str], rules: Path) -> None:
        self.port = free_port()
        self.log_file = workdir / "prometheus.log"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)],
                    "scrape_configs": [
                        {"job_name": "variance-sync", "static_configs": [{"targets": targets}]}
                    ],
                }
            ),
            encoding="utf-8",
        )
        self.storage = workdir / "prometheus-data"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, binary: str) -> Prometheus:
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for(self._ready, 60, "Prometheus to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{self.log()}") from None
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}{query}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:  # 400/422: a bad query, with its reason
            return json.loads(error.read())

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """The firing alerts called `name`."""
        found = self.api("alerts")["data"]["alerts"]
        return [a for a in found if a["labels"]["alertname"] == name and a["state"] == "firing"]

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")[-4000:]

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"Prometheus exited; log:\n{self.log()}")
        try:
            url = f"http://127.0.0.1:{self.port}/-/ready"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(found).exists():
        require("prometheus (Debian package prometheus) is not installed")
    return found


@pytest.fixture
def stack(tmp_path: Path, tansu_broker: EmbeddedBroker, sshd: SSHDServer) -> Iterator[FaultStack]:
    faults = FaultStack(tmp_path, tansu_broker, sshd, extra_toml="rejections_check_seconds = 1\n")
    try:
        yield faults
    finally:
        faults.stop_all()


def shortened_rules(workdir: Path) -> Path:
    """The shipped rules with only their `for:` durations changed."""
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = FOR
    path = workdir / "variance-sync.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    return path


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of the dashboard, variables filled in."""
    found = []
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append((panel["title"], expr))
    return found


def failing_panels(prometheus: Prometheus) -> list[str]:
    failing = []
    for title, expr in panel_queries():
        answer = prometheus.api("query", query=expr)
        if answer["status"] != "success":
            failing.append(f"{title}: {expr}: {answer.get('error')}")
        elif not answer["data"]["result"]:
            failing.append(f"{title}: {expr}: no series")
    return failing


def of_store_1(traffic: Traffic, count: int) -> list[Event]:
    found: list[Event] = []
    while len(found) < count:
        event = traffic.next_event()
        if event.facility_id == "STORE_1":
            found.append(event)
    return found


def parked_on(worker: WorkerProcess) -> list[dict[str, Any]]:
    status, body = worker.get("/ready")
    return [] if status == 200 else list(body.get("parked_writers", []))


def test_a_parked_writer_pages_through_prometheus_and_every_panel_has_data(
    stack: FaultStack, prometheus_binary: str, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        require("chattr +i needs root")
    env = {"VARIANCE_SYNC_PUBLISH__PARK_AFTER_SECONDS": PARK_AFTER}
    workers = [stack.start_worker(env), stack.start_worker(env)]
    prometheus = Prometheus(
        tmp_path, [f"127.0.0.1:{w.web_port}" for w in workers], shortened_rules(tmp_path)
    ).start(prometheus_binary)
    frozen: list[Path] = []
    try:
        for worker in workers:
            worker.wait_ready()
        traffic = stack.traffic(seed=71)
        before = traffic.events(40)
        stack.publish([*before, *traffic.bad_events(2)])
        stack.wait_published(traffic.expected(before), settle=False)

        # NetSuite rejects a file: its import moves it to failed/ with an error file.
        rejected = stack.root / ADJUSTMENT.name / "csv" / "not-an-import.csv"
        rejected.write_text("Item,Qty\n3410,1\n", encoding="utf-8")
        stack.import_all()

        # The fault, on one partition only: its ledger folders refuse every write.
        for feed in FEEDS:
            for topic in TopicNames.from_config(stack.settings.kafka).inputs:
                folder = stack.root / STATE_DIR / "ledger" / feed.name / topic / f"p{FAULTED}"
                folder.mkdir(parents=True, exist_ok=True)
                subprocess.run(["chattr", "+i", str(folder)], check=True)
                frozen.append(folder)
        during = of_store_1(traffic, 10)
        stack.publish(during)

        wait_for(
            lambda: bool(prometheus.alerts("VarianceSyncWriterParked")),
            120,
            f"VarianceSyncWriterParked to fire; Prometheus log:\n{prometheus.log()}",
            *workers,
        )
        [alert] = prometheus.alerts("VarianceSyncWriterParked")
        assert alert["labels"]["severity"] == "critical"
        assert "variance-sync lag" in alert["annotations"]["runbook"]
        # The page names the pod whose /ready names the parked writers, all of them on
        # the faulted partition. (A parked writer is `publishing` while it retries.)
        holders: list[tuple[WorkerProcess, list[dict[str, Any]]]] = []

        def one_holder() -> bool:
            holders[:] = [(w, writers) for w in workers if (writers := parked_on(w))]
            return len(holders) == 1

        wait_for(one_holder, 30, "one worker to report parked writers", *workers)
        [(holder, writers)] = holders
        assert alert["labels"]["instance"] == f"127.0.0.1:{holder.web_port}"
        assert {w["partition"] for w in writers} == {FAULTED}
        assert all("DestinationRefused" in (w["error"] or "") for w in writers)

        # Every panel of the dashboard has data, traffic, dead letters and rejections
        # included (rejections are read every second here).
        failing: list[str] = []

        def every_panel_answers() -> bool:
            failing[:] = failing_panels(prometheus)
            return not failing

        try:
            wait_for(every_panel_answers, 90, "every dashboard panel to have data")
        except AssertionError:
            raise AssertionError("panels without data:\n" + "\n".join(failing)) from None
        [rejections] = prometheus.api(
            "query",
            query=f'max(variance_sync_netsuite_rejected_files{{feed="{ADJUSTMENT.name}"}})',
        )["data"]["result"]
        assert float(rejections["value"][1]) == 1

        # The runbook: fix the cause; the writer retries on its own and publishes.
        thaw(frozen)
        wait_for(
            lambda: not prometheus.alerts("VarianceSyncWriterParked"),
            60,
            "VarianceSyncWriterParked to resolve",
            *workers,
        )
        stack.wait_published(traffic.expected(before + during), settle=False)
        assert not any(parked_on(w) for w in workers)
    finally:
        thaw(frozen)
        prometheus.stop()


def thaw(folders: Sequence[Path]) -> None:
    for folder in folders:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
