"""The data model (ARCHITECTURE.md "Data"). Every timestamp is stored in UTC.

Schema changes are Alembic migrations (``bot/db/migrations``), never ``create_all``.
Every row about a patient hangs off ``users.id`` with ``ON DELETE CASCADE``, so erasure
is one delete of the user row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite keeps no zone: we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class User(Base):
    """Anyone who talked to the bot in private: a patient, and maybe also a therapist."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    # Everything below stays empty until consent, except the conversation state.
    timezone: Mapped[str | None] = mapped_column(String(64))
    consent_at: Mapped[datetime | None]
    consent_version: Mapped[str | None] = mapped_column(String(16))
    setup_done_at: Mapped[datetime | None]
    # False once Telegram answers 403 (blocked); a my_chat_member unblock sets it back.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    paused_at: Mapped[datetime | None]
    paused_until: Mapped[date | None] = mapped_column(Date)
    # Conversation state lives here, not in memory: it survives restarts.
    conv_state: Mapped[str | None] = mapped_column(String(32))
    conv_data: Mapped[dict[str, Any] | None]
    # The Telegram first name, stored only while the patient shares with a therapist (it
    # names them in the digest); set when they confirm a link, cleared when the last one ends.
    display_name: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The habit over weeks (bot/services/habit.py). Since when, and how many prompts in a
    # row, went unanswered; cleared by any press or message.
    silent_since: Mapped[datetime | None]
    silent_prompts: Mapped[int] = mapped_column(SmallInteger, default=0)
    # None, "away" (the come-back offer was sent) or "weekly" (reminders once a week).
    absence: Mapped[str | None] = mapped_column(String(8))
    absence_prompted_at: Mapped[datetime | None]
    # The next-morning answer was "worse": the next check-in suggests a lighter version.
    lighter_next: Mapped[bool] = mapped_column(Boolean, default=False)

    @property
    def consented(self) -> bool:
        return self.consent_at is not None


class Schedule(Base):
    """One reminder time of a patient: local HH:MM on some weekdays; the next slot in UTC."""

    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedules_next_due_at", "next_due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    local_time: Mapped[str] = mapped_column(String(5))  # "HH:MM" in the patient's zone
    days: Mapped[int] = mapped_column(SmallInteger, default=0b1111111)  # bit 0 = Monday
    next_due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CheckIn(Base):
    """One exercise occasion: a prompted slot, or a session logged by the patient (/log)."""

    __tablename__ = "checkins"
    __table_args__ = (
        # Exactly one check-in per schedule slot, whatever number of dispatchers run.
        UniqueConstraint("schedule_id", "due_at", name="uq_checkins_slot"),
        Index("ix_checkins_user_created", "user_id", "created_at"),
        Index("ix_checkins_status", "status"),
        # The dispatcher looks up open check-ins past expiry and snoozes that came due.
        Index("ix_checkins_expires_at", "expires_at"),
        Index("ix_checkins_snooze_until", "snooze_until"),
        Index("ix_checkins_next_day_due_at", "next_day_due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(8), default="prompt")  # prompt | log
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime | None]
    prompted_at: Mapped[datetime | None]
    prompt_message_id: Mapped[int | None] = mapped_column(BigInteger)
    send_attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    # A dispatcher that claimed the prompt owns it until then; past it, another may resend.
    lease_until: Mapped[datetime | None]
    snooze_until: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    pain_before: Mapped[int | None] = mapped_column(SmallInteger)
    done_at: Mapped[datetime | None]
    pain_after: Mapped[int | None] = mapped_column(SmallInteger)
    effort: Mapped[str | None] = mapped_column(String(16))
    barrier: Mapped[str | None] = mapped_column(String(16))
    completed_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    next_day_response: Mapped[str | None] = mapped_column(String(8))
    # When to ask "how is your pain today compared with before yesterday's session?".
    next_day_due_at: Mapped[datetime | None]
    next_day_asked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # "Finished? Tap Done": when to nudge a session started but not finished (claimed once).
    nudge_due_at: Mapped[datetime | None] = mapped_column(index=True)
    # A started session that expired was asked "Did you do it?" at this time.
    done_asked_at: Mapped[datetime | None]


class PainScore(Base):
    """A standalone pain score (/pain), outside any check-in."""

    __tablename__ = "pain_scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    score: Mapped[int] = mapped_column(SmallInteger)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class TipShown(Base):
    """An educational message shown to a patient (no repeats until the pool is used up)."""

    __tablename__ = "tips_shown"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tip_key: Mapped[str] = mapped_column(String(64))
    shown_at: Mapped[datetime] = mapped_column(default=utcnow)


class Therapist(Base):
    """The therapist role, granted by an operator; the person is also a ``User``."""

    __tablename__ = "therapists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(128))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    digest_weekday: Mapped[int] = mapped_column(SmallInteger, default=0)  # 0 = Monday
    digest_time: Mapped[str] = mapped_column(String(5), default="08:00")
    next_digest_at: Mapped[datetime | None] = mapped_column(index=True)
    # Issue 16: when the therapist finished their own start (language, zone, digest time),
    # and the language their chat's command menu was last set in (NULL: not set yet).
    settings_done_at: Mapped[datetime | None]
    menu_language: Mapped[str | None] = mapped_column(String(8))


class InviteCode(Base):
    """A therapist's invite; only a hash of the code is stored, so a leaked table links no one."""

    __tablename__ = "invite_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    therapist_id: Mapped[int] = mapped_column(
        ForeignKey("therapists.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    multi_use: Mapped[bool] = mapped_column(Boolean, default=False)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TherapistLink(Base):
    """A patient's consent for one therapist to read their data; revocable at any time."""

    __tablename__ = "therapist_links"
    __table_args__ = (UniqueConstraint("therapist_id", "patient_id", name="uq_links_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("therapists.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    invite_id: Mapped[int | None] = mapped_column(
        ForeignKey("invite_codes.id", ondelete="SET NULL")
    )
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    consented_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class DigestSent(Base):
    """One weekly digest per therapist and ISO week: the unique key makes sending idempotent."""

    __tablename__ = "digests_sent"
    __table_args__ = (UniqueConstraint("therapist_id", "iso_week", name="uq_digests_week"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("therapists.id", ondelete="CASCADE"))
    iso_week: Mapped[str] = mapped_column(String(8))  # "2026-W47"
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    detail: Mapped[str | None] = mapped_column(Text)


class TherapistNote(Base):
    """A note between a therapist and a linked patient, either way (issue 16).

    Hangs off both people: the patient's ``users`` row and the therapist's role row (itself
    off the therapist's ``users`` row), so either side's /delete erases it.
    """

    __tablename__ = "therapist_notes"
    __table_args__ = (Index("ix_therapist_notes_pair", "therapist_id", "patient_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    therapist_id: Mapped[int] = mapped_column(ForeignKey("therapists.id", ondelete="CASCADE"))
    patient_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(10))  # "therapist" | "patient"
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Programme(Base):
    """A patient's exercise programme: chosen from a starter or set by a therapist (issue 17).

    One per patient; replaced in place. ``next_review_at`` is when the weekly pain-guided
    review claims it next (the row is the truth, as for reminders).
    """

    __tablename__ = "programmes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    origin: Mapped[str] = mapped_column(String(16), default="starter")  # starter | therapist
    starter: Mapped[str | None] = mapped_column(String(32))
    # The name of the therapist who last set it, as the patient is told (a snapshot, not a
    # key: the programme stays the patient's if the therapist's role ends).
    set_by: Mapped[str | None] = mapped_column(String(128))
    auto_progress: Mapped[bool] = mapped_column(Boolean, default=False)
    next_review_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProgrammeExercise(Base):
    """One exercise of a programme, at a level, with sets x an amount (reps, s or min)."""

    __tablename__ = "programme_exercises"
    __table_args__ = (UniqueConstraint("programme_id", "exercise", name="uq_programme_exercise"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(
        ForeignKey("programmes.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(SmallInteger, default=0)
    exercise: Mapped[str] = mapped_column(String(40))
    level: Mapped[int] = mapped_column(SmallInteger, default=1)
    sets: Mapped[int] = mapped_column(SmallInteger)
    amount: Mapped[int] = mapped_column(SmallInteger)


class ProgrammeChange(Base):
    """Every change to a programme, and every weekly proposal, with its reason (the numbers).

    ``status``: applied, or proposed (waiting for the patient or the therapist), then applied,
    declined or superseded. ``detail`` holds what changed ({"steps": [[key, [level, sets,
    amount], [level, sets, amount]], ...]} or {"exercise": key, ...}); ``reason`` the week's
    numbers that led to a proposal.
    """

    __tablename__ = "programme_changes"
    __table_args__ = (Index("ix_programme_changes_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(12), default="applied")
    by: Mapped[str] = mapped_column(String(12))  # patient | therapist | review
    by_name: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any] | None]
    reason: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(128))


class HabitEvent(Base):
    """A change in a patient's habit state: away (come-back offer sent), weekly (reminders
    once a week), returned (with how). Read by /progress and the therapist digest."""

    __tablename__ = "habit_events"
    __table_args__ = (Index("ix_habit_events_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # away | weekly | returned
    detail: Mapped[str | None] = mapped_column(String(16))  # returned: keep, fewer, later, ...
    at: Mapped[datetime] = mapped_column(default=utcnow)
