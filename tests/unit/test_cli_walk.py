"""Every command and subcommand, listed from the parser itself, meets bad input with one
line on stderr and exit code 2, never a traceback: an unknown flag, a bad value for each
typed option, a bad broker address from the flag, the environment or the config file, and
a missing or broken config file.

Commands that serve until stopped (`worker`, `dev`) run in a subprocess with a timeout, so
that a check that let bad input through fails here instead of hanging; the rest run
in-process. No broker is needed: every case must fail before one is reached.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.cli import build_parser, main
from streams.devstack.local_broker import free_port
from tests.factories import write_config
from tests.fixtures.ci import require

Command = tuple[str, ...]


def walk(
    parser: argparse.ArgumentParser, path: Command = ()
) -> Iterator[tuple[Command, argparse.ArgumentParser]]:
    """Every runnable command: the leaves of the subcommand tree."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        yield path, parser
        return
    for action in subcommands:
        for name, child in action.choices.items():
            yield from walk(child, (*path, name))


ROOT = build_parser()
COMMANDS = {" ".join(path): parser for path, parser in walk(ROOT)}
NAMES = list(COMMANDS)

# What a command needs besides the input under test to get past argparse to its own
# checks; `test_the_required_arguments_are_enough` proves the list complete, from the
# parser. {config} and {file} are filled in per test.
REQUIRED: dict[str, list[str]] = {
    "publish": ["--topic", "count-approved", "{file}"],
    "replay": ["--group", "g", "--topic", "count-approved", "--to-earliest"],
    "dlq show": ["0"],
    "reconcile": ["--ledger", "{file}"],
    "config check": ["{config}"],
}
# Keeps a command short-lived should a check let bad input through.
BOUNDED: dict[str, list[str]] = {"netsuite-sim": ["--once"]}
# Served until stopped: run as a subprocess, with a timeout.
SERVING = {"worker", "dev"}
# The config is a positional here, not --config.
CONFIG_POSITIONAL = {"config check"}

BAD_BOOTSTRAPS = ["notahost", "host:abc", "127.0.0.1:99999", "", "a:1,b"]
CLEAN = ("VARIANCE_SYNC_", "KAFKA_BOOTSTRAP")


def has_option(name: str, option: str) -> bool:
    return any(option in action.option_strings for action in COMMANDS[name]._actions)


# Commands that resolve a broker: those with --bootstrap, and `config check`, which shows
# the broker the worker would use.
BROKER = [name for name in NAMES if has_option(name, "--bootstrap")] + ["config check"]
CONFIGURED = [name for name in NAMES if has_option(name, "--config")] + sorted(CONFIG_POSITIONAL)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in os.environ:
        if variable.startswith(CLEAN):
            monkeypatch.delenv(variable)


def argv_for(name: str, tmp_path: Path, config: Path | None = None, *extra: str) -> list[str]:
    """The command line of `name` with `extra`, its required arguments and `config`."""
    config = config or write_config(tmp_path)
    fill = {"{config}": str(config), "{file}": str(tmp_path / "absent")}
    required = [fill.get(arg, arg) for arg in REQUIRED.get(name, [])]
    argv = [*name.split(), *extra, *required, *BOUNDED.get(name, [])]
    if name not in CONFIG_POSITIONAL and has_option(name, "--config"):
        argv += ["--config", str(config)]
    if name == "dev":
        ports = ["--kafka-port", str(free_port()), "--sftp-port", str(free_port())]
        argv += [*ports, "--no-worker", "--data-dir", str(tmp_path / "dev")]
    return argv


def attempt(
    name: str,
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str] | None = None,
    *,
    parsing: bool = False,
) -> tuple[int, str]:
    """Exit code and stderr of `variance-sync argv`; `parsing`: argparse itself rejects it,
    so even a serving command can run in-process."""
    if name in SERVING and not parsing:
        return in_subprocess([sys.executable, "-m", "streams.cli", *argv], env or {})
    old = {key: os.environ.get(key) for key in env or {}}
    os.environ.update(env or {})
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return code, capsys.readouterr().err


def in_subprocess(command: list[str], env: dict[str, str]) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN)}
    done = subprocess.run(
        command, env={**base, **env}, capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stderr


def assert_one_line(code: int, err: str, *expected: str) -> None:
    assert "Traceback" not in err, err
    assert (code, err.count("\n")) == (2, 1), err
    for text in expected:
        assert text in err, err


def test_the_walk_finds_every_command() -> None:
    # Nested subcommands are walked too, not just the first level.
    assert {"worker", "dlq list", "dlq show", "dlq redrive", "config check"} <= set(NAMES)
    assert "dlq" not in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_the_required_arguments_are_enough(name: str, tmp_path: Path) -> None:
    # parse_args exits on a missing required argument; a new command that needs one fails
    # here until REQUIRED names it.
    args = ROOT.parse_args(argv_for(name, tmp_path))
    assert callable(args.handler)


@pytest.mark.parametrize("name", NAMES)
def test_help_works(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*name.split(), "--help"])
    assert exit_.value.code == 0
    assert "usage: variance-sync" in capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_flag(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = argv_for(name, tmp_path, None, "--no-such-flag")
    code, err = attempt(name, argv, capsys, parsing=True)
    assert_one_line(code, err, "unrecognized arguments: --no-such-flag")


def rejected_value(action: argparse.Action) -> str | None:
    """A value this option's own type or choices reject; None when it takes any text."""
    if action.choices is not None:
        return "no-such-choice"
    convert = action.type
    if convert is None or not callable(convert) or convert is Path:
        return None
    for candidate in ("abc", "-1", "0", "99999", ""):
        try:
            convert(candidate)
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            return candidate
    return None


def typed_options() -> Iterator[tuple[str, str, str]]:
    for name, parser in [("", ROOT), *zip(NAMES, COMMANDS.values(), strict=True)]:
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            if (bad := rejected_value(action)) is not None:
                yield name, action.option_strings[-1], bad


TYPED = list(typed_options())


def test_typed_options_are_found() -> None:
    found = {(name, option) for name, option, _ in TYPED}
    assert {("", "--log-format"), ("lag", "--samples"), ("publish", "--bootstrap")} <= found


@pytest.mark.parametrize(("name", "option", "bad"), TYPED)
def test_a_bad_value_for_a_typed_option(
    name: str, option: str, bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not name:  # a global option, before the command
        argv = [option, bad, *argv_for("lag", tmp_path)]
    else:
        argv = argv_for(name, tmp_path, None, option, bad)
    code, err = attempt(name, argv, capsys, parsing=True)
    assert_one_line(code, err, f"argument {option}")


def test_a_bad_positional_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = attempt("dlq show", ["dlq", "show", "minus-one"], capsys)
    assert_one_line(code, err, "'minus-one' is not a DLQ offset")


@pytest.mark.parametrize("bad", BAD_BOOTSTRAPS)
@pytest.mark.parametrize("name", [n for n in BROKER if has_option(n, "--bootstrap")])
def test_a_bad_bootstrap_flag(
    name: str, bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = argv_for(name, tmp_path, None, "--bootstrap", bad)
    code, err = attempt(name, argv, capsys, parsing=True)
    assert_one_line(code, err, "argument --bootstrap:")


@pytest.mark.parametrize("variable", ["VARIANCE_SYNC_KAFKA__BOOTSTRAP", "KAFKA_BOOTSTRAP"])
@pytest.mark.parametrize("name", BROKER)
def test_a_bad_bootstrap_from_the_environment(
    name: str, variable: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in BAD_BOOTSTRAPS[:3] if name not in SERVING else ["host:abc"]:
        code, err = attempt(name, argv_for(name, tmp_path), capsys, {variable: bad})
        assert_one_line(code, err, f"environment variable {variable}", repr(bad))


@pytest.mark.parametrize("name", CONFIGURED)
def test_a_bad_bootstrap_in_the_config_file(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, '\n[kafka]\nbootstrap = "host:abc"\n')
    code, err = attempt(name, argv_for(name, tmp_path, config), capsys)
    assert_one_line(code, err, f"{config}: kafka.bootstrap: 'host:abc': port 'abc'")


@pytest.mark.parametrize("name", CONFIGURED)
def test_a_missing_config_file(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.toml"
    code, err = attempt(name, argv_for(name, tmp_path, missing), capsys)
    assert_one_line(code, err, f"{missing}: config file not found")


@pytest.mark.parametrize("name", CONFIGURED)
def test_a_broken_config_file(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\n", encoding="utf-8")
    code, err = attempt(name, argv_for(name, tmp_path, broken), capsys)
    assert_one_line(code, err, f"{broken}: invalid TOML")


def console_script() -> Path:
    script = Path(sys.executable).parent / "variance-sync"
    if not script.exists():
        require(f"the variance-sync console script is not installed beside {sys.executable}")
    return script


@pytest.mark.parametrize("how", ["module", "console script"])
def test_through_a_real_process(how: str, tmp_path: Path) -> None:
    start = [sys.executable, "-m", "streams.cli"] if how == "module" else [str(console_script())]
    code, err = in_subprocess([*start, "lag", "--bootstrap", "127.0.0.1:99999"], {})
    assert_one_line(code, err, "argument --bootstrap: '127.0.0.1:99999': port 99999")
    config = write_config(tmp_path, "\n[batching]\nmax_rows = 0\n")
    code, err = in_subprocess([*start, "config", "check", str(config)], {})
    assert_one_line(code, err, "batching.max_rows")
    code, err = in_subprocess([*start, "replay", "--to-earliest"], {"KAFKA_BOOTSTRAP": "notahost"})
    assert_one_line(code, err)
    version = subprocess.run([*start, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("variance-sync ")
