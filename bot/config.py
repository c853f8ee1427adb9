"""Settings from the environment: built once in ``__main__``, passed down, never read at import."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_API_BASE_URL = "https://api.telegram.org"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/paincoach.sqlite3"
FREE_RATE = 30  # messages per second Telegram allows a bot without paid broadcasts
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the environment variable."""


class Settings(BaseSettings):
    """Every knob of the bot. Frozen: change the environment and restart instead."""

    # No env file by default (tests, demo, bench); `python -m bot` passes ENV_FILE (".env").
    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", env_file=None, env_file_encoding="utf-8"
    )

    telegram_bot_token: SecretStr
    telegram_api_base_url: str = DEFAULT_API_BASE_URL
    database_url: str = DEFAULT_DATABASE_URL
    log_level: str = "INFO"
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # How long a reminder that fell due while the bot was down may still be sent.
    reminder_grace_minutes: int = Field(default=120, ge=0)
    # An unanswered check-in closes after this many hours and counts as missed.
    checkin_expiry_hours: float = Field(default=12, gt=0)
    # A claimed prompt not recorded as sent within this many seconds is sent again
    # (its sender crashed or failed). Longer than one send, short enough to repair quickly.
    prompt_lease_seconds: float = Field(default=60, gt=0)
    # Messages per second overall (Telegram: about 30; paid broadcasts allow more). 0 = no limit.
    send_rate_per_second: int = Field(default=30, ge=0, le=1000)
    # Send the reminder fan-out as paid broadcasts (allow_paid_broadcast: 0.1 Telegram Star per
    # message from the bot's balance): then SEND_RATE_PER_SECOND may be up to 1000.
    allow_paid_broadcast: bool = False
    # "Finished? Tap Done": minutes after a session starts (pain before given) without Done.
    done_nudge_minutes: int = Field(default=90, gt=0)
    # Days in a row without any answer before the regular prompt becomes a come-back offer,
    # and further silent days after that before reminders drop to once a week.
    absence_after_days: int = Field(default=3, gt=0)
    weekly_after_days: int = Field(default=7, gt=0)
    # Seconds between dispatcher ticks (claims due reminders from the database).
    dispatch_interval_seconds: float = Field(default=5, gt=0)

    # Webhook mode instead of polling when set (https URL Telegram can reach).
    webhook_url: str = ""
    # The secret Telegram echoes in every webhook request; derived from the token if unset.
    webhook_secret: SecretStr = SecretStr("")
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    # Updates waiting to be handled; beyond this, webhook answers 503 and polling waits.
    update_queue_size: int = Field(default=1000, ge=1)
    # Updates handled at once (different users; one user's updates go one at a time).
    update_workers: int = Field(default=16, ge=1)
    # Commands a user may send per window; the next gets one "slow down", then silence.
    user_command_budget: int = Field(default=10, ge=1)
    user_command_window_seconds: float = Field(default=10, gt=0)
    # Polling mode serves GET /healthz here (webhook mode serves it on WEBHOOK_PORT). 0 = off.
    health_listen: str = "127.0.0.1"
    health_port: int = Field(default=8081, ge=0, le=65535)

    @model_validator(mode="after")
    def _paid(self) -> Settings:
        if self.send_rate_per_second > FREE_RATE and not self.allow_paid_broadcast:
            raise ValueError(
                f"SEND_RATE_PER_SECOND above {FREE_RATE} needs ALLOW_PAID_BROADCAST=true "
                "(Telegram's free limit is about 30 messages per second)"
            )
        return self

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith("https://"):
            raise ValueError("must be an https:// URL (Telegram only calls https webhooks)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        # Bot API: 1-256 characters, only A-Z, a-z, 0-9, _ and -.
        if raw and (len(raw) > 256 or not all(c.isalnum() or c in "_-" for c in raw)):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @property
    def webhook_secret_value(self) -> str:
        raw = self.webhook_secret.get_secret_value()
        if raw:
            return raw
        digest = hashlib.sha256(b"webhook:" + self.telegram_bot_token.get_secret_value().encode())
        return digest.hexdigest()

    @property
    def webhook_path(self) -> str:
        path = urlsplit(self.webhook_url).path if self.webhook_url else ""
        return path or "/telegram"

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value().strip()
        # BotFather tokens look like "123456789:AA...": digits, a colon, then the secret.
        head, sep, tail = token.partition(":")
        if not token or not sep or not head.isdigit() or not tail:
            raise ValueError("must look like 123456:ABC... (the token BotFather gave you)")
        return SecretStr(token)

    @field_validator("telegram_api_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        if value.endswith("/bot"):
            value = value[: -len("/bot")]
        return value

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        value = value.strip()
        if value.startswith(("postgres://", "postgresql://")):
            # Accept the common libpq form and use the async driver for it.
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be sqlite+aiosqlite:///path or postgresql+asyncpg://...")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
            if not all(p.lstrip("-").isdigit() for p in parts):
                raise ValueError("must be Telegram user ids separated by commas")
            return frozenset(int(p) for p in parts)
        return value

    @property
    def bot_api_url(self) -> str:
        return f"{self.telegram_api_base_url}/bot"

    @property
    def bot_file_url(self) -> str:
        return f"{self.telegram_api_base_url}/file/bot"

    @property
    def reminder_grace(self) -> timedelta:
        return timedelta(minutes=self.reminder_grace_minutes)

    @property
    def checkin_expiry(self) -> timedelta:
        return timedelta(hours=self.checkin_expiry_hours)

    @property
    def done_nudge(self) -> timedelta:
        return timedelta(minutes=self.done_nudge_minutes)

    def sqlite_path(self) -> Path | None:
        if not self.database_url.startswith("sqlite"):
            return None
        raw = self.database_url.split(":///", 1)[1]
        return None if raw in ("", ":memory:") else Path(raw)


ENV_FILE = ".env"


def load_settings(env_file: str | None = None, **overrides: object) -> Settings:
    """Build Settings from the environment (and ``env_file`` if given and present: variables
    set in the environment win over the file); raise ConfigError naming the first bad one."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[arg-type, call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:  # a rule across settings: its message names them
            raise ConfigError(err["msg"].removeprefix("Value error, ")) from None
        name = str(err["loc"][0]).upper() if err["loc"] else "configuration"
        if err["type"] == "missing":
            raise ConfigError(f"{name} is not set: export it (see .env.example)") from None
        raise ConfigError(
            f"{name} is invalid: {err['msg'].removeprefix('Value error, ')}"
        ) from None
