"""The operator console: one read-only page, served with its script and style by the worker.

The page only reads the worker's own JSON views (`/group`, `/lag/history`, `/lag`,
`/batches`, `/analytics`, `/dead-letters`, `/rejections`) and draws its charts as SVG in
the browser. The Content Security Policy lets it load nothing from anywhere else, and
there is no form to post.
"""

from __future__ import annotations

from importlib import resources

ASSETS = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "group.js": "text/javascript",
    "console.css": "text/css",
    "favicon.svg": "image/svg+xml",
}  # served as UTF-8 text
# Nothing but this worker, no inline code: error messages shown on the page are event data.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def asset(name: str) -> tuple[str, str] | None:
    """An asset's text and content type, or None for a name that is not one of ours."""
    content_type = ASSETS.get(name)
    if content_type is None:
        return None
    return resources.files(__package__).joinpath(name).read_text("utf-8"), content_type
