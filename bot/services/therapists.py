"""The therapist role, invite codes and patients' consent links.

The role is granted and removed by an operator, never by typing. A therapist reads a
patient's data only through a link the patient confirmed and has not revoked
(``ACTIVE_LINK``): every query about a therapist's patients goes through it.

Invite codes carry 192 bits of randomness (``secrets.token_urlsafe(24)``: 32 characters of
a deep link's alphabet, under Telegram's 64-character payload limit); only their SHA-256 is
stored, so a leaked table links no one.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import InviteCode, Therapist, TherapistLink, User
from bot.services import patients

INVITE_TTL = timedelta(days=14)
CODE_BYTES = 24  # token_urlsafe(24) -> 32 characters
CODE_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")
NAME_MAX = 64  # Telegram's limit for a first name

ACTIVE_LINK = (TherapistLink.consented_at.is_not(None), TherapistLink.revoked_at.is_(None))


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def is_code_shaped(payload: str) -> bool:
    """Whether a deep-link payload could be one of our codes at all."""
    return CODE_SHAPE.fullmatch(payload) is not None


def clip_name(name: str | None) -> str | None:
    return (name or "").strip()[:NAME_MAX] or None


# ---------------------------------------------------------------------------------------------
# The role
# ---------------------------------------------------------------------------------------------


async def grant(session: AsyncSession, telegram_id: int) -> bool:
    """Make this Telegram user a therapist; False if they already were."""
    user, _ = await patients.ensure_user(session, telegram_id, None)
    if await session.scalar(select(Therapist.id).where(Therapist.user_id == user.id)):
        return False
    session.add(Therapist(user_id=user.id))
    await session.flush()
    return True


async def revoke(session: AsyncSession, telegram_id: int) -> bool:
    """Remove the role (and with it every link and invite of that therapist)."""
    user = await patients.get_user(session, telegram_id)
    if user is None:
        return False
    therapist_id = await session.scalar(select(Therapist.id).where(Therapist.user_id == user.id))
    if therapist_id is None:
        return False
    linked = list(
        await session.scalars(
            select(TherapistLink.patient_id).where(TherapistLink.therapist_id == therapist_id)
        )
    )
    await session.execute(delete(Therapist).where(Therapist.id == therapist_id))
    await forget_names(session, linked)
    return True


async def is_therapist(session: AsyncSession, user_id: int) -> bool:
    return await get_therapist(session, user_id) is not None


async def get_therapist(session: AsyncSession, user_id: int) -> Therapist | None:
    return await session.scalar(select(Therapist).where(Therapist.user_id == user_id))


def set_display_name(therapist: Therapist, first_name: str | None) -> None:
    """The name patients see when asked to share (the therapist's Telegram first name)."""
    if name := clip_name(first_name):
        therapist.display_name = name


# ---------------------------------------------------------------------------------------------
# Invites
# ---------------------------------------------------------------------------------------------


async def create_invite(
    session: AsyncSession,
    therapist: Therapist,
    now: datetime,
    *,
    multi: bool = False,
    ttl: timedelta = INVITE_TTL,
) -> tuple[str, InviteCode]:
    """A new code (returned once, never stored) and its row."""
    code = new_code()
    row = InviteCode(
        therapist_id=therapist.id,
        code_hash=hash_code(code),
        multi_use=multi,
        uses=0,
        expires_at=now + ttl,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return code, row


async def revoke_invites(
    session: AsyncSession, therapist: Therapist, now: datetime, code: str | None = None
) -> int:
    """End the therapist's usable codes (or the one ``code``); how many were ended."""
    stmt = update(InviteCode).where(
        InviteCode.therapist_id == therapist.id,
        InviteCode.revoked_at.is_(None),
        InviteCode.expires_at > now,
        or_(InviteCode.multi_use, InviteCode.uses == 0),
    )
    if code is not None:
        stmt = stmt.where(InviteCode.code_hash == hash_code(code))
    result = await session.execute(
        stmt.values(revoked_at=now).execution_options(synchronize_session=False)
    )
    return result.rowcount


class InviteStatus(StrEnum):
    OK = "ok"
    MALFORMED = "malformed"  # not shaped like a code at all
    INVALID = "invalid"  # no such code (mistyped, guessed)
    EXPIRED = "expired"
    REVOKED = "revoked"
    USED = "used"  # a single-use code another patient already confirmed
    OWN = "own"  # the therapist opened their own link
    LINKED = "linked"  # this patient already shares with this therapist
    STALE = "stale"  # a confirmation button that no longer applies


@dataclass(frozen=True)
class InviteCheck:
    status: InviteStatus
    therapist_name: str | None = None
    link_id: int | None = None


async def _check(
    session: AsyncSession, code_hash: str, patient_id: int | None, now: datetime
) -> tuple[InviteStatus, InviteCode | None, Therapist | None]:
    found = (
        await session.execute(
            select(InviteCode, Therapist)
            .join(Therapist, Therapist.id == InviteCode.therapist_id)
            .where(InviteCode.code_hash == code_hash)
        )
    ).first()
    if found is None:
        return InviteStatus.INVALID, None, None
    invite, therapist = found
    if invite.revoked_at is not None:
        status = InviteStatus.REVOKED
    elif invite.expires_at <= now:
        status = InviteStatus.EXPIRED
    elif not invite.multi_use and invite.uses >= 1:
        status = InviteStatus.USED
    elif patient_id is not None and therapist.user_id == patient_id:
        status = InviteStatus.OWN
    elif patient_id is not None and await has_active_link(session, therapist.id, patient_id):
        status = InviteStatus.LINKED
    else:
        status = InviteStatus.OK
    return status, invite, therapist


async def has_active_link(session: AsyncSession, therapist_id: int, patient_id: int) -> bool:
    """Whether the patient confirmed this therapist and has not revoked (every read of a
    patient by a therapist is checked here first)."""
    return bool(
        await session.scalar(
            select(
                exists().where(
                    TherapistLink.therapist_id == therapist_id,
                    TherapistLink.patient_id == patient_id,
                    *ACTIVE_LINK,
                )
            )
        )
    )


async def preview_invite(
    session: AsyncSession, payload: str, patient_id: int | None, now: datetime
) -> InviteCheck:
    """What opening ``payload`` would do, writing nothing (before the patient's consent)."""
    if not is_code_shaped(payload):
        return InviteCheck(InviteStatus.MALFORMED)
    status, _, therapist = await _check(session, hash_code(payload), patient_id, now)
    return InviteCheck(status, therapist.display_name if therapist else None)


async def open_payload(
    session: AsyncSession, payload: str, patient: User, now: datetime
) -> InviteCheck:
    """``open_invite`` for a deep-link payload as the patient sent it."""
    if not is_code_shaped(payload):
        return InviteCheck(InviteStatus.MALFORMED)
    return await open_invite(session, hash_code(payload), patient, now)


async def open_invite(
    session: AsyncSession, code_hash: str, patient: User, now: datetime
) -> InviteCheck:
    """A valid code opened by a consented patient becomes a pending link awaiting their answer."""
    # The code is not used up here: only the patient's confirmation counts (confirm_link).
    status, invite, therapist = await _check(session, code_hash, patient.id, now)
    name = therapist.display_name if therapist else None
    if status is not InviteStatus.OK:
        return InviteCheck(status, name)
    link = await session.scalar(
        select(TherapistLink).where(
            TherapistLink.therapist_id == therapist.id, TherapistLink.patient_id == patient.id
        )
    )
    if link is None:
        link = TherapistLink(therapist_id=therapist.id, patient_id=patient.id)
        session.add(link)
    # A revoked or earlier pending link is asked again from scratch.
    link.invite_id = invite.id
    link.requested_at = now
    link.consented_at = None
    link.revoked_at = None
    await session.flush()
    return InviteCheck(InviteStatus.OK, name, link.id)


# ---------------------------------------------------------------------------------------------
# The patient's answers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Confirmed:
    status: InviteStatus
    therapist_name: str | None = None
    therapist_telegram_id: int | None = None
    therapist_language: str | None = None


async def confirm_link(
    session: AsyncSession, link_id: int, patient: User, first_name: str | None, now: datetime
) -> Confirmed:
    """The patient agreed: the code is used up (once, if single-use) and the link is active."""
    found = (
        await session.execute(
            select(TherapistLink, Therapist, User)
            .join(Therapist, Therapist.id == TherapistLink.therapist_id)
            .join(User, User.id == Therapist.user_id)
            .where(TherapistLink.id == link_id, TherapistLink.patient_id == patient.id)
            .with_for_update(of=TherapistLink)
        )
    ).first()
    if found is None or found[0].revoked_at is not None:
        return Confirmed(InviteStatus.STALE)
    link, therapist, therapist_user = found
    if link.consented_at is not None:
        return Confirmed(InviteStatus.LINKED, therapist.display_name)
    # One conditional UPDATE decides between two patients confirming one single-use code.
    used = await session.execute(
        update(InviteCode)
        .where(
            InviteCode.id == link.invite_id,
            InviteCode.revoked_at.is_(None),
            InviteCode.expires_at > now,
            or_(InviteCode.multi_use, InviteCode.uses == 0),
        )
        .values(uses=InviteCode.uses + 1)
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:
        status = await _why_unusable(session, link.invite_id, now)
        await session.delete(link)
        return Confirmed(status, therapist.display_name)
    link.consented_at = now
    patient.display_name = clip_name(first_name)
    await session.flush()
    return Confirmed(
        InviteStatus.OK, therapist.display_name, therapist_user.telegram_id, therapist_user.language
    )


async def _why_unusable(
    session: AsyncSession, invite_id: int | None, now: datetime
) -> InviteStatus:
    invite = await session.get(InviteCode, invite_id, populate_existing=True) if invite_id else None
    if invite is None or invite.revoked_at is not None:
        return InviteStatus.REVOKED
    if invite.expires_at <= now:
        return InviteStatus.EXPIRED
    return InviteStatus.USED


@dataclass(frozen=True)
class Ended:
    therapist_name: str | None


async def decline_link(session: AsyncSession, link_id: int, patient: User) -> Ended | None:
    """The patient said no: the pending link is deleted; None if there was none to answer."""
    found = (
        await session.execute(
            select(TherapistLink, Therapist.display_name)
            .join(Therapist, Therapist.id == TherapistLink.therapist_id)
            .where(
                TherapistLink.id == link_id,
                TherapistLink.patient_id == patient.id,
                TherapistLink.consented_at.is_(None),
                TherapistLink.revoked_at.is_(None),
            )
        )
    ).first()
    if found is None:
        return None
    await session.delete(found[0])
    await session.flush()
    return Ended(found[1])


async def revoke_link(
    session: AsyncSession, link_id: int, patient: User, now: datetime
) -> Ended | None:
    """The patient stops sharing, at once; None if this link was not theirs or not active."""
    therapist_id = await session.scalar(
        update(TherapistLink)
        .where(TherapistLink.id == link_id, TherapistLink.patient_id == patient.id, *ACTIVE_LINK)
        .values(revoked_at=now)
        .returning(TherapistLink.therapist_id)
        .execution_options(synchronize_session=False)
    )
    if therapist_id is None:
        return None
    await forget_names(session, [patient.id])
    return Ended(
        await session.scalar(select(Therapist.display_name).where(Therapist.id == therapist_id))
    )


async def linked_patient_ids(session: AsyncSession, therapist_user_id: int) -> list[int]:
    """Every patient linked (in any state) to the therapist role of this user."""
    return list(
        await session.scalars(
            select(TherapistLink.patient_id)
            .join(Therapist, Therapist.id == TherapistLink.therapist_id)
            .where(Therapist.user_id == therapist_user_id)
        )
    )


async def forget_names(session: AsyncSession, patient_ids: list[int]) -> None:
    """A patient's first name is kept only while some therapist may see it."""
    if not patient_ids:
        return
    still_shared = select(TherapistLink.patient_id).where(*ACTIVE_LINK)
    await session.execute(
        update(User)
        .where(User.id.in_(patient_ids), User.id.not_in(still_shared))
        .values(display_name=None)
        .execution_options(synchronize_session="fetch")
    )


# ---------------------------------------------------------------------------------------------
# Who sees whom
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedWith:
    link_id: int
    therapist_name: str | None
    since: datetime


async def shared_with(session: AsyncSession, patient: User) -> list[SharedWith]:
    """The therapists who can see this patient's data now."""
    rows = await session.execute(
        select(TherapistLink.id, Therapist.display_name, TherapistLink.consented_at)
        .join(Therapist, Therapist.id == TherapistLink.therapist_id)
        .where(TherapistLink.patient_id == patient.id, *ACTIVE_LINK)
        .order_by(TherapistLink.consented_at, TherapistLink.id)
    )
    return [SharedWith(*row) for row in rows]


@dataclass(frozen=True)
class LinkedPatient:
    link_id: int
    name: str | None
    since: datetime


async def patients_of(session: AsyncSession, therapist: Therapist) -> list[LinkedPatient]:
    """The patients who confirmed and did not revoke, by name."""
    rows = await session.execute(
        select(TherapistLink.id, User.display_name, TherapistLink.consented_at)
        .join(User, User.id == TherapistLink.patient_id)
        .where(TherapistLink.therapist_id == therapist.id, *ACTIVE_LINK)
        .order_by(TherapistLink.consented_at, TherapistLink.id)
    )
    return sorted((LinkedPatient(*row) for row in rows), key=lambda p: (p.name or "").casefold())
