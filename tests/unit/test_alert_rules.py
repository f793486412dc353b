"""The shipped Prometheus files, checked by Debian's promtool: the rules load, their unit
tests pass, the config is valid, and every alert is tested firing and quiet, carries a
severity and a runbook line naming commands our CLI has."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.cli import build_parser
from tests.fixtures.ci import require

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "rules"
RULE_TESTS = sorted((DEPLOY / "tests").glob("*.yml"))
SEVERITIES = {"critical", "warning"}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(found).exists():
        require("promtool (Debian package prometheus) is not installed")
    return found


def run(promtool: str, *args: str, cwd: Path = DEPLOY) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def alerts() -> list[dict[str, Any]]:
    found = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found += [rule for rule in group["rules"] if "alert" in rule]
    return found


def test_the_rules_load(promtool: str) -> None:
    run(promtool, "check", "rules", *(str(p) for p in sorted(RULES.glob("*.yml"))))


@pytest.mark.parametrize("case", RULE_TESTS, ids=lambda p: p.name)
def test_the_rule_unit_tests_pass(promtool: str, case: Path) -> None:
    run(promtool, "test", "rules", str(case))


def test_the_config_is_valid_and_loads_the_rules(promtool: str, tmp_path: Path) -> None:
    shipped = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    # docker-compose mounts rules/ at this path, and the worker service is `worker`.
    assert shipped["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    [job] = [j for j in shipped["scrape_configs"] if j["job_name"] == "variance-sync"]
    assert job["static_configs"][0]["targets"] == ["worker:6066"]
    # The same config with the rule glob pointing here, so that check config reads them.
    local = {**shipped, "rule_files": [str(RULES / "*.yml")]}
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(local), encoding="utf-8")
    output = run(promtool, "check", "config", str(config))
    assert f"{len(list(RULES.glob('*.yml')))} rule files found" in output, output


def test_every_alert_has_a_severity_and_a_runbook_with_real_commands() -> None:
    commands = set(_subcommands(build_parser()))
    for rule in alerts():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        runbook = rule.get("annotations", {}).get("runbook", "")
        named = re.findall(r"`variance-sync ([a-z-]+)", runbook)
        assert named or "/ready" in runbook, f"{name}: its runbook names no command"
        assert set(named) <= commands, f"{name}: {set(named) - commands} are not commands"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "never tested firing"
    assert names - quiet == set(), "never tested quiet"


def _subcommands(parser: Any) -> list[str]:
    actions = parser._subparsers._group_actions if parser._subparsers else []
    return [name for action in actions for name in action.choices]
