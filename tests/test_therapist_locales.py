"""The therapist texts exist in every language with the same placeholders and valid HTML."""

from __future__ import annotations

import re

import pytest
import yaml

from bot.i18n import LOCALES_DIR, SUPPORTED_LOCALES
from bot.testing.fake_telegram import parse_html

PLACEHOLDER = re.compile(r"%\{(\w+)\}")
TAG = re.compile(r"</?([a-zA-Z-]+)[^>]*>")
# Shown as buttons or callback answers, which Telegram shows as plain text.
PLAIN = {"link_yes", "link_no", "link_stale", "link_linked", "revoke_stale", "stop_button"}
# The chart's labels are drawn by matplotlib, not parsed by Telegram.
CHART = {"chart_title", "chart_done", "chart_planned", "chart_more"}
# Formats that may rightly read the same in two languages.
SAME_OK = {"barrier_count", "period", "patients_item", "patient_unnamed"}


def flat(tree: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def strings(locale: str) -> dict[str, str]:
    with (LOCALES_DIR / f"therapist.{locale}.yml").open(encoding="utf-8") as fh:
        return flat(yaml.safe_load(fh)[locale])


ENGLISH = strings("en")


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_same_keys_and_placeholders(locale: str) -> None:
    texts = strings(locale)
    assert texts.keys() == ENGLISH.keys()
    for key, text in texts.items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(ENGLISH[key])), key
        # python-i18n reads any other "%" as the start of a placeholder.
        assert "%" not in PLACEHOLDER.sub("", text), key


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_only_bold_and_italic_html_and_valid(locale: str) -> None:
    for key, text in strings(locale).items():
        tags = set(TAG.findall(text))
        assert tags <= {"b", "i"}, key
        if key.split(".")[0] in PLAIN | CHART:
            assert not tags, key
        parse_html(PLACEHOLDER.sub("x", text))  # raises on what Telegram would refuse


@pytest.mark.parametrize("locale", [loc for loc in SUPPORTED_LOCALES if loc != "en"])
def test_translated(locale: str) -> None:
    same = [k for k, v in strings(locale).items() if v == ENGLISH[k] and k not in SAME_OK]
    assert same == []
