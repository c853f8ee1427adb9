"""python-i18n set-up: every locale file is loaded once at start-up; ``t`` takes an explicit locale.

python-i18n keeps its settings in one process-wide dict and, on a missing key, scans the
disk from the event loop. We load everything up front and then clear ``load_path`` so a
miss never touches the disk: it falls back to English, and in strict mode (tests) raises.
"""

from __future__ import annotations

import logging
from pathlib import Path

import i18n
import yaml

log = logging.getLogger(__name__)

SUPPORTED_LOCALES: tuple[str, ...] = ("en", "da", "es")
FALLBACK_LOCALE = "en"
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"

_strict = False


def normalize_locale(code: str | None) -> str:
    """Map a Telegram ``language_code`` ("es-419", "da", "pt-br", None) to a supported locale."""
    if not code:
        return FALLBACK_LOCALE
    base = code.replace("_", "-").split("-", 1)[0].lower()
    return base if base in SUPPORTED_LOCALES else FALLBACK_LOCALE


def telegram_language_supported(code: str | None) -> bool:
    """Whether a Telegram ``language_code`` is one of ours (not merely the fallback)."""
    return bool(code) and code.replace("_", "-").split("-", 1)[0].lower() in SUPPORTED_LOCALES


def load_locales(path: Path = LOCALES_DIR, *, strict: bool = False) -> list[str]:
    """Load every ``<namespace>.<locale>.yml`` under ``path``; return the namespaces found."""
    global _strict
    _strict = strict
    i18n.translations.container.clear()
    i18n.set("file_format", "yml")
    i18n.set("filename_format", "{namespace}.{locale}.{format}")
    i18n.set("available_locales", list(SUPPORTED_LOCALES))
    i18n.set("fallback", FALLBACK_LOCALE)
    i18n.set("enable_memoization", True)
    i18n.set("error_on_missing_translation", strict)
    i18n.set("load_path", [])  # never scan the disk on a miss
    namespaces: set[str] = set()
    for file in sorted(path.glob("*.yml")):
        parts = file.name.split(".")
        if len(parts) != 3:
            continue
        namespace, locale = parts[0], parts[1]
        with file.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        if locale not in data:
            raise ValueError(f"{file.name}: the root key must be the locale {locale!r}")
        i18n.resource_loader.load_translation_dic(data[locale], namespace, locale)
        namespaces.add(namespace)
    return sorted(namespaces)


def has(key: str, locale: str) -> bool:
    return i18n.translations.has(key, locale)


def t(key: str, locale: str | None, /, **values: object) -> str:
    """Translate ``key`` into ``locale`` (falls back to English), filling ``%{name}`` values."""
    loc = normalize_locale(locale)
    if not i18n.translations.has(key, loc):
        if _strict:
            raise KeyError(f"missing translation {key!r} for locale {loc!r}")
        log.warning("missing translation %s for %s", key, loc)
        loc = FALLBACK_LOCALE
    if not i18n.translations.has(key, loc):
        if _strict:
            raise KeyError(f"missing translation {key!r}")
        return key
    return i18n.t(key, locale=loc, **values)
