"""Logging that never prints the bot token (httpx logs request URLs, which contain it)."""

from __future__ import annotations

import logging


class RedactToken(logging.Filter):
    """Replace the token wherever it appears in a record, as a last line of defence."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if self.token and self.token in record.getMessage():
            record.msg = record.getMessage().replace(self.token, "<token>")
            record.args = None
        return True


def configure(level: str, token: str = "") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if token:
        handler.addFilter(RedactToken(token))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx/httpcore log every request URL at INFO/DEBUG, and Telegram URLs carry the token.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Routine chatter of libraries: only warnings, unless DEBUG is asked for.
    for chatty in ("apscheduler", "alembic"):
        logging.getLogger(chatty).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
