"""A fake Telegram Bot API server and a harness to play users against a real bot.

The server speaks the Bot API over HTTP (aiohttp) so a *real* python-telegram-bot
``Bot``/``Application`` can talk to it: point ``base_url`` at
``f"{fake.api_base_url}/bot"`` and ``base_file_url`` at ``f"{fake.api_base_url}/file/bot"``.

Requests are validated against the Bot API spec (``shared/telegram/botapi.json``) and
against the rules real Telegram enforces (text lengths, HTML entity parsing, button data
size, "message is not modified", blocked users, ...), so a bot that passes its tests here
does not get surprised by ``BadRequest`` in production.

Typical use::

    fake = FakeTelegram()
    await fake.start()
    fake.deliver = lambda d: app.process_update(Update.de_json(d, app.bot))
    ana = fake.user(1001, "Ana", language_code="es")
    await ana.send("/start")
    assert ana.last.buttons == [["Agree", "Not now"]]
    await ana.press("Agree")
    print(ana.transcript())
    await fake.stop()
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import json
import logging
import mimetypes
import re
import struct
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = [
    "ApiError",
    "ApiRequest",
    "BotApiSpec",
    "FakeGroup",
    "FakeMessage",
    "FakeStats",
    "FakeTelegram",
    "FakeUser",
    "HtmlParseError",
    "StoredFile",
    "UploadedFile",
    "parse_html",
    "utf16_len",
]

log = logging.getLogger(__name__)

# Bot API 9.4 as machine-readable JSON (botapi.json of tgapis/botapidocs, MIT), shipped with
# the package so the tests and the demo work from a plain clone.
DEFAULT_SPEC_PATH = Path(__file__).resolve().parent / "botapi.json"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_ANSWER_TEXT = 200
MAX_INLINE_BUTTONS = 100

_TOKEN_RE = re.compile(r"\d+:[A-Za-z0-9_-]+")
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
_INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
# Update types Telegram sends when allowed_updates is unset or empty.
_NOT_DEFAULT_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply "
    "markup are exactly the same as a current content and reply markup of the message"
)


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the way Telegram counts."""
    return len(text.encode("utf-16-le")) // 2


def _tiny_png(width: int = 1, height: int = 1) -> bytes:
    """A valid, minimal grey PNG image (used as the default user photo)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


TINY_PNG = _tiny_png()


def _image_size(data: bytes) -> tuple[int, int]:
    """Width/height of a PNG (read from its header); a plausible default otherwise."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 512, 512


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A Telegram-shaped error answer: ``{"ok": false, "error_code", "description"}``."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        """The JSON body Telegram would answer with."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


# --------------------------------------------------------------------------- HTML


class HtmlParseError(ValueError):
    """Raised by :func:`parse_html` with a message in Telegram's wording."""


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ENTITY_RE = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([a-zA-Z]{1,16}));")
_TAG_NAME_RE = re.compile(r"[a-zA-Z0-9-]*")
_ATTR_NAME_RE = re.compile(r"[a-zA-Z0-9_-]+")


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    offset: int  # UTF-16 offset of the entity start in the output text
    language: str | None = None


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-HTML like the Bot API does; return (plain text, entities).

    Only the tags and entities Telegram documents are accepted; anything else raises
    :class:`HtmlParseError`. Entity offsets/lengths are in UTF-16 code units.
    """
    out: list[str] = []
    pos16 = 0
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    i, n = 0, len(source)

    def byte_offset(index: int) -> int:
        return len(source[:index].encode("utf-8"))

    def emit(char: str) -> None:
        nonlocal pos16
        out.append(char)
        pos16 += 2 if ord(char) > 0xFFFF else 1

    def decode_entity(index: int) -> tuple[str, int]:
        match = _HTML_ENTITY_RE.match(source, index)
        char = None
        if match:
            dec, hexa, name = match.groups()
            if name is not None:
                char = _HTML_NAMED.get(name)
            else:
                code = int(dec) if dec is not None else int(hexa, 16)
                if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF:
                    char = chr(code)
        if char is None or match is None:
            raise HtmlParseError(
                f"Character '&' is reserved and must be escaped as &amp; "
                f"(byte offset {byte_offset(index)})"
            )
        return char, match.end()

    while i < n:
        char = source[i]
        if char == "&":
            decoded, i = decode_entity(i)
            emit(decoded)
        elif char != "<":
            emit(char)
            i += 1
        elif source.startswith("</", i):
            name_match = _TAG_NAME_RE.match(source, i + 2)
            name = name_match.group().lower()
            end = name_match.end()
            while end < n and source[end].isspace():
                end += 1
            if end >= n or source[end] != ">":
                raise HtmlParseError(f"Unclosed end tag at byte offset {byte_offset(i)}")
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {byte_offset(i)}")
            if stack[-1].name != name:
                raise HtmlParseError(
                    f"Unmatched end tag at byte offset {byte_offset(i)}, expected "
                    f'"</{stack[-1].name}>", found "</{name}>"'
                )
            _close_tag(stack.pop(), stack, pos16, entities)
            i = end + 1
        else:
            tag, i = _parse_start_tag(source, i, byte_offset, decode_entity)
            tag.offset = pos16
            stack.append(tag)
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _parse_start_tag(source, i, byte_offset, decode_entity) -> tuple[_OpenTag, int]:
    """Parse ``<name attr="v" ...>`` starting at ``source[i] == "<"``."""
    n = len(source)
    name_match = _TAG_NAME_RE.match(source, i + 1)
    name = name_match.group().lower()
    if name not in _HTML_TAGS:
        raise HtmlParseError(f'Unsupported start tag "{name}" at byte offset {byte_offset(i)}')
    j = name_match.end()
    attrs: dict[str, str] = {}
    while True:
        while j < n and source[j].isspace():
            j += 1
        if j >= n:
            raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(i)}")
        if source[j] == ">":
            j += 1
            break
        attr_match = _ATTR_NAME_RE.match(source, j)
        if not attr_match:
            raise HtmlParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                f"at byte offset {byte_offset(i)}"
            )
        attr = attr_match.group().lower()
        j = attr_match.end()
        value = ""
        if j < n and source[j] == "=":
            j += 1
            if j < n and source[j] in "\"'":
                quote, j, chars = source[j], j + 1, []
                while j < n and source[j] != quote:
                    if source[j] == "&":
                        decoded, j = decode_entity(j)
                        chars.append(decoded)
                    else:
                        chars.append(source[j])
                        j += 1
                if j >= n:
                    raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(i)}")
                value = "".join(chars)
                j += 1
            else:
                start = j
                while j < n and not source[j].isspace() and source[j] != ">":
                    j += 1
                value = source[start:j]
        attrs[attr] = value
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise HtmlParseError('Tag "span" must have class "tg-spoiler"')
    if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
        raise HtmlParseError('Tag "tg-emoji" must have a valid attribute "emoji-id"')
    return _OpenTag(name=name, attrs=attrs, offset=0), j


def _close_tag(tag: _OpenTag, stack: list[_OpenTag], end16: int, entities: list) -> None:
    """Turn a closed tag into a MessageEntity (empty ones are dropped, like Telegram)."""
    length = end16 - tag.offset
    kind = _HTML_TAGS[tag.name]
    language = tag.attrs.get("class", "")
    if (
        kind == "code"
        and stack
        and stack[-1].name == "pre"
        and stack[-1].offset == tag.offset
        and language.startswith("language-")
    ):
        stack[-1].language = language[len("language-") :]
        return
    if length <= 0:
        return
    entity: dict[str, Any] = {"type": kind, "offset": tag.offset, "length": length}
    if kind == "text_link":
        if not tag.attrs.get("href"):
            return
        entity["url"] = tag.attrs["href"]
    elif kind == "pre" and tag.language:
        entity["language"] = tag.language
    elif kind == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = tag.attrs["emoji-id"]
    entities.append(entity)


def _strip_text(text: str, entities: list[dict]) -> tuple[str, list[dict]]:
    """Trim surrounding whitespace like Telegram, keeping entity offsets right."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    size = utf16_len(stripped)
    kept = []
    for entity in entities:
        start = max(0, entity["offset"] - lead)
        end = min(size, entity["offset"] + entity["length"] - lead)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# --------------------------------------------------------------------------- spec


class BotApiSpec:
    """The Bot API method catalogue (from botapi.json) and request decoding."""

    def __init__(self, data: dict[str, Any]):
        self.version: str = data.get("version", "?")
        self.methods: dict[str, dict] = data["methods"]
        self.types: dict[str, dict] = data["types"]
        self.ignored_params: list[tuple[str, str]] = []  # (method, name) Telegram would ignore

    @classmethod
    @functools.lru_cache(maxsize=4)
    def load(cls, path: Path) -> BotApiSpec:
        """Load (and cache) the spec at ``path``."""
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def returns(self, method: str) -> list[str]:
        """The spec return types of ``method``."""
        return self.methods[method]["returns"]

    def decode(
        self, method: str, raw: dict[str, Any], files: dict[str, UploadedFile]
    ) -> dict[str, Any]:
        """Check names/required params of a call and decode values to Python objects."""
        if method not in self.methods:
            raise ApiError(404, "Not Found")
        spec_params = {p["name"]: p for p in self.methods[method]["params"]}
        params: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in spec_params:
                # Real Telegram ignores parameters a method does not have (PTB sends
                # parse_mode with editMessageReplyMarkup when Defaults set one), so do we.
                self.ignored_params.append((method, name))
                continue
            params[name] = _decode_value(name, value, spec_params[name]["types"])
        referenced = " ".join(v for v in raw.values() if isinstance(v, str))
        for name, upload in files.items():
            if name in spec_params:
                if "InputFile" not in spec_params[name]["types"]:
                    raise _bad(f"parameter {name} can't be a file")
                params[name] = upload
            elif f"attach://{name}" not in referenced:
                raise _bad(f"unexpected file part {name} for method {method}")
        for name, param in spec_params.items():
            if param["required"] and name not in params:
                raise _bad(f"parameter {name} is required")
        return params


def _decode_value(name: str, raw: Any, types: list[str]) -> Any:
    """JSON-decode a raw request value unless the spec says it is a plain String."""
    value = raw
    if isinstance(raw, str) and types != ["String"]:
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
    if any(_matches(value, t) for t in types):
        return value
    if isinstance(raw, str) and "String" in types:
        return raw
    raise _bad(f"invalid value for parameter {name}: expected {' or '.join(types)}")


def _matches(value: Any, spec_type: str) -> bool:
    if spec_type == "String":
        return isinstance(value, str)
    if spec_type == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec_type == "Float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if spec_type == "Boolean":
        return isinstance(value, bool)
    if spec_type.startswith("Array of"):
        return isinstance(value, list)
    if spec_type == "InputFile":
        return isinstance(value, UploadedFile)
    return isinstance(value, dict)


# --------------------------------------------------------------------------- state


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class StoredFile:
    """A file known to the fake (uploaded by the bot or sent by a user)."""

    file_id: str
    file_unique_id: str
    kind: str  # "photo", "document", "sticker", ...
    data: bytes | None
    filename: str | None
    mime_type: str | None
    file_path: str

    def as_file(self) -> dict[str, Any]:
        """The Telegram ``File`` object."""
        result = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_path": self.file_path,
        }
        if self.data is not None:
            result["file_size"] = len(self.data)
        return result


@dataclass(eq=False)
class FakeMessage:
    """One message in a chat, kept at its current state (after edits)."""

    raw: dict[str, Any]
    from_bot: bool
    parse_mode: str | None = None
    source_text: str | None = None  # text/caption exactly as the bot sent it (e.g. HTML)
    file: StoredFile | None = None
    edited: bool = False
    deleted: bool = False
    # Non-inline markup (reply keyboard, remove, force reply): Telegram does not echo it.
    reply_keyboard: dict[str, Any] | None = None

    @property
    def message_id(self) -> int:
        return self.raw["message_id"]

    @property
    def text(self) -> str | None:
        """Text (or caption) as the user sees it: HTML tags removed, entities decoded."""
        return self.raw.get("text", self.raw.get("caption"))

    @property
    def _inline_rows(self) -> list[list[dict]]:
        return (self.raw.get("reply_markup") or {}).get("inline_keyboard") or []

    @property
    def buttons(self) -> list[list[str]]:
        """Inline button labels, row by row."""
        return [[button["text"] for button in row] for row in self._inline_rows]

    @property
    def callback_data(self) -> list[list[str | None]]:
        """Inline button callback_data, row by row (None for URL/other buttons)."""
        return [[button.get("callback_data") for button in row] for row in self._inline_rows]

    @property
    def keyboard(self) -> list[list[str]]:
        """Reply-keyboard (not inline) button labels, row by row."""
        return _keyboard_labels(self.reply_keyboard)

    def button_data(self, label: str) -> str:
        """The callback_data of the inline button labelled ``label``."""
        for row in self._inline_rows:
            for button in row:
                if button["text"] == label and "callback_data" in button:
                    return button["callback_data"]
        raise LookupError(
            f"no callback button {label!r} in message {self.message_id}: {self.buttons}"
        )

    @property
    def photo(self) -> bytes | None:
        return self.file.data if self.file and self.file.kind == "photo" else None

    @property
    def document(self) -> bytes | None:
        return self.file.data if self.file and self.file.kind == "document" else None

    @property
    def filename(self) -> str | None:
        return self.file.filename if self.file else None

    def render(self) -> str:
        """Readable form for transcripts."""
        lines = []
        if self.file is not None and self.file.kind != "sticker":
            size = len(self.file.data) if self.file.data is not None else "?"
            name = f"{self.file.filename}, " if self.file.filename else ""
            lines.append(f"[{self.file.kind}: {name}{size} bytes]")
        if "location" in self.raw:
            loc = self.raw["location"]
            lines.append(f"[location {loc['latitude']}, {loc['longitude']}]")
        if "sticker" in self.raw:
            lines.append(f"[sticker {self.raw['sticker'].get('emoji', '')}]".replace(" ]", "]"))
        if self.text:
            lines.append(self.text)
        if not lines:
            lines.append("(empty message)")
        if self.edited:
            lines[0] += "  (edited)"
        lines += [" ".join(f"[{label}]" for label in row) for row in self.buttons]
        lines += [" ".join(f"<{label}>" for label in row) for row in self.keyboard]
        return "\n".join(lines)


def _keyboard_labels(markup: dict[str, Any] | None) -> list[list[str]]:
    rows = (markup or {}).get("keyboard") or []
    return [[b if isinstance(b, str) else b["text"] for b in row] for row in rows]


class _Chat:
    """Server-side state of one chat: its messages and a log for transcripts."""

    def __init__(self, info: dict[str, Any]):
        self.info = info
        self.messages: dict[int, FakeMessage] = {}
        self.log: list[FakeMessage | str] = []
        self.blocked = False
        self.reply_keyboard: dict[str, Any] | None = None  # the keyboard the user now sees
        self._ids = itertools.count(1)

    @property
    def id(self) -> int:
        return self.info["id"]

    def add(self, message: FakeMessage) -> FakeMessage:
        self.messages[message.message_id] = message
        self.log.append(message)
        return message

    def next_message_id(self) -> int:
        return next(self._ids)

    def bot_messages(self) -> list[FakeMessage]:
        return [m for m in self.messages.values() if m.from_bot]

    def transcript(self) -> str:
        parts = []
        for entry in self.log:
            if isinstance(entry, str):
                parts.append(entry)
            elif not entry.deleted:
                text = entry.render()
                parts.append(
                    "\n".join(f"> {line}" for line in text.splitlines())
                    if not entry.from_bot
                    else text
                )
        return "\n\n".join(parts)


@dataclass
class ApiRequest:
    """One request the bot made, with the status it got."""

    method: str
    params: dict[str, Any]
    status: int
    description: str | None = None
    at: float = field(default_factory=time.monotonic)  # when it arrived (real time)


@dataclass
class FakeStats:
    """Counters for reliability/benchmark tests."""

    too_many_requests: int = 0  # 429 answers sent (injected or rate limited)
    sends_per_second: dict[int, int] = field(default_factory=dict)  # accepted sends

    @property
    def max_sends_per_second(self) -> int:
        return max(self.sends_per_second.values(), default=0)


@dataclass
class _Fault:
    method: str | None
    status: int
    retry_after: int | None
    times: int
    delay: float
    description: str | None


@dataclass
class _Query:
    user: FakeUser
    chat: _Chat
    answered: bool = False


def _is_outgoing_message(method: str) -> bool:
    return (
        method.startswith(("send", "copyMessage", "forwardMessage")) and method != "sendChatAction"
    )


# --------------------------------------------------------------------------- server


class FakeTelegram:
    """A Bot API server on 127.0.0.1 plus the users/groups that talk to the bot."""

    def __init__(
        self,
        spec_path: str | Path | None = None,
        bot_username: str = "PainCoachTestBot",
        clock: Callable[[], float] = time.time,
        *,
        bot_first_name: str = "Pain Coach",
        bot_id: int = 7_000_000_001,
        token: str | None = None,
        max_long_poll: float = 10.0,
    ):
        if spec_path is None:
            if not DEFAULT_SPEC_PATH.exists():
                raise FileNotFoundError(f"{DEFAULT_SPEC_PATH} missing: pass spec_path")
            spec_path = DEFAULT_SPEC_PATH
        self.spec = BotApiSpec.load(Path(spec_path).resolve())
        self.clock = clock
        self.token = token  # if set, other tokens get 401
        self.max_long_poll = max_long_poll
        self.bot_user: dict[str, Any] = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.deliver: Callable[[dict], Awaitable[None]] | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[ApiRequest] = []
        self.updates: list[dict[str, Any]] = []  # every update produced, in order
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.files: dict[str, StoredFile] = {}
        self.webhook_url = ""
        self.stats = FakeStats()
        self._chats: dict[int, _Chat] = {}
        self._users: dict[int, FakeUser] = {}
        self._queries: dict[str, _Query] = {}
        self._queue: list[dict[str, Any]] = []
        self._queue_changed = asyncio.Event()
        self._allowed_updates: list[str] = []
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(4_000_000_001)
        self._file_ids = itertools.count(1)
        self._faults: list[_Fault] = []
        self._rate_limit: int | None = None
        self._recent_sends: deque[float] = deque()
        self._started_at = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.api_base_url = ""

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> FakeTelegram:
        """Start serving on a free port of 127.0.0.1; sets :attr:`api_base_url`."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.api_base_url = f"http://127.0.0.1:{port}"
        self._started_at = time.monotonic()
        self._stopping.clear()
        return self

    async def stop(self) -> None:
        """Wake pending long polls and shut the server down."""
        self._stopping.set()
        self._queue_changed.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- test API

    def user(
        self,
        user_id: int = 1001,
        first_name: str = "Ana",
        language_code: str | None = "es",
        *,
        last_name: str | None = None,
        username: str | None = None,
    ) -> FakeUser:
        """The user with ``user_id`` (created on first use); its private chat is known."""
        if user_id not in self._users:
            user = FakeUser(self, user_id, first_name, language_code, last_name, username)
            self._users[user_id] = user
            info = {"id": user_id, "type": "private", "first_name": first_name}
            if last_name:
                info["last_name"] = last_name
            if username:
                info["username"] = username
            user.chat = self._chats[user_id] = _Chat(info)
        return self._users[user_id]

    def group(
        self, chat_id: int = -100123, title: str = "Group", *, username: str | None = None
    ) -> FakeGroup:
        """A supergroup the bot is a member of."""
        if chat_id not in self._chats:
            info: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": title}
            if username:
                info["username"] = username
            self._chats[chat_id] = _Chat(info)
        return FakeGroup(self, self._chats[chat_id])

    def chat_messages(self, chat_id: int) -> list[FakeMessage]:
        """The bot's current messages in any known chat."""
        return self._chats[chat_id].bot_messages()

    def calls_of(self, method: str) -> list[dict[str, Any]]:
        """Params of every successful call of ``method``."""
        return [params for name, params in self.calls if name == method]

    @property
    def errors(self) -> list[ApiRequest]:
        """Requests that got an error answer (handy: ``assert not fake.errors``)."""
        return [r for r in self.requests if r.status != 200]

    @property
    def unanswered_callback_queries(self) -> list[str]:
        return [qid for qid, q in self._queries.items() if not q.answered]

    def inject(
        self,
        method: str | None,
        *,
        status: int,
        retry_after: int | None = None,
        times: int = 1,
        delay: float = 0.0,
        description: str | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (None = any) fail with ``status``.

        ``status=200`` with a ``delay`` only slows calls down (to provoke client time-outs).
        """
        self._faults.append(_Fault(method, status, retry_after, times, delay, description))

    def rate_limit(self, per_second: int | None) -> None:
        """Answer 429 (retry_after 1) to sends above ``per_second`` in any 1 s window."""
        self._rate_limit = per_second
        self._recent_sends.clear()

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
        interval: float = 0.01,
    ) -> None:
        """Poll ``predicate`` until it is true; raise TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            await asyncio.sleep(interval)

    async def emit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send an update (``{"message": ...}`` etc.) to the bot; returns it with its id."""
        update = {"update_id": next(self._update_ids), **payload}
        self.updates.append(update)
        if self.deliver is not None:
            await self.deliver(update)
        else:
            self._queue.append(update)
            self._queue_changed.set()
        return update

    # ----------------------------------------------------------------- HTTP layer

    async def _handle_api(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        params: dict[str, Any] = {}
        try:
            if not _TOKEN_RE.fullmatch(token):
                raise ApiError(404, "Not Found")
            if self.token is not None and token != self.token:
                raise ApiError(401, "Unauthorized")
            raw, files = await self._read_params(request)
            params = dict(raw, **files)
            try:
                result = await self._call(method, raw, files)
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                # Malformed nested objects (or a gap in the fake): answer, don't crash.
                log.exception("fake telegram could not handle %s", method)
                raise _bad(f"can't handle request: {exc!r}") from exc
        except ApiError as err:
            if err.status == 429:
                self.stats.too_many_requests += 1
            self.requests.append(ApiRequest(method, params, err.status, err.description))
            log.info("fake telegram: %s -> %s %s", method, err.status, err.description)
            return web.json_response(err.body(), status=err.status)
        return web.json_response({"ok": True, "result": result})

    async def _read_params(self, request: web.Request) -> tuple[dict, dict]:
        raw: dict[str, Any] = dict(request.query)
        files: dict[str, UploadedFile] = {}
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON body") from None
            if not isinstance(body, dict):
                raise _bad("JSON body must be an object")
            raw.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[key] = UploadedFile(value.filename, value.content_type, value.file.read())
                else:
                    raw[key] = value
        return raw, files

    async def _call(self, method: str, raw: dict, files: dict) -> Any:
        """Faults, validation, rate limit, then the method implementation."""
        fault = next((f for f in self._faults if f.method in (None, method)), None)
        if fault is not None:
            fault.times -= 1
            if fault.times <= 0:
                self._faults.remove(fault)
            if fault.delay:
                await self._sleep(fault.delay)
            if fault.status != 200:
                raise self._fault_error(fault)
        params = self.spec.decode(method, raw, files)
        outgoing = _is_outgoing_message(method)
        if outgoing:
            self._check_rate_limit()
        handler = getattr(self, f"_api_{method}", None)
        result = handler(params) if handler else self._api_other(method, params)
        if inspect.isawaitable(result):
            result = await result
        if outgoing:
            now = time.monotonic()
            self._recent_sends.append(now)
            second = int(now - self._started_at)
            self.stats.sends_per_second[second] = self.stats.sends_per_second.get(second, 0) + 1
        self.calls.append((method, params))
        self.requests.append(ApiRequest(method, params, 200))
        return result

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but give up at once (with a 500) when the server stops."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise ApiError(500, "Internal Server Error: server stopping")

    @staticmethod
    def _fault_error(fault: _Fault) -> ApiError:
        if fault.status == 429:
            retry = fault.retry_after if fault.retry_after is not None else 1
            return ApiError(
                429,
                fault.description or f"Too Many Requests: retry after {retry}",
                {"retry_after": retry},
            )
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Error"
        text = f"{phrase}: injected fault" if fault.status < 500 else phrase
        return ApiError(fault.status, fault.description or text)

    def _check_rate_limit(self) -> None:
        if self._rate_limit is None:
            return
        now = time.monotonic()
        while self._recent_sends and self._recent_sends[0] <= now - 1.0:
            self._recent_sends.popleft()
        if len(self._recent_sends) >= self._rate_limit:
            raise ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})

    async def _handle_file(self, request: web.Request) -> web.Response:
        path = request.match_info["file_path"]
        for stored in self.files.values():
            if stored.file_path == path and stored.data is not None:
                return web.Response(
                    body=stored.data, content_type=stored.mime_type or "application/octet-stream"
                )
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    # ----------------------------------------------------------------- helpers

    def _now(self) -> int:
        return int(self.clock())

    def _chat(self, chat_id: Any, *, check_blocked: bool = True) -> _Chat:
        """The target chat of a call; 400 if unknown, 403 if the user blocked the bot."""
        chat = None
        if isinstance(chat_id, int):
            chat = self._chats.get(chat_id)
        elif isinstance(chat_id, str) and chat_id.startswith("@"):
            chat = next(
                (
                    c
                    for c in self._chats.values()
                    if c.info.get("username", "").lower() == chat_id[1:].lower()
                ),
                None,
            )
        if chat is None:
            raise _bad("chat not found")
        if check_blocked and chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _format(
        self, text: str | None, parse_mode: str | None, entities: Any, limit: int, what: str
    ) -> tuple[str, list[dict]]:
        """Parse text/caption like Telegram and enforce its length limit."""
        text = text or ""
        mode = (parse_mode or "").lower()
        if mode not in ("", "html", "markdown", "markdownv2"):
            raise _bad(f"unsupported parse_mode {parse_mode}")
        if entities is not None:
            parsed = list(entities)
        elif mode == "html":
            try:
                text, parsed = parse_html(text)
            except HtmlParseError as err:
                raise _bad(f"can't parse entities: {err}") from None
        else:
            parsed = []  # Markdown modes are accepted unparsed
        text, parsed = _strip_text(text, parsed)
        if utf16_len(text) > limit:
            raise _bad("message is too long" if what == "text" else "message caption is too long")
        return text, parsed

    def _check_markup(self, markup: Any, *, inline_only: bool = False) -> None:
        """Reject reply markup Telegram would reject."""
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            self._check_inline_keyboard(markup["inline_keyboard"])
        elif inline_only:
            raise _bad("inline keyboard expected")
        elif "keyboard" in markup:
            rows = markup["keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise _bad('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
            for row in rows:
                for button in row:
                    label = (
                        button
                        if isinstance(button, str)
                        else (button.get("text") if isinstance(button, dict) else None)
                    )
                    if not isinstance(label, str) or not label:
                        raise _bad("keyboard button text must be a non-empty String")
        elif markup.get("remove_keyboard") is not True and markup.get("force_reply") is not True:
            raise _bad("can't parse reply keyboard markup JSON object")

    def _check_inline_keyboard(self, rows: Any) -> None:
        known_fields = {f["name"] for f in self.spec.types["InlineKeyboardButton"]["fields"]}
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad(
                'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
            )
        if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
            raise _bad("reply markup is too long")
        for row in rows:
            for button in row:
                if not isinstance(button, dict):
                    raise _bad(
                        "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                    )
                unknown = set(button) - known_fields
                if unknown:
                    raise _bad(
                        f"can't parse inline keyboard button: unknown field {sorted(unknown)[0]}"
                    )
                if not isinstance(button.get("text"), str) or not button["text"]:
                    raise _bad(
                        "can't parse inline keyboard button: Text buttons are "
                        "unallowed in the inline keyboard"
                    )
                actions = [a for a in _INLINE_ACTIONS if a in button]
                if len(actions) != 1:
                    raise _bad(
                        "can't parse inline keyboard button: exactly one of the "
                        "optional fields must be used"
                    )
                data = button.get("callback_data")
                if "callback_data" in button and (
                    not isinstance(data, str)
                    or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA
                ):
                    raise _bad("BUTTON_DATA_INVALID")
                if "url" in button and not re.match(r"(https?|tg)://\S+$", str(button["url"])):
                    raise _bad("BUTTON_URL_INVALID")

    def _new_bot_message(
        self, chat: _Chat, params: dict, content: dict, file: StoredFile | None = None
    ) -> FakeMessage:
        reply = params.get("reply_parameters") or {}
        target = chat.messages.get(reply.get("message_id"))
        if reply and target is None and not reply.get("allow_sending_without_reply"):
            raise _bad("message to be replied not found")
        raw: dict[str, Any] = {
            "message_id": chat.next_message_id(),
            "from": self.bot_user,
            "chat": chat.info,
            "date": self._now(),
        }
        if target is not None:
            raw["reply_to_message"] = {
                k: v for k, v in target.raw.items() if k != "reply_to_message"
            }
        raw.update({k: v for k, v in content.items() if v not in (None, [])})
        markup = params.get("reply_markup") or {}
        if markup.get("inline_keyboard"):
            raw["reply_markup"] = markup  # only inline keyboards are part of a Message
        elif "keyboard" in markup:
            chat.reply_keyboard = markup
        elif markup.get("remove_keyboard"):
            chat.reply_keyboard = None
        source = params.get("text", params.get("caption"))
        return chat.add(
            FakeMessage(
                raw=raw,
                from_bot=True,
                parse_mode=params.get("parse_mode"),
                source_text=source,
                file=file,
                reply_keyboard=None if "inline_keyboard" in markup else markup or None,
            )
        )

    def _store_file(self, kind: str, value: Any, default_name: str | None = None) -> StoredFile:
        """Store an uploaded file, or resolve a file_id/URL the bot passed as a string."""
        data: bytes | None
        if isinstance(value, str):
            if value in self.files:
                return self.files[value]
            if not value.startswith(("http://", "https://")):
                raise _bad("wrong file identifier/HTTP URL specified")
            # A URL: real Telegram downloads it; the fake keeps no bytes.
            data, filename, mime = None, value.rsplit("/", 1)[-1] or default_name, None
        else:
            data, filename, mime = value.data, value.filename or default_name, value.content_type
        number = next(self._file_ids)
        if filename and (not mime or mime == "application/octet-stream"):
            mime = mimetypes.guess_type(filename)[0] or mime
        suffix = Path(filename).suffix if filename else ""
        prefix = {"photo": "AgAC", "document": "BQAC", "sticker": "CAAC"}.get(kind, "BAAC")
        stored = StoredFile(
            file_id=f"{prefix}{number:010d}",
            file_unique_id=f"AQAD{number:06d}",
            kind=kind,
            data=data,
            filename=filename,
            mime_type=mime,
            file_path=f"{kind}s/file_{number}{suffix}",
        )
        self.files[stored.file_id] = stored
        return stored

    @staticmethod
    def _photo_sizes(stored: StoredFile) -> list[dict[str, Any]]:
        width, height = _image_size(stored.data or b"")
        size = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": width,
            "height": height,
        }
        if stored.data is not None:
            size["file_size"] = len(stored.data)
        return [size]

    def _message_to_edit(self, params: dict) -> FakeMessage | None:
        """The bot message an edit targets; None for inline messages."""
        if params.get("inline_message_id"):
            return None
        if "chat_id" not in params or "message_id" not in params:
            raise _bad("message identifier is not specified")
        chat = self._chat(params["chat_id"])
        message = chat.messages.get(params["message_id"])
        if message is None:
            raise _bad("message to edit not found")
        if not message.from_bot:
            raise _bad("message can't be edited")
        return message

    def _apply_edit(self, message: FakeMessage, changes: dict[str, Any], params: dict) -> dict:
        """Apply an edit; 400 'message is not modified' if nothing changes."""
        markup = params.get("reply_markup")
        if markup is not None:
            self._check_markup(markup, inline_only=True)
            if not markup.get("inline_keyboard"):
                markup = None
        current = {key: message.raw.get(key) for key in changes}
        if current == changes and message.raw.get("reply_markup") == markup:
            raise _bad(NOT_MODIFIED[len("Bad Request: ") :])
        for key, value in changes.items():
            if value in (None, [], ""):
                message.raw.pop(key, None)
            else:
                message.raw[key] = value
        if markup is None:
            message.raw.pop("reply_markup", None)
        else:
            message.raw["reply_markup"] = markup
        if "parse_mode" in params:
            message.parse_mode = params["parse_mode"]
        if "text" in params or "caption" in params:
            message.source_text = params.get("text", params.get("caption"))
        message.raw["edit_date"] = self._now()
        message.edited = True
        return message.raw

    # ----------------------------------------------------------------- methods

    def _api_getMe(self, params: dict) -> dict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _api_getUpdates(self, params: dict) -> list[dict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active;"
                " use deleteWebhook to delete the webhook first",
            )
        offset = params.get("offset")
        if offset is not None and offset > 0:
            self._queue = [u for u in self._queue if u["update_id"] >= offset]
        elif offset is not None and offset < 0:
            self._queue = self._queue[offset:]
        if params.get("allowed_updates") is not None:
            self._allowed_updates = list(params["allowed_updates"])
        limit = min(max(params.get("limit", 100), 1), 100)
        deadline = time.monotonic() + min(max(params.get("timeout", 0), 0), self.max_long_poll)
        while True:
            self._queue = [u for u in self._queue if self._is_allowed(u)]
            remaining = deadline - time.monotonic()
            if self._queue or remaining <= 0 or self._stopping.is_set():
                return self._queue[:limit]
            self._queue_changed.clear()
            try:
                await asyncio.wait_for(self._queue_changed.wait(), remaining)
            except TimeoutError:
                pass

    def _is_allowed(self, update: dict) -> bool:
        kind = next(key for key in update if key != "update_id")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _NOT_DEFAULT_UPDATES

    def _api_setWebhook(self, params: dict) -> bool:
        url = params["url"]
        if url and not url.startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = url
        return True

    def _api_deleteWebhook(self, params: dict) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    def _api_getWebhookInfo(self, params: dict) -> dict:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }

    @staticmethod
    def _commands_key(params: dict) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        kind = scope.get("type", "default")
        if "chat_id" in scope:  # chat scopes are per chat: "chat:42"
            kind = f"{kind}:{scope['chat_id']}"
        return kind, params.get("language_code") or ""

    def _api_setMyCommands(self, params: dict) -> bool:
        commands = params["commands"]
        if len(commands) > 100:
            raise _bad("too many commands")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_RE.fullmatch(
                str(command.get("command", ""))
            ):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad("command description is empty or too long")
        self.commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    def _api_getMyCommands(self, params: dict) -> list[dict]:
        return self.commands.get(self._commands_key(params), [])

    def _api_deleteMyCommands(self, params: dict) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def _api_getChat(self, params: dict) -> dict:
        chat = self._chat(params["chat_id"], check_blocked=False)
        return {
            **chat.info,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _api_sendChatAction(self, params: dict) -> bool:
        self._chat(params["chat_id"])
        if params["action"] not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _api_sendMessage(self, params: dict) -> dict:
        chat = self._chat(params["chat_id"])
        text, entities = self._format(
            params["text"], params.get("parse_mode"), params.get("entities"), MAX_TEXT, "text"
        )
        if not text:
            raise _bad("message text is empty")
        if params.get("reply_markup") is not None:
            self._check_markup(params["reply_markup"])
        return self._new_bot_message(chat, params, {"text": text, "entities": entities}).raw

    def _send_media(self, params: dict, kind: str) -> dict:
        chat = self._chat(params["chat_id"])
        caption, entities = self._format(
            params.get("caption"),
            params.get("parse_mode"),
            params.get("caption_entities"),
            MAX_CAPTION,
            "caption",
        )
        if params.get("reply_markup") is not None:
            self._check_markup(params["reply_markup"])
        stored = self._store_file(kind, params[kind])
        if kind == "photo":
            media: Any = self._photo_sizes(stored)
        else:
            media = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
            for key, value in (
                ("file_name", stored.filename),
                ("mime_type", stored.mime_type),
                ("file_size", len(stored.data) if stored.data else None),
            ):
                if value is not None:
                    media[key] = value
        content = {kind: media, "caption": caption or None, "caption_entities": entities}
        return self._new_bot_message(chat, params, content, file=stored).raw

    def _api_sendPhoto(self, params: dict) -> dict:
        return self._send_media(params, "photo")

    def _api_sendDocument(self, params: dict) -> dict:
        return self._send_media(params, "document")

    def _api_editMessageText(self, params: dict) -> dict | bool:
        message = self._message_to_edit(params)
        text, entities = self._format(
            params["text"], params.get("parse_mode"), params.get("entities"), MAX_TEXT, "text"
        )
        if not text:
            raise _bad("message text is empty")
        if message is None:
            return True
        if "text" not in message.raw:
            raise _bad("there is no text in the message to edit")
        return self._apply_edit(message, {"text": text, "entities": entities or None}, params)

    def _api_editMessageCaption(self, params: dict) -> dict | bool:
        message = self._message_to_edit(params)
        caption, entities = self._format(
            params.get("caption"),
            params.get("parse_mode"),
            params.get("caption_entities"),
            MAX_CAPTION,
            "caption",
        )
        if message is None:
            return True
        if message.file is None:
            raise _bad("there is no caption in the message to edit")
        changes = {"caption": caption or None, "caption_entities": entities or None}
        return self._apply_edit(message, changes, params)

    def _api_editMessageReplyMarkup(self, params: dict) -> dict | bool:
        message = self._message_to_edit(params)
        if message is None:
            return True
        return self._apply_edit(message, {}, params)

    def _api_deleteMessage(self, params: dict) -> bool:
        chat = self._chat(params["chat_id"])
        message = chat.messages.pop(params["message_id"], None)
        if message is None:
            raise _bad("message to delete not found")
        message.deleted = True
        return True

    def _api_getFile(self, params: dict) -> dict:
        stored = self.files.get(params["file_id"])
        if stored is None:
            raise _bad("invalid file_id")
        return stored.as_file()

    def _api_answerCallbackQuery(self, params: dict) -> bool:
        query = self._queries.get(params["callback_query_id"])
        if query is None or query.answered:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = params.get("text")
        if text is not None and len(text) > MAX_ANSWER_TEXT:
            raise _bad("MESSAGE_TOO_LONG")
        query.answered = True
        query.user.answers.append(text)
        if text:
            style = "alert" if params.get("show_alert") else "toast"
            query.chat.log.append(f"({style}: {text})")
        return True

    def _api_other(self, method: str, params: dict) -> Any:
        """Any other valid method: a minimal plausible result, recorded in :attr:`calls`."""
        returns = self.spec.returns(method)
        chat = self._chat(params["chat_id"]) if "chat_id" in params else None
        if params.get("reply_markup") is not None:
            self._check_markup(params["reply_markup"])
        if chat is not None and returns == ["Message"]:
            caption = params.get("caption")
            return self._new_bot_message(chat, params, {"caption": caption}).raw
        if chat is not None and returns == ["Array of Message"]:
            items = params.get("media") or []
            return [
                self._new_bot_message(chat, {}, {"caption": m.get("caption")}).raw for m in items
            ]
        if chat is not None and returns == ["MessageId"]:
            return {"message_id": chat.next_message_id()}
        return True


# --------------------------------------------------------------------------- users


class _ChatView:
    """What a test sees of one chat (shared by users' private chats and groups)."""

    chat: _Chat

    @property
    def messages(self) -> list[FakeMessage]:
        """The bot's messages in this chat, current state, deleted ones removed."""
        return self.chat.bot_messages()

    @property
    def last(self) -> FakeMessage | None:
        """The newest bot message, or None."""
        messages = self.messages
        return messages[-1] if messages else None

    @property
    def keyboard(self) -> list[list[str]]:
        """Labels of the reply keyboard currently shown (until removed), row by row."""
        return _keyboard_labels(self.chat.reply_keyboard)

    def transcript(self) -> str:
        """Readable chat log: user lines start with "> ", buttons look like [Agree]."""
        return self.chat.transcript()


class FakeGroup(_ChatView):
    """A supergroup; users post into it with ``user.send(text, chat=group)``."""

    def __init__(self, fake: FakeTelegram, chat: _Chat):
        self.fake = fake
        self.chat = chat

    @property
    def chat_id(self) -> int:
        return self.chat.id

    @property
    def title(self) -> str:
        return self.chat.info["title"]


class FakeUser(_ChatView):
    """A Telegram user who talks to the bot; every action produces a real update."""

    def __init__(
        self,
        fake: FakeTelegram,
        user_id: int,
        first_name: str,
        language_code: str | None,
        last_name: str | None,
        username: str | None,
    ):
        self.fake = fake
        self.id = user_id
        self.first_name = first_name
        self.language_code = language_code
        self.last_name = last_name
        self.username = username
        self.answers: list[str | None] = []
        self.chat: _Chat  # set by FakeTelegram.user()

    @property
    def chat_id(self) -> int:
        return self.id

    @property
    def blocked(self) -> bool:
        return self.chat.blocked

    @property
    def info(self) -> dict[str, Any]:
        """This user as a Telegram ``User`` object."""
        info: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key):
                info[key] = getattr(self, key)
        return info

    def _target(self, chat: FakeGroup | None) -> _Chat:
        target = chat.chat if chat is not None else self.chat
        if target.blocked:
            raise RuntimeError(f"user {self.id} blocked the bot; call unblock() first")
        return target

    async def _post(
        self, chat: FakeGroup | None, content: dict[str, Any], file: StoredFile | None = None
    ) -> dict[str, Any]:
        target = self._target(chat)
        raw = {
            "message_id": target.next_message_id(),
            "from": self.info,
            "chat": target.info,
            "date": self.fake._now(),
            **content,
        }
        target.add(FakeMessage(raw=raw, from_bot=False, file=file))
        await self.fake.emit({"message": raw})
        return raw

    async def send(self, text: str, *, chat: FakeGroup | None = None) -> dict[str, Any]:
        """Send a text message (commands get a bot_command entity); returns the Message."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0] if text.strip() else text
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
            ]
        return await self._post(chat, content)

    async def send_photo(
        self, data: bytes = TINY_PNG, *, caption: str | None = None, chat: FakeGroup | None = None
    ) -> dict[str, Any]:
        """Send a photo (downloadable by the bot through getFile)."""
        stored = self.fake._store_file("photo", UploadedFile("photo.png", "image/png", data))
        content: dict[str, Any] = {"photo": self.fake._photo_sizes(stored)}
        if caption:
            content["caption"] = caption
        return await self._post(chat, content, stored)

    async def send_sticker(
        self, emoji: str = "👍", *, chat: FakeGroup | None = None
    ) -> dict[str, Any]:
        """Send a sticker."""
        stored = self.fake._store_file(
            "sticker", UploadedFile("sticker.webp", "image/webp", b"RIFF\x00\x00\x00\x00WEBP")
        )
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return await self._post(chat, {"sticker": sticker})

    async def send_location(
        self, latitude: float, longitude: float, *, chat: FakeGroup | None = None
    ) -> dict[str, Any]:
        """Share a location."""
        return await self._post(chat, {"location": {"latitude": latitude, "longitude": longitude}})

    async def edit(
        self, message_id: int, text: str, *, chat: FakeGroup | None = None
    ) -> dict[str, Any]:
        """Edit one of this user's text messages (an ``edited_message`` update)."""
        target = self._target(chat)
        message = target.messages.get(message_id)
        if message is None or message.from_bot or "text" not in message.raw:
            raise LookupError(f"no text message {message_id} of user {self.id} to edit")
        message.raw.update(text=text, edit_date=self.fake._now())
        message.edited = True
        await self.fake.emit({"edited_message": dict(message.raw)})
        return message.raw

    async def press(
        self,
        text: str | None = None,
        *,
        callback_data: str | None = None,
        message_id: int | None = None,
        chat: FakeGroup | None = None,
    ) -> str:
        """Press an inline button; returns the callback query id.

        ``text`` finds the newest bot message having a button with that exact label
        (or the message ``message_id``). ``callback_data`` forges the data sent.
        """
        target = self._target(chat)
        if text is None and callback_data is None:
            raise ValueError("press() needs a button label or callback_data")
        candidates = target.bot_messages()[::-1]
        if message_id is not None:
            candidates = [m for m in candidates if m.message_id == message_id]
            if not candidates:
                raise LookupError(f"no bot message {message_id} in chat {target.id}")
        message, data = None, callback_data
        if text is None:
            message = candidates[0] if candidates else None
        else:
            for candidate in candidates:
                if any(text in row for row in candidate.buttons):
                    message = candidate
                    break
            if message is not None and data is None:
                data = message.button_data(text)
        if message is None:
            shown = [m.buttons for m in candidates[:3]]
            raise LookupError(
                f"no inline button {text!r} in chat {target.id}; newest keyboards: {shown}"
            )
        query_id = str(next(self.fake._query_ids))
        self.fake._queries[query_id] = _Query(self, target)
        target.log.append(f"> (pressed [{text}])" if text else f"> (pressed data {data!r})")
        await self.fake.emit(
            {
                "callback_query": {
                    "id": query_id,
                    "from": self.info,
                    "chat_instance": f"ci{target.id}",
                    "data": data,
                    "message": dict(message.raw),
                }
            }
        )
        return query_id

    async def _member_update(self, old: str, new: str) -> dict[str, Any]:
        def member(status: str) -> dict[str, Any]:
            result = {"status": status, "user": self.fake.bot_user}
            if status == "kicked":
                result["until_date"] = 0
            return result

        return await self.fake.emit(
            {
                "my_chat_member": {
                    "chat": self.chat.info,
                    "from": self.info,
                    "date": self.fake._now(),
                    "old_chat_member": member(old),
                    "new_chat_member": member(new),
                }
            }
        )

    async def block(self) -> dict[str, Any]:
        """Block the bot: sends now get 403 and a ``my_chat_member`` update is delivered."""
        self.chat.blocked = True
        self.chat.log.append("> (blocked the bot)")
        return await self._member_update("member", "kicked")

    async def unblock(self) -> dict[str, Any]:
        """Unblock the bot (``my_chat_member`` kicked -> member)."""
        self.chat.blocked = False
        self.chat.log.append("> (unblocked the bot)")
        return await self._member_update("kicked", "member")
