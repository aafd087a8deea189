"""The client bot's buttons. Callback data: `menu:*` (`menu:start` shows the menu again),
`claim:*`, `claims:show:{id}`, and
`rate:{claim_id}:{n}` (sent with a resolved claim's notice, see channels.telegram.outbound)."""

from __future__ import annotations

from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bots.texts import t
from intake.claims.service import Reason


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def menu(lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(t(lang, "btn_ask"), "menu:ask")],
            [_button(t(lang, "btn_claim"), "menu:claim")],
            [_button(t(lang, "btn_my_claims"), "menu:claims")],
            [_button(t(lang, "btn_language"), "menu:lang")],
        ]
    )


def reasons(lang: str, catalog: list[Reason]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[_button(r.label(lang), f"claim:reason:{r.code}")] for r in catalog]
        + [_cancel_row(lang)]
    )


def skip(lang: str, data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[_button(t(lang, "btn_skip"), data)]])


def _cancel_row(lang: str) -> list[InlineKeyboardButton]:
    return [_button(t(lang, "btn_cancel"), "claim:cancel")]


def cancel(lang: str) -> InlineKeyboardMarkup:
    """A claim step's way out of the dialogue (the review has its own)."""
    return InlineKeyboardMarkup(inline_keyboard=[_cancel_row(lang)])


def skip_order(lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[_button(t(lang, "btn_skip"), "claim:skip")], _cancel_row(lang)]
    )


def done(lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[_button(t(lang, "btn_done"), "claim:done")], _cancel_row(lang)]
    )


def share_phone(lang: str) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=t(lang, "btn_share_phone"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def review(lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(t(lang, "btn_confirm"), "claim:confirm")],
            [
                _button(t(lang, "btn_edit"), "claim:edit"),
                _button(t(lang, "btn_cancel"), "claim:cancel"),
            ],
        ]
    )


EDITABLE = ("reason", "order", "description", "files", "phone")


def edit_fields(lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[_button(t(lang, f"field_{f}"), f"claim:edit:{f}")] for f in EDITABLE]
        + [[_button(t(lang, "btn_back"), "claim:review")]]
    )


def to_menu(lang: str) -> InlineKeyboardMarkup:
    """The way back from a screen that ends something."""
    return InlineKeyboardMarkup(inline_keyboard=[[_button(t(lang, "btn_menu"), "menu:start")]])


def claim_list(lang: str, items: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[_button(label, f"claims:show:{claim_id}")] for claim_id, label in items]
        + [[_button(t(lang, "btn_menu"), "menu:start")]]
    )


def claim_history(lang: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(t(lang, "btn_my_claims_back"), "menu:claims")],
            [_button(t(lang, "btn_menu"), "menu:start")],
        ]
    )
