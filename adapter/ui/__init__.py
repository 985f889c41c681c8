"""The staff web page and its REST API (`npo-adapter ui`)."""

from adapter.ui.app import create_ui_app

__all__ = ["create_ui_app"]
