"""Write the UI's OpenAPI document: `python -m adapter.ui.openapi [PATH]` (default openapi/ui.json).

tests/ui/test_openapi.py fails while the file differs from what the app serves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlalchemy import create_engine

from adapter.consumer.overview import ConsumerConfig, NationalServices
from adapter.ui.app import create_ui_app

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "openapi" / "ui.json"


def document() -> dict:
    """The document does not depend on the configuration: any will do, and nothing is contacted."""
    unused = Path("unused")
    config = ConsumerConfig(sources=(), services=NationalServices("https://consent.invalid",
                                                                  "https://blocking.invalid", "https://log.invalid"),
                            client_cert=unused, client_key=unused, ca=unused)
    return create_ui_app(config, create_engine("sqlite://")).openapi()


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT_PATH
    path.write_text(render(document()), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
