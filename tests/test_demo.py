"""`python -m bot demo`: the real bot in a terminal, driven here as a user would, by stdin/stdout.

The subprocess tests type one line, read up to the next prompt, and look buttons up by
their labels (from the locale files), so they check what a person trying the demo sees.
"""

from __future__ import annotations

import asyncio
import codecs
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.demo import (
    clock_target,
    deep_link_payload,
    default_start,
    file_name,
    number_buttons,
)
from bot.handlers.setup import zone_label
from bot.i18n import SUPPORTED_LOCALES, t
from tests.conftest import tx

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday, as the demo's default start is
# The prompt ends every answer: "[Monday, 23 November, 07:00 UTC] patient> " (no newline).
PROMPT = re.compile(r"\n\[([^\]\n]+)\] (\S+)> $")
PNG = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- pure helpers


def test_buttons_are_numbered_and_a_keypad_is_pressed_by_its_own_number():
    assert number_buttons(["I agree", "Not now"]) == ["1", "2"]
    keypad = [str(n) for n in range(11)]
    assert number_buttons(keypad) == keypad
    # Other buttons next to a keypad take the numbers it leaves free.
    assert number_buttons(["0", "1", "2", "Cancel", "Help"]) == ["0", "1", "2", "3", "4"]
    assert number_buttons(["Better", "5", "Worse"]) == ["1", "5", "2"]


def test_clock_moves_by_durations_and_to_the_next_local_time():
    london, new_york = ZoneInfo("Europe/London"), ZoneInfo("America/New_York")
    assert clock_target("+1d2h30m", START, london) == START + timedelta(days=1, hours=2.5)
    assert clock_target("+45m", START, london) == START + timedelta(minutes=45)
    # 08:30 in New York is 13:30 UTC on 23 November (EST).
    assert clock_target("08:30", START, new_york) == datetime(2026, 11, 23, 13, 30, tzinfo=UTC)
    # Already past today: tomorrow's.
    assert clock_target("06:00", START, london) == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    assert clock_target("07:00", START, london) == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    for bad in ("-1h", "+0m", "25:00", "tomorrow", "+1w", "+61d", ""):
        with pytest.raises(ValueError):
            clock_target(bad, START, london)


def test_default_start_is_monday_seven_utc_of_this_week():
    assert default_start(datetime(2026, 11, 26, 19, 5, tzinfo=UTC)) == START
    assert default_start(datetime(2026, 11, 29, 23, 59, tzinfo=UTC)) == START
    assert default_start(START) == START


def test_deep_links_to_this_bot_only():
    code = "a" * 32
    assert deep_link_payload(f"https://t.me/PainCoachDemoBot?start={code}", "PainCoachDemoBot")
    assert deep_link_payload(f"t.me/paincoachdemobot?start={code}", "PainCoachDemoBot") == code
    assert deep_link_payload(f"https://t.me/OtherBot?start={code}", "PainCoachDemoBot") is None
    assert deep_link_payload("https://example.com/?start=x", "PainCoachDemoBot") is None
    assert deep_link_payload("https://t.me/PainCoachDemoBot", "PainCoachDemoBot") is None


def test_saved_files_get_a_usable_name():
    assert file_name("photo", "progress.png", PNG) == "progress.png"
    assert file_name("photo", "application.octet-stream", PNG) == "photo.png"
    assert file_name("document", "export.csv", b"a,b") == "export.csv"
    assert file_name("document", None, b"%PDF-1.7") == "document.pdf"


def _locale_file(loc: str) -> dict:
    with (ROOT / "locales" / f"demo.{loc}.yml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)[loc]


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_demo_locales_have_the_same_keys_and_placeholders():
    english = _flatten(_locale_file("en"))
    for loc in SUPPORTED_LOCALES:
        texts = _flatten(_locale_file(loc))
        assert texts.keys() == english.keys(), loc
        for key, text in texts.items():
            assert set(re.findall(r"%\{(\w+)\}", text)) == set(
                re.findall(r"%\{(\w+)\}", english[key])
            ), (loc, key)
            # python-i18n reads any other "%" as the start of a placeholder.
            assert "%" not in re.sub(r"%\{\w+\}", "", text), (loc, key)


# --------------------------------------------------------------------------- the subprocess


class DemoProcess:
    """`python -m bot demo` on pipes: say a line, get everything printed up to the next prompt."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr  # a file, not a pipe: nobody has to drain it while we chat
        self.transcript = ""
        self._decode = codecs.getincrementaldecoder("utf-8")().decode  # chunks split chars

    @classmethod
    async def start(cls, tmp_path: Path, *args: str) -> tuple[DemoProcess, str]:
        # No token, no API URL, a database URL that must stay untouched: the demo needs none.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'must-not-exist.sqlite3'}"
        env["TELEGRAM_API_BASE_URL"] = "http://127.0.0.1:9"  # nothing listens: no network
        env.pop("LOG_LEVEL", None)
        stderr = tmp_path / "stderr.txt"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "demo",
                "--start",
                START.isoformat(),
                "--out",
                str(tmp_path / "out"),
                *args,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
            )
        demo = cls(proc, stderr)
        return demo, await demo.read_until_prompt()

    async def read_until_prompt(self, timeout: float = 60) -> str:  # noqa: ASYNC109
        out = ""

        async def read() -> str:
            nonlocal out
            while not PROMPT.search(out):
                chunk = await self.proc.stdout.read(65536)
                if not chunk:
                    raise AssertionError(f"the demo ended early:\n{self.transcript}{out}")
                out += self._decode(chunk)
            return out

        try:
            await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no prompt within {timeout}s:\n{self.transcript}{out}") from None
        self.transcript += out
        return out

    async def say(self, line: str) -> str:
        """Type one line; what the demo printed in answer (the echo of the line first)."""
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()
        return await self.read_until_prompt()

    async def press(self, label: str, shown: str) -> str:
        """Type the number the demo showed for the button ``label`` in ``shown``."""
        return await self.say(key_of(label, shown))

    async def finish(self, *, eof: bool = False) -> tuple[int, str, str]:
        """End with :quit (or by closing stdin); exit status, the rest of stdout, stderr."""
        if not eof:
            self.proc.stdin.write(b":quit\n")
        self.proc.stdin.close()
        out, _ = await asyncio.wait_for(self.proc.communicate(), 30)
        rest = self._decode(out, final=True)
        self.transcript += rest
        return self.proc.returncode, rest, self.stderr.read_text(encoding="utf-8")


def key_of(label: str, shown: str) -> str:
    """The key of a button in the demo's output: "[3] Label", or "[6]" for a keypad's 6."""
    if re.search(rf"\[{re.escape(label)}\](?:  |$)", shown, re.M) and label.isdigit():
        return label
    match = re.search(rf"\[(\d+)\] {re.escape(label)}(?:  |$)", shown, re.M)
    assert match, f"no button {label!r} in:\n{shown}"
    return match.group(1)


def prompt_of(output: str) -> tuple[str, str]:
    """(clock text, role) of the prompt that ends ``output``."""
    when, role = PROMPT.search(output).groups()
    return when, role


def note(key: str, loc: str = "en", **values: object) -> str:
    return "-- " + t(f"demo.{key}", loc, **values)


def saved_path(output: str, loc: str = "en", kind: str = "photo") -> Path:
    """The path of the file the demo says it saved."""
    pattern = re.escape(t(f"demo.saved_{kind}", loc, path="PATH")).replace("PATH", "(.+)")
    match = re.search(pattern, output)
    assert match, f"no saved {kind} in:\n{output}"
    return Path(match.group(1))


async def test_a_patient_sets_up_gets_the_reminder_checks_in_and_sees_progress(tmp_path):
    demo, out = await DemoProcess.start(tmp_path)
    try:
        assert "patient" in out and ":help" in out
        assert prompt_of(out) == ("Monday, 23 November, 07:00 UTC", "patient")

        # Onboarding, buttons by their numbers and the reminder time typed.
        out = await demo.say("/start")
        assert tx("start.greeting", "en", name="Ana") in out
        assert re.search(r"\[1\] I agree  \[2\] Not now$", out, re.M)
        out = await demo.press(tx("start.consent_yes", "en"), out)
        assert note("pressed", label=tx("start.consent_yes", "en")) in out
        # Telegram's language is English: setup does not ask it again.
        assert tx("setup.ask_timezone", "en").split(" Tap")[0] in out
        out = await demo.press(zone_label("America/New_York", START, "en"), out)
        assert prompt_of(out)[0] == "Monday, 23 November, 02:00 EST"  # the user's own zone now
        out = await demo.say("08:30")
        assert tx("setup.ask_days", "en") in out
        out = await demo.press(tx("setup.days_weekdays", "en"), out)
        assert tx("setup.done", "en") in out

        # "08:30" is the patient's 08:30 (13:30 UTC): the dispatcher sends the prompt then.
        out = await demo.say(":clock 08:30")
        assert tx("checkin.prompt", "en") in out
        assert prompt_of(out)[0] == "Monday, 23 November, 08:30 EST"

        # The check-in, every step with buttons; the prompt's keypad is pressed by the score
        # itself: before, Done, after (3 taps), then the optional effort.
        assert "[0]  [1]  [2]  [3]  [4]  [5]" in out
        exercising = await demo.say("6")
        assert tx("checkin.go_exercise", "en", score=6) in exercising
        out = await demo.say(":clock +25m")  # the session itself
        assert prompt_of(out)[0] == "Monday, 23 November, 08:55 EST"
        out = await demo.press(tx("checkin.done", "en"), exercising)
        assert tx("checkin.ask_after", "en") in out
        out = await demo.say("4")
        assert tx("checkin.ask_effort", "en") in out  # below the explanation, optional
        # The tailored reply: a fall in pain, explained with the patient's own numbers.
        reply = out.split("\n| ", 1)[1]
        await demo.press(tx("checkin.effort_easy", "en"), out)
        assert tx("checkin.result", "en", before=6, after=4) in reply
        assert tx("checkin.first_session", "en") in reply
        tip = reply.split("|\n| ")[2]
        assert "6" in tip and "4" in tip

        # /progress: the summary, and the chart saved as a file the demo names.
        out = await demo.say("/progress")
        assert tx("progress.title", "en") in out
        chart = saved_path(out)
        assert chart.parent == tmp_path / "out" and chart.suffix == ".png"
        assert chart.read_bytes().startswith(PNG)

        code, rest, err = await demo.finish(eof=True)
        print(demo.transcript)  # pytest shows it when something fails
    finally:
        if demo.proc.returncode is None:
            demo.proc.kill()
            await demo.proc.wait()
    assert code == 0, err
    assert note("bye", out=tmp_path / "out") in rest
    assert "Traceback" not in err and "missing translation" not in err, err
    assert not (tmp_path / "must-not-exist.sqlite3").exists()


async def test_a_therapist_links_a_patient_and_gets_the_weekly_digest(tmp_path):
    therapist = t("demo.role.therapist", "da")
    demo, out = await DemoProcess.start(tmp_path, "--lang", "da")
    try:
        assert prompt_of(out) == ("mandag den 23. november kl. 07.00 UTC", "patient")

        out = await demo.say(":as therapist")
        assert note("granted", "da", name="Mette", id=2001) in out
        assert prompt_of(out)[1] == therapist
        out = await demo.say("/invite")
        link = re.search(r"https://t\.me/PainCoachDemoBot\?start=\S+", out).group()

        # The patient opens the link (Telegram sends /start <code>), consents and shares.
        out = await demo.say(":as patient")
        out = await demo.say(f":open {link}")
        assert note("sent", "da", text=f"/start {link.split('=')[1]}") in out
        out = await demo.press(tx("start.consent_yes", "da"), out)
        out = await demo.press(tx("therapist.link_yes", "da"), out)
        # The therapist is told, in their own chat, shown separately.
        assert note("unread", "da", count=1, who=therapist, role="therapist") in out

        out = await demo.say(":as therapist")
        assert tx("therapist.new_patient", "da", patient="Ana") in out  # waiting for them
        # The weekly digest job sends on Mondays at 08:00 (the default slot): today's covers
        # last week, next Monday's the week Ana shared, each with its chart.
        out = await demo.say(":clock +7d2h")
        title = tx("therapist.digest_title", "da", period="").strip(" ,")
        assert out.count(title) == 2 and "Ana" in out
        # Ana joined this Monday and has not exercised yet: no empty weeks, no empty chart.
        assert tx("workspace.digest_not_yet", "da", date="23. november") in out
        assert tx("workspace.digest_no_chart", "da") in out

        # Issue 16: the therapist opens Ana's page and sends her a note; Ana answers.
        out = await demo.say("/patients")
        out = await demo.press("Ana", out)
        assert tx("workspace.page_title", "da", name="Ana", since="23. november 2026") in out
        out = await demo.press(tx("workspace.button_note", "da"), out)
        out = await demo.say("Godt begyndt! Prøv 3 langsomme squats i morgen.")
        assert tx("workspace.note_sent", "da", name="Ana") in out
        out = await demo.say(":as patient")
        assert "Godt begyndt! Prøv 3 langsomme squats i morgen." in out
        out = await demo.press(tx("workspace.note_reply_button", "da"), out)
        out = await demo.say("Tak, det gør jeg.")
        assert tx("workspace.reply_sent", "da", name="Mette") in out
        out = await demo.say(":as therapist")
        assert "| Svar fra Ana:\n|\n| Tak, det gør jeg." in out

        # :lang goes through the bot's own /language flow.
        out = await demo.say(":lang es")
        assert note("sent", "da", text="/language") in out
        assert tx("setup.language_set", "es") in out
        assert prompt_of(out)[1] == t("demo.role.therapist", "es")

        code, _, err = await demo.finish()
        print(demo.transcript)  # pytest shows it when something fails
    finally:
        if demo.proc.returncode is None:
            demo.proc.kill()
            await demo.proc.wait()
    assert code == 0, err
    assert "Traceback" not in err and "missing translation" not in err, err
