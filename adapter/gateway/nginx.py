"""Rendering the production nginx configuration (certs/nginx/npo-adapter.conf.template).

Placeholders are `${name}`; nginx's own `$variables` are left alone.
"""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "certs" / "nginx" / "npo-adapter.conf.template"
_PLACEHOLDER = re.compile(r"\$\{([a-z_]+)\}")


def render(*, listen: str, socket: Path, server_cert: Path, server_key: Path, client_ca: Path, crls: Path,
           server_name: str = "_", max_body: str = "256k") -> str:
    values = {"listen": listen, "socket": socket, "server_cert": server_cert, "server_key": server_key,
              "client_ca": client_ca, "crls": crls, "server_name": server_name, "max_body": max_body}

    def fill(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"template placeholder {m.group(1)} has no value")
        return str(values[m.group(1)])

    return _PLACEHOLDER.sub(fill, TEMPLATE.read_text(encoding="utf-8"))
