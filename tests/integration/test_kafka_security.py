"""Apache Kafka secured as retailers run it: SASL_SSL, SCRAM-SHA-512, a CA-signed server
certificate and ACLs. Every command connects with the settings the README documents; a
wrong password, an untrusted certificate and a missing ACL each get one line, exit 2; no
password reaches a log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from streams.cli import main
from streams.config import load_settings
from streams.kafka.broker import connection_problem, prepare_broker
from tests.factories import count, line, stack_config, variance
from tests.fixtures.proc import open_fd_targets
from tests.fixtures.secure_kafka import COUNTS, PREFIX, SecureKafka
from tests.fixtures.worker import WorkerProcess, wait_for


def write_config(
    tmp_path: Path,
    kafka: SecureKafka,
    user: str,
    *,
    password: str | None = None,
    cafile: Path | None = None,
) -> Path:
    """A config for `user`, its topics and group named after the test (under PREFIX)."""
    name = name_of(tmp_path)
    connection = kafka.kafka_toml(user, password=password, cafile=cafile)
    topics = f"""
[kafka.topics]
count_approved = "{COUNTS}{name}"
variance_logged = "{PREFIX}variances.{name}"
dlq = "{PREFIX}dlq.{name}"
dlq_redrives = "{PREFIX}redrives.{name}"
status = "{PREFIX}status.{name}"
"""
    return stack_config(
        tmp_path, f'{connection}group_id = "{PREFIX}{name}"\n', topics, name=f"{user}.toml"
    )


def name_of(tmp_path: Path) -> str:
    return tmp_path.name.replace("_", "-")[:40]


def events_file(tmp_path: Path, *events: object) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(f"{e.model_dump_json()}\n" for e in events), encoding="utf-8")  # type: ignore[attr-defined]
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_password(kafka: SecureKafka, *texts: str) -> None:
    for user, password in kafka.passwords.items():
        for text in texts:
            assert password not in text, f"{user}'s password appears in output"


def test_every_command_connects_with_the_documented_settings(
    secure_kafka: SecureKafka, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    worker_config = write_config(tmp_path, secure_kafka, "worker")
    oms_config = write_config(tmp_path, secure_kafka, "oms")
    worker = WorkerProcess(worker_config, tmp_path / "worker.log")
    worker.start().wait_ready(120)
    try:
        counted = count(line("10017", "3410", counted=7, system=10), facility="STORE_1")
        events = events_file(tmp_path, counted)
        sent = run(
            capsys,
            "publish",
            "--topic",
            "count-approved",
            "--config",
            str(oms_config),
            "--json",
            str(events),
        )
        assert sent[0] == 0, sent
        assert json.loads(sent[1])["sent"] == 1
        csv = tmp_path / "netsuite" / "inventoryadjustment" / "csv"
        wait_for(lambda: any(csv.glob("*.csv")), 60, "the adjustment file", worker)
        wait_for(lambda: lag(capsys, worker_config) == 0, 60, "the commit", worker)
    finally:
        assert worker.stop() == 0
    config, group = str(worker_config), PREFIX + name_of(tmp_path)
    topic = COUNTS + name_of(tmp_path)
    dlq = run(capsys, "dlq", "list", "--config", config, "--json")
    assert dlq[0] == 0, dlq
    assert json.loads(dlq[1])["total"] == 0
    replay = run(
        capsys,
        "replay",
        "--config",
        config,
        "--to-earliest",
        "--execute",
        "--group",
        group,
        "--topic",
        topic,
    )
    assert replay[0] == 0, replay
    assert lag(capsys, worker_config) == 1  # rewound: the count is to be read again
    assert_no_password(secure_kafka, worker.log(), sent[1] + sent[2], replay[1] + replay[2])
    assert_no_password(secure_kafka, *(p.read_text() for p in tmp_path.rglob("*.log")))


def lag(capsys: pytest.CaptureFixture[str], config: Path) -> int | None:
    code, out, _ = run(capsys, "lag", "--config", str(config), "--json")
    if code != 0:
        return None
    (report,) = json.loads(out)
    return sum(int(row["lag"] or 0) for row in report["partitions"])


def test_a_wrong_password_is_one_line(
    secure_kafka: SecureKafka, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "not-the-" + secure_kafka.passwords["worker"][:4]
    config = write_config(tmp_path, secure_kafka, "worker", password=wrong)
    expected = (
        f"variance-sync: error: cannot reach Kafka at {secure_kafka.bootstrap}: it refused "
        "SASL user 'worker' (SCRAM-SHA-512): check kafka.sasl_username and kafka.sasl_password\n"
    )
    port = int(secure_kafka.bootstrap.rpartition(":")[2])
    for argv in (
        ["lag"],
        ["dlq", "list"],
        ["replay", "--to-earliest", "--group", "g", "--topic", "t"],
    ):
        assert run(capsys, *argv, "--config", str(config)) == (2, "", expected), argv
        # A socket still open when the command's event loop ended would be closed by the
        # garbage collector, with a ResourceWarning, at some later moment.
        assert open_sockets_to(port) == [], argv
    events = events_file(tmp_path, count())
    code, _, err = run(
        capsys, "publish", "--topic", "count-approved", "--config", str(config), str(events)
    )
    assert (code, err) == (2, expected)
    assert open_sockets_to(port) == []
    worker = WorkerProcess(config, tmp_path / "worker.log")
    assert worker.start().wait_exit(60) == 2
    assert worker.log().endswith(expected)
    assert_no_password(secure_kafka, worker.log())
    assert wrong not in worker.log()


async def test_the_probe_that_explains_a_refusal_has_closed_its_socket_when_it_returns(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    """Deterministic form of the check above: TLS's close needs a round trip with the
    broker, so a probe that only started closing still holds its socket here."""
    for password in ("not-the-password", None):
        config = write_config(tmp_path, secure_kafka, "worker", password=password)
        problem = await connection_problem(load_settings(config).kafka)
        assert (problem is None) == (password is None), problem
        assert open_sockets_to(int(secure_kafka.bootstrap.rpartition(":")[2])) == []


def open_sockets_to(port: int) -> list[str]:
    """This process's TCP sockets whose remote end is on `port`, as /proc lists them."""
    ours = {t[len("socket:[") : -1] for t in open_fd_targets() if t.startswith("socket:[")}
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            remote_port = int(fields[2].rpartition(":")[2], 16)
            if remote_port == port and fields[9] in ours:
                found.append(row)
    return found


def test_an_untrusted_certificate_is_one_line(
    secure_kafka: SecureKafka, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, secure_kafka, "worker", cafile=secure_kafka.rogue_ca.ca_file)
    code, out, err = run(capsys, "lag", "--config", str(config))
    assert (code, out) == (2, "")
    assert err == (
        f"variance-sync: error: cannot reach Kafka at {secure_kafka.bootstrap}: its TLS "
        "certificate is not trusted (unable to get local issuer certificate); "
        "kafka.ssl_cafile must name the CA that signed it\n"
    )
    worker = WorkerProcess(config, tmp_path / "worker.log")
    assert worker.start().wait_exit(60) == 2
    assert worker.log().endswith(err)


def test_a_producer_without_write_permission_is_one_line(
    secure_kafka: SecureKafka, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The worker's user creates the topics; the OMS user may write counts, not variances.
    asyncio.run(prepare_broker(load_settings(write_config(tmp_path, secure_kafka, "worker")).kafka))
    config = write_config(tmp_path, secure_kafka, "oms")
    topic = f"{PREFIX}variances.{name_of(tmp_path)}"
    events = events_file(tmp_path, variance(-1))
    code, out, err = run(
        capsys, "publish", "--topic", "variance-logged", "--config", str(config), str(events)
    )
    assert (code, out) == (2, "")
    assert err == (
        f"variance-sync: error: Kafka at {secure_kafka.bootstrap} does not allow SASL user "
        f"'oms' to write to topic {topic}: an ACL is missing\n"
    )


def test_a_worker_without_its_transactional_ids_is_one_line(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    config = write_config(tmp_path, secure_kafka, "untransacted")
    worker = WorkerProcess(config, tmp_path / "worker.log")
    assert worker.start().wait_exit(60) == 2
    assert worker.log().endswith(
        f"variance-sync: error: Kafka at {secure_kafka.bootstrap} does not allow SASL user "
        f"'untransacted' to use transactional ids {PREFIX}{name_of(tmp_path)}.changelog.*: "
        "an ACL is missing\n"
    )
