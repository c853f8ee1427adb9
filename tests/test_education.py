"""The educational messages: texts in every locale, claim coverage, and how a tip is chosen."""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.db.models import TipShown, User
from bot.services.education import (
    GENERAL_POOL,
    TIPS,
    TIPS_BY_KEY,
    Situation,
    Tip,
    Topic,
    candidates_for,
    choose_tip,
    pick_tip,
    render_tip,
)
from bot.services.education import for_checkin as education_for_checkin

REPO = Path(__file__).resolve().parents[1]
LOCALES = ("en", "da", "es")
PLACEHOLDER = re.compile(r"%\{(\w+)\}")
SOURCES = ("000_4e8f90accc5175a5.txt", "001_972a37726f0b7adf.txt", "002_d7dc2a08e5b55ab1.txt")
CHECK_IN_OUTCOMES = {
    Situation.MAY_BE_EIH,
    Situation.ABOUT_SAME,
    Situation.ACCEPTABLE,
    Situation.TOO_MUCH,
    Situation.HIGH_STABLE,
}

# Every claim of source-material/README.md, in its order, as the start of its line,
# with the tips that teach it. A tip's ``source`` must be the claim's file.
CLAIMS: dict[tuple[str, str], list[str]] = {
    (SOURCES[0], "Exercise can lower pain sensitivity"): ["eih_what_it_is", "eih_rough_signal"],
    (SOURCES[0], "Exercise serves as a promising, evidence-based treatment"): [
        "eih_evidence_based"
    ],
    (SOURCES[0], "People with chronic pain meet barriers to exercise"): [
        "hurt_not_harm_temporary_rise"
    ],
    (SOURCES[0], "The talk discusses possible mechanisms"): ["hurt_not_harm_why_it_matters"],
    (SOURCES[1], "Long bed rest is no longer advised"): ["rest_short_then_move"],
    (SOURCES[1], "Too much rest can make pain worse"): ["rest_too_much", "busy_day_keep_moving"],
    (SOURCES[1], 'It is "somewhat proven" that regular exercise can reduce pain'): [
        "exercise_long_term_relief"
    ],
    (SOURCES[1], "Talk with your pain specialist about goals"): [
        "talk_to_clinician_goals",
        "talk_to_clinician_severe_pain",
    ],
    (SOURCES[1], "Benefits: daily activities get easier"): ["benefits_daily_life", "benefits_mood"],
    (SOURCES[1], "Exercise may cause the release of endorphins"): [
        "endorphins_natural_painkillers"
    ],
    (SOURCES[1], "Some exercises suit a given person better"): [
        "plan_you_can_keep",
        "rose_lot_adjust_plan",
    ],
    (SOURCES[1], "Exercising with chronic pain builds confidence"): [
        "small_steps_add_up",
        "habit_patience_streak",
    ],
    (SOURCES[2], "Many people with long-lasting pain fear strength"): [
        "fear_strength_training_common"
    ],
    (SOURCES[2], "Slowly progressing training is often the way"): [
        "slow_progression",
        "rose_lot_lower_load",
    ],
    (SOURCES[2], "Physical gains: more muscle strength"): ["strength_physical_gains"],
    (SOURCES[2], "The nervous system gets used to load"): [
        "nervous_system_10kg_50kg",
        "nervous_system_gets_used_to_load",
    ],
    (SOURCES[2], "Better mental well-being and satisfaction"): ["mood_self_confidence"],
    (SOURCES[2], "Stress hormone: cortisol rises right after"): [
        "cortisol_short_rise_ok",
        "cortisol_long_term",
    ],
    (SOURCES[2], "Together, strength and cardio training reduce pain"): [
        "strength_and_cardio_together"
    ],
}

# Over-claims found in review (issue 13): no tip may say these again.
OVER_CLAIMS = {
    "en": [
        "does not mean you have damaged",
        "not a sign of damage",
        "works over the long run",
        "a big part of why",
        "partly because",
        "load is safe",
        "what makes that happen",
        "works best",
    ],
    "da": ["betyder ikke, at du har skadet", "ikke et tegn på skade", "en stor del af grunden"],
    "es": ["no significa que te hayas lesionado", "no indica ninguna lesión", "buena parte de por"],
}
# Safety advice is clinician safety text (locales/safety.*.yml), never a tip citing a source.
SAFETY_WORDS = {
    "en": ["emergency", "112", "911", "doctor"],
    "da": ["nødsituation", "112", "læge"],
    "es": ["emergencia", "112", "médico"],
}


def load_texts(locale: str) -> dict[str, str]:
    with (REPO / "locales" / f"tips.{locale}.yml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)[locale]


TEXTS = {locale: load_texts(locale) for locale in LOCALES}
TIP_LOCALES = [pytest.param(tip, loc, id=f"{tip.key}-{loc}") for tip in TIPS for loc in LOCALES]


def source_material_dir() -> Path | None:
    """The folder with README.md and the three texts, if this checkout can see it."""
    candidates = [
        os.environ.get("SOURCE_MATERIAL_DIR"),
        REPO / "source-material",
        REPO / "docs" / "source-material",
        REPO.parent / "shared" / "source-material",
        REPO.parents[1] / "shared" / "source-material",  # a worktree under /work/wt/
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "README.md").is_file():
            return Path(candidate)
    return None


def filled(tip: Tip) -> dict[str, str]:
    return {name: "10" for name in tip.placeholders}


class TelegramHTMLCheck(HTMLParser):
    """Accepts only what we allow in tips: <b> and <i>, no attributes, properly nested."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("b", "i") or attrs:
            self.errors.append(f"tag <{tag}> not allowed")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_entityref(self, name: str) -> None:
        if name not in ("lt", "gt", "amp", "quot"):
            self.errors.append(f"entity &{name}; not supported by Telegram")


def html_errors(text: str) -> list[str]:
    if "&" in re.sub(r"&(lt|gt|amp|quot);", "", text):
        return ["bare & (write &amp;)"]
    check = TelegramHTMLCheck()
    check.feed(text)
    check.close()
    return check.errors + [f"unclosed <{tag}>" for tag in check.stack]


# --- the catalogue ---------------------------------------------------------------------


def test_keys_are_unique_stable_ids_with_known_sources() -> None:
    assert len(TIPS_BY_KEY) == len(TIPS)
    for tip in TIPS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", tip.key) and len(tip.key) <= 64, tip.key
        assert tip.source in SOURCES, tip.key


def test_enough_tips_and_every_topic_covered() -> None:
    assert len(TIPS) >= 24
    assert {tip.topic for tip in TIPS} == set(Topic)


@pytest.mark.parametrize("situation", list(Situation))
def test_each_situation_has_at_least_two_tips(situation: Situation) -> None:
    assert len(candidates_for(situation)) >= 2


def test_a_fall_and_a_rise_never_share_a_tip() -> None:
    """A reply never speaks of a fall and a rise together: the tips after a fall of 2+ and
    those after a rise of 2+ are different tips."""
    fall = set(candidates_for(Situation.MAY_BE_EIH))
    rise = set(candidates_for(Situation.ACCEPTABLE)) | set(candidates_for(Situation.TOO_MUCH))
    assert fall and rise and not fall & rise


def test_check_in_outcomes_are_the_clinical_rules_situations() -> None:
    from bot.services import feedback

    outcomes = {s.value for s in feedback.Situation} - {feedback.Situation.HIGH_BEFORE.value}
    assert {s.value for s in CHECK_IN_OUTCOMES} == outcomes
    for situation in feedback.Situation:
        if situation is not feedback.Situation.HIGH_BEFORE:
            assert candidates_for(education_for_checkin(situation))
    assert set(GENERAL_POOL) == set(TIPS)


# --- the texts ----------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_locale_file_holds_exactly_the_tips(locale: str) -> None:
    assert set(TEXTS[locale]) == set(TIPS_BY_KEY)


@pytest.mark.parametrize(("tip", "locale"), TIP_LOCALES)
def test_text_is_present_and_short(tip: Tip, locale: str) -> None:
    raw = TEXTS[locale][tip.key]
    assert isinstance(raw, str) and raw.strip()
    text = render_tip(tip, locale, **filled(tip))
    assert text.strip()
    assert len(text) < 400, f"{len(text)} characters"
    assert "%" not in text  # every placeholder filled, no stray percent sign


@pytest.mark.parametrize(("tip", "locale"), TIP_LOCALES)
def test_placeholders_match_the_declaration(tip: Tip, locale: str) -> None:
    raw = TEXTS[locale][tip.key]
    assert set(PLACEHOLDER.findall(raw)) == tip.placeholders
    # python-i18n reads any other "%" as the start of a placeholder.
    assert "%" not in PLACEHOLDER.sub("", raw)


@pytest.mark.parametrize(("tip", "locale"), TIP_LOCALES)
def test_text_is_valid_telegram_html(tip: Tip, locale: str) -> None:
    assert html_errors(render_tip(tip, locale, **filled(tip))) == []


@pytest.mark.parametrize(
    "text",
    ["a <u>b</u>", "<b>x", "<b><i>x</b></i>", "salt & pepper", "<a href='x'>y</a>", "&nbsp;"],
)
def test_html_check_rejects_what_telegram_would(text: str) -> None:
    assert html_errors(text)


@pytest.mark.parametrize(("tip", "locale"), [p for p in TIP_LOCALES if p.values[1] != "en"])
def test_translations_are_not_left_in_english(tip: Tip, locale: str) -> None:
    assert TEXTS[locale][tip.key] != TEXTS["en"][tip.key]


@pytest.mark.parametrize(("tip", "locale"), TIP_LOCALES)
def test_no_tip_repeats_an_over_claim_or_gives_safety_advice(tip: Tip, locale: str) -> None:
    text = TEXTS[locale][tip.key].lower()
    for phrase in OVER_CLAIMS[locale]:
        assert phrase.lower() not in text, (tip.key, phrase)
    for word in SAFETY_WORDS[locale]:
        assert word not in text, (tip.key, word)


def test_no_tip_quotes_numbers_the_rules_explain_them() -> None:
    assert all(not tip.placeholders for tip in TIPS)


@pytest.mark.parametrize("locale", LOCALES)
def test_render_gives_the_tip_text(locale: str) -> None:
    text = render_tip(TIPS_BY_KEY["eih_what_it_is"], locale)
    assert text == TEXTS[locale]["eih_what_it_is"] and "%{" not in text


def test_render_refuses_a_missing_number() -> None:
    numbered = Tip("x", Topic.EIH, SOURCES[0], frozenset(), frozenset({"before", "after"}))
    with pytest.raises(ValueError, match="after"):
        render_tip(numbered, "en", before=7)


# --- the claims -----------------------------------------------------------------------------


def test_every_claim_is_taught_by_tips_from_its_source() -> None:
    assert Counter(source for source, _ in CLAIMS) == {SOURCES[0]: 4, SOURCES[1]: 8, SOURCES[2]: 7}
    for (source, claim), keys in CLAIMS.items():
        assert keys, claim
        for key in keys:
            assert key in TIPS_BY_KEY, key
            assert TIPS_BY_KEY[key].source == source, (key, claim)


def test_every_tip_rests_on_a_claim() -> None:
    covered = {key for keys in CLAIMS.values() for key in keys}
    assert covered == set(TIPS_BY_KEY)


def test_claims_table_matches_the_readme() -> None:
    folder = source_material_dir()
    if folder is None:
        pytest.skip("source-material/README.md not reachable (set SOURCE_MATERIAL_DIR)")
    readme: dict[str, list[str]] = {}
    current = None
    for line in (folder / "README.md").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"From (\d{3})", line)
        if heading:
            current = next(s for s in SOURCES if s.startswith(heading.group(1)))
        elif current and line.startswith("- "):
            readme.setdefault(current, []).append(line[2:])
    ours: dict[str, list[str]] = {}
    for source, claim in CLAIMS:
        ours.setdefault(source, []).append(claim)
    assert readme.keys() == ours.keys()
    for source, lines in readme.items():
        assert len(lines) == len(ours[source]), source
        for line, claim in zip(lines, ours[source], strict=True):
            assert line.startswith(claim), (line, claim)


def test_no_sentence_is_copied_from_the_sources() -> None:
    """No run of seven words from any source text appears in any tip (any locale), nor in the
    rules' messages, the safety text or the progress lines."""
    folder = source_material_dir()
    if folder is None:
        pytest.skip("source-material texts not reachable (set SOURCE_MATERIAL_DIR)")

    def shingles(text: str, n: int = 7) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}

    every_source = set().union(
        *(shingles((folder / s).read_text(encoding="utf-8")) for s in SOURCES)
    )
    for locale in LOCALES:
        texts = {f"tips.{key}": text for key, text in TEXTS[locale].items()}
        for namespace in ("feedback", "safety", "progress"):
            with (REPO / "locales" / f"{namespace}.{locale}.yml").open(encoding="utf-8") as fh:
                for key, text in yaml.safe_load(fh)[locale].items():
                    if isinstance(text, str):
                        texts[f"{namespace}.{key}"] = text
        for key, text in texts.items():
            copied = shingles(text) & every_source
            assert not copied, (key, locale, copied)


# --- the rules ------------------------------------------------------------------------------


def draw(situation: Situation | None, times: int, seed: int, counts: Counter[str]) -> list[str]:
    rng = random.Random(seed)
    keys = []
    for _ in range(times):
        key = choose_tip(situation, counts, rng).key
        counts[key] += 1
        keys.append(key)
    return keys


@pytest.mark.parametrize("situation", [None, *Situation])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_choose_tip_uses_the_whole_pool_before_repeating(
    situation: Situation | None, seed: int
) -> None:
    pool = candidates_for(situation)
    counts: Counter[str] = Counter()
    first_round = draw(situation, len(pool), seed, counts)
    assert sorted(first_round) == sorted(tip.key for tip in pool)
    draw(situation, len(pool), seed + 1, counts)
    assert counts == {tip.key: 2 for tip in pool}


def test_general_choice_skips_tips_already_seen_in_check_ins() -> None:
    seen = {tip.key: 1 for tip in GENERAL_POOL[::2]}
    unseen = {tip.key for tip in GENERAL_POOL} - seen.keys()
    counts = Counter(seen)
    assert set(draw(None, len(unseen), 7, counts)) == unseen


def test_situation_choice_prefers_the_least_shown() -> None:
    pool = candidates_for(Situation.MAY_BE_EIH)
    counts = {tip.key: 3 for tip in pool} | {pool[-1].key: 1, "retired_tip": 0}
    assert choose_tip(Situation.MAY_BE_EIH, counts, random.Random(0)) == pool[-1]


def test_ties_are_broken_at_random() -> None:
    firsts = {choose_tip(None, {}, random.Random(seed)).key for seed in range(30)}
    assert len(firsts) > 1


def test_general_choice_never_needs_numbers() -> None:
    counts: Counter[str] = Counter()
    assert not any(TIPS_BY_KEY[k].placeholders for k in draw(None, 3 * len(TIPS), 3, counts))


# --- the database ---------------------------------------------------------------------------


async def test_pick_tip_records_each_tip_and_does_not_repeat(session) -> None:
    user = User(telegram_id=4242)
    session.add(user)
    await session.flush()
    rng = random.Random(5)
    picked = [await pick_tip(session, user.id, None, rng) for _ in GENERAL_POOL]
    assert len({tip.key for tip in picked}) == len(GENERAL_POOL)
    rows = await session.scalars(select(TipShown.tip_key).where(TipShown.user_id == user.id))
    assert sorted(rows.all()) == sorted(tip.key for tip in picked)
    await session.rollback()  # the caller owns the transaction: nothing was committed
    assert (await session.scalars(select(TipShown.id))).all() == []
