"""The staff page: one self-contained HTML document (inline CSS and script, nothing fetched from elsewhere),
served with a Content-Security-Policy that admits exactly that inline style and script by their hashes."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ASSETS = Path(__file__).resolve().with_name("assets")


@dataclass(frozen=True)
class Page:
    html: str
    csp: str


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@cache
def page(demo: bool = False) -> Page:
    """The page; in demo mode (no provider) its demo label shows before anyone signs in too."""
    css = (ASSETS / "page.css").read_text(encoding="utf-8")
    js = (ASSETS / "page.js").read_text(encoding="utf-8")
    html = (ASSETS / "page.html").read_text(encoding="utf-8")
    html = html.replace("<!--STYLE-->", f"<style>{css}</style>").replace("<!--SCRIPT-->", f"<script>{js}</script>")
    if demo:
        html = html.replace('<p id="demo-banner" class="notice notice-failed" hidden>',
                            '<p id="demo-banner" class="notice notice-failed">')
    csp = "; ".join([
        "default-src 'none'",
        f"script-src {_sha256(js)}",
        f"style-src {_sha256(css)}",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])
    return Page(html, csp)
