"""The console's files: served only by name, loading nothing from elsewhere."""

from __future__ import annotations

import re

import pytest

from streams.worker import console


@pytest.mark.parametrize("name", sorted(console.ASSETS))
def test_every_asset_is_packaged_and_refers_to_nothing_outside_the_worker(name: str) -> None:
    found = console.asset(name)
    assert found is not None
    text, content_type = found
    assert content_type == console.ASSETS[name]
    # The one absolute URL allowed is SVG's namespace name, which is never fetched.
    urls = set(re.findall(r"https?://[^\s\"'`)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_an_unknown_name_is_not_served() -> None:
    assert console.asset("../__init__.py") is None
    assert console.asset("__init__.py") is None


def test_the_page_loads_its_script_and_style_from_the_worker() -> None:
    page, _ = console.asset("index.html") or ("", "")
    assert '<script src="/console/console.js"' in page
    # group.js first: console.js calls its renderers once both have run.
    assert page.index('<script src="/console/group.js"') < page.index(
        '<script src="/console/console.js"'
    )
    assert '<link rel="stylesheet" href="/console/console.css">' in page
    assert "<script>" not in page  # the policy allows no inline script


@pytest.mark.parametrize("name", ["console.js", "group.js"])
def test_event_data_reaches_the_page_as_text_never_as_markup(name: str) -> None:
    script, _ = console.asset(name) or ("", "")
    assert script
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert "document.write" not in script


def test_the_policy_allows_only_the_worker_itself() -> None:
    policy = dict(part.strip().split(" ", 1) for part in console.POLICY.split(";") if part.strip())
    assert policy["default-src"] == "'none'"
    assert {policy[name] for name in ("script-src", "style-src", "connect-src")} == {"'self'"}
    assert policy["form-action"] == "'none'"
