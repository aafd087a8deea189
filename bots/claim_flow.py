"""Filing a claim in the bot: reason, order or contract, description, files, phone, review.

Each step is a state of `ClaimForm`; the draft lives in the FSM data, so a restart
(or a pause of days) resumes at the same step. Anything that does not fit a step gets
the step's question again. /cancel or the cancel button drops the draft.
"""

from __future__ import annotations

import re
from typing import Any

from aiogram import Bot, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove

from bots import keyboards
from bots.filters import Data, HasFile, Private, has_file
from bots.menu import chat_of, show_menu
from bots.texts import date_text, plural, t
from bots.work import Turn
from channels.telegram.bots import BotChannel
from channels.telegram.inbound import download, media_of, own_phone
from intake.claims.service import ClaimIn, file_claim
from intake.identities import normalize_phone
from intake.schemas import AttachmentIn, IdentityIn
from storage.errors import InvalidInput
from storage.models import ChannelKind, IdentityKind

ORDER_REF = re.compile(r"^[\w\-/#. ]{1,100}$")
MIN_DESCRIPTION = 10
MAX_DESCRIPTION = 4000
STEPS = ("reason", "order", "description", "files", "phone", "review")


class ClaimForm(StatesGroup):
    reason = State()
    order = State()
    description = State()
    files = State()
    phone = State()
    review = State()
    edit = State()


async def ask(step: str, turn: Turn, state: FSMContext, chat_id: int) -> None:
    """Put the dialogue at `step` and ask its question."""
    lang = await turn.lang()
    config = turn.channel.config
    await state.set_state(getattr(ClaimForm, step))
    if step == "reason":
        text, markup = t(lang, "claim_reason"), keyboards.reasons(lang, config.reasons())
        turn.send(chat_id, text, markup)
    elif step == "order":
        turn.send(chat_id, t(lang, "claim_order"), keyboards.skip_order(lang))
    elif step == "description":
        turn.send(chat_id, t(lang, "claim_description"), keyboards.cancel(lang))
    elif step == "files":
        text = plural(lang, "claim_files", config.max_claim_files)
        turn.send(chat_id, text, keyboards.done(lang))
    elif step == "phone":
        turn.send(chat_id, t(lang, "claim_phone"), keyboards.share_phone(lang))
    else:
        await review(turn, state, chat_id)


async def review(turn: Turn, state: FSMContext, chat_id: int) -> None:
    lang = await turn.lang()
    data = await state.get_data()
    await state.set_state(ClaimForm.review)
    labels = {r.code: r.label(lang) for r in turn.channel.config.reasons()}
    files = data.get("files") or []
    text = t(
        lang,
        "claim_review",
        reason=labels.get(data.get("reason", ""), data.get("reason", "")),
        order=data.get("order") or t(lang, "not_given"),
        description=data.get("description", ""),
        files=", ".join(f["filename"] for f in files) if files else t(lang, "no_files"),
        phone=data.get("phone") or t(lang, "not_given"),
    )
    turn.send(chat_id, text, keyboards.review(lang))


async def advance(done: str, turn: Turn, state: FSMContext, chat_id: int) -> None:
    """After a step: the next one, or back to the review when a field was being edited."""
    data = await state.get_data()
    if data.get("editing"):
        await review(turn, state, chat_id)
        return
    await ask(STEPS[STEPS.index(done) + 1], turn, state, chat_id)


def _file_record(attachment: AttachmentIn) -> dict[str, Any]:
    return {
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
    }


async def _attach(
    message: Message, state: FSMContext, turn: Turn, bot: Bot, channel: BotChannel
) -> tuple[int, str | None]:
    """The message's file added to the draft: how many files the draft has then, and what
    to tell the client if the file could not be taken."""
    config = channel.config
    files = list((await state.get_data()).get("files") or [])
    if len(files) >= config.max_claim_files:
        return len(files), plural(await turn.lang(), "claim_files_full", config.max_claim_files)
    # Downloaded before the update's transaction opens (no database lock held meanwhile).
    got = await download(turn.context, bot, media_of(message), config.max_file_bytes)
    if not got.attachments:
        too_large = any(p["reason"] == "too_large" for p in got.problems)
        code = "claim_file_too_large" if too_large else "claim_file_failed"
        return len(files), t(await turn.lang(), code, size=config.max_file_bytes // (1024 * 1024))
    files += [_file_record(a) for a in got.attachments][: config.max_claim_files - len(files)]
    await state.update_data(files=files)
    return len(files), None


def claim_router() -> Router:
    router = Router(name="claim-flow")
    router.message.filter(Private())

    @router.callback_query(Data("menu:claim"))
    async def begin(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        turn.say(query.answer())
        await state.set_data({"files": []})
        await ask("reason", turn, state, chat_of(query))

    @router.callback_query(Data("claim:cancel"))
    async def cancel(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        lang = await turn.lang()
        await state.clear()
        turn.say(query.answer())
        turn.send(chat_of(query), t(lang, "cancelled"), ReplyKeyboardRemove())
        await show_menu(turn, chat_of(query))

    # 1. Reason

    @router.callback_query(StateFilter(ClaimForm.reason), Data(prefix="claim:reason:"))
    async def reason(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        turn.say(query.answer())
        code = (query.data or "").removeprefix("claim:reason:")
        if code not in {r.code for r in turn.channel.config.reasons()}:
            await ask("reason", turn, state, chat_of(query))
            return
        await state.update_data(reason=code)
        await advance("reason", turn, state, chat_of(query))

    @router.message(StateFilter(ClaimForm.reason))
    async def reason_typed(message: Message, state: FSMContext, turn: Turn) -> None:
        lang = await turn.lang()
        markup = keyboards.reasons(lang, turn.channel.config.reasons())
        turn.send(message.chat.id, t(lang, "claim_reason_invalid"), markup)

    # 2. Order or contract

    @router.callback_query(StateFilter(ClaimForm.order), Data("claim:skip"))
    async def order_skipped(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        turn.say(query.answer())
        await state.update_data(order=None)
        await advance("order", turn, state, chat_of(query))

    @router.message(StateFilter(ClaimForm.order))
    async def order(message: Message, state: FSMContext, turn: Turn) -> None:
        value = (message.text or "").strip()
        if not ORDER_REF.fullmatch(value):
            lang = await turn.lang()
            turn.say(
                message.answer(
                    t(lang, "claim_order_invalid"), reply_markup=keyboards.skip_order(lang)
                )
            )
            return
        await state.update_data(order=value)
        await advance("order", turn, state, message.chat.id)

    # 3. Description

    @router.message(StateFilter(ClaimForm.description))
    async def description(
        message: Message, state: FSMContext, turn: Turn, bot: Bot, channel: BotChannel
    ) -> None:
        # A photo's caption is its text: the caption describes, the photo is attached.
        value = (message.text or message.caption or "").replace("\x00", "").strip()
        count, problem = 0, None
        if has_file(message):
            count, problem = await _attach(message, state, turn, bot, channel)
        lang = await turn.lang()
        if problem is not None:
            turn.send(message.chat.id, problem)
        if not MIN_DESCRIPTION <= len(value) <= MAX_DESCRIPTION:
            turn.send(message.chat.id, t(lang, "claim_description_invalid"), keyboards.cancel(lang))
            return
        await state.update_data(description=value)
        if count and problem is None and not (await state.get_data()).get("editing"):
            await state.set_state(ClaimForm.files)
            text = t(lang, "claim_file_added", count=count, max=channel.config.max_claim_files)
            turn.send(message.chat.id, text, keyboards.done(lang))
            return
        await advance("description", turn, state, message.chat.id)

    # 4. Files

    @router.message(StateFilter(ClaimForm.files), HasFile())
    async def file(
        message: Message, state: FSMContext, turn: Turn, bot: Bot, channel: BotChannel
    ) -> None:
        count, problem = await _attach(message, state, turn, bot, channel)
        if problem is not None:
            turn.send(message.chat.id, problem)
            return
        lang = await turn.lang()
        text = t(lang, "claim_file_added", count=count, max=channel.config.max_claim_files)
        turn.send(message.chat.id, text, keyboards.done(lang))

    @router.callback_query(StateFilter(ClaimForm.files), Data("claim:done"))
    async def files_done(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        turn.say(query.answer())
        await advance("files", turn, state, chat_of(query))

    @router.message(StateFilter(ClaimForm.files))
    async def files_other(message: Message, turn: Turn) -> None:
        lang = await turn.lang()
        turn.send(message.chat.id, t(lang, "claim_files_invalid"), keyboards.done(lang))

    # 5. Phone

    @router.message(StateFilter(ClaimForm.phone))
    async def phone(message: Message, state: FSMContext, turn: Turn) -> None:
        lang = await turn.lang()
        region = turn.context.intake.default_region
        if message.contact is not None:
            value = own_phone(message, region)
            if value is None:
                turn.say(
                    message.answer(
                        t(lang, "claim_phone_not_own"), reply_markup=keyboards.share_phone(lang)
                    )
                )
                return
        else:
            try:
                value = normalize_phone(message.text or "", region)
            except InvalidInput:
                turn.say(
                    message.answer(
                        t(lang, "claim_phone_invalid"), reply_markup=keyboards.share_phone(lang)
                    )
                )
                return
        await state.update_data(phone=value)
        text = t(lang, "claim_phone_saved", phone=value)
        turn.send(message.chat.id, text, ReplyKeyboardRemove())
        await advance("phone", turn, state, message.chat.id)

    # Review: confirm, edit, cancel

    @router.callback_query(StateFilter(ClaimForm.review), Data("claim:confirm"))
    async def confirm(
        query: CallbackQuery, state: FSMContext, turn: Turn, channel: BotChannel
    ) -> None:
        turn.say(query.answer())
        lang = await turn.lang()
        data = await state.get_data()
        chat_id = chat_of(query)
        session = await turn.session()
        contact = await turn.contact()
        user = query.from_user
        claim = ClaimIn(
            channel_id=channel.id,
            channel_kind=ChannelKind.TELEGRAM,
            external_id=f"tg:{chat_id}:claim:{query.id}",
            reason=str(data.get("reason", "")),
            description=str(data.get("description", "")),
            identities=[IdentityIn(IdentityKind.TELEGRAM, str(user.id))],
            order_ref=data.get("order"),
            phone=data.get("phone"),
            contact_name=contact.name,
            language=lang,
            attachments=[AttachmentIn(**f) for f in data.get("files") or []],
            reasons=channel.config.reasons(),
            due_days=channel.config.claim_due_days,
            meta={"telegram": {"chat_id": chat_id, "user_id": user.id}},
        )
        try:
            async with session.begin_nested():
                filed = await file_claim(session, claim, turn.context.intake)
        except InvalidInput as exc:
            turn.send(chat_id, t(lang, "claim_failed", reason=exc.detail))
            await review(turn, state, chat_id)
            return
        await state.clear()
        number, due = filed.claim.number, filed.claim.due_at
        text = (
            t(lang, "claim_filed", number=number, due=date_text(lang, due))
            if due
            else t(lang, "claim_filed_no_due", number=number)
        )
        turn.send(chat_id, text, keyboards.menu(lang))

    @router.callback_query(StateFilter(ClaimForm.review), Data("claim:edit"))
    async def edit(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        turn.say(query.answer())
        lang = await turn.lang()
        await state.set_state(ClaimForm.edit)
        markup = keyboards.edit_fields(lang)
        turn.send(chat_of(query), t(lang, "claim_edit_which"), markup)

    @router.callback_query(StateFilter(ClaimForm.edit), Data(prefix="claim:edit:"))
    async def edit_field(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        turn.say(query.answer())
        field = (query.data or "").removeprefix("claim:edit:")
        if field not in keyboards.EDITABLE:
            await review(turn, state, chat_of(query))
            return
        await state.update_data(editing=True)
        await ask(field, turn, state, chat_of(query))

    @router.callback_query(StateFilter(ClaimForm.edit), Data("claim:review"))
    async def back_to_review(query: CallbackQuery, state: FSMContext, turn: Turn) -> None:
        turn.say(query.answer())
        await review(turn, state, chat_of(query))

    @router.message(StateFilter(ClaimForm.review))
    @router.message(StateFilter(ClaimForm.edit))
    async def review_typed(message: Message, turn: Turn) -> None:
        turn.send(message.chat.id, t(await turn.lang(), "claim_review_buttons"))

    return router
