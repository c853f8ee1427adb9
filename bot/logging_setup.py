"""Logging that never prints the bot token (httpx logs request URLs, which contain it)."""

from __future__ import annotations

import logging


class RedactingFormatter(logging.Formatter):
    """Replace the token anywhere in the formatted line, tracebacks included."""

    def __init__(self, fmt: str, token: str) -> None:
        super().__init__(fmt)
        self.token = token

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(self.token, "<token>") if self.token else text


def configure(level: str, token: str = "") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", token)
    )
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx/httpcore log every request URL at INFO/DEBUG, and Telegram URLs carry the token.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Routine chatter of libraries: only warnings, unless DEBUG is asked for.
    # matplotlib and fontTools (PDF fonts) log font discovery and subsetting at INFO.
    for chatty in ("apscheduler", "alembic", "matplotlib", "fontTools"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
