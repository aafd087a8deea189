"""Client-facing texts of the hosted form, in Russian and English."""

from __future__ import annotations

from typing import Literal

Lang = Literal["ru", "en"]
LANGS: tuple[Lang, ...] = ("ru", "en")

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "submit": "Отправить",
        "required_mark": "обязательное поле",
        "attachments": "Файлы",
        "attachments_hint": "До {count} файлов, каждый не больше {size} МБ",
        "errors_title": "Проверьте форму",
        "required": "Заполните это поле",
        "invalid_email": "Укажите адрес электронной почты, например ivan@example.ru",
        "invalid_phone": "Укажите номер телефона, например +7 912 345-67-89",
        "too_long": "Слишком длинное значение",
        "contact_required_email_or_phone": "Укажите электронную почту или телефон",
        "contact_required_email": "Укажите электронную почту",
        "contact_required_phone": "Укажите телефон",
        "too_fast": "Форма отправлена слишком быстро. Проверьте данные и отправьте ещё раз.",
        "expired": "Страница устарела. Проверьте данные и отправьте форму ещё раз.",
        "too_many_files": "Слишком много файлов",
        "file_too_large": "Файл «{name}» больше {size} МБ",
        "thanks_title": "Заявка принята",
        "request_number": "Номер заявки",
        "back": "Вернуться к форме",
        "language": "Язык",
        "other_language": "English",
        "rate_limited": "Слишком много отправок. Попробуйте через минуту.",
        "invalid_option": "Выберите значение из списка",
        "consent_required": "Подтвердите согласие на обработку персональных данных",
    },
    "en": {
        "submit": "Send",
        "required_mark": "required",
        "attachments": "Files",
        "attachments_hint": "Up to {count} files, {size} MB each at most",
        "errors_title": "Please check the form",
        "required": "Please fill in this field",
        "invalid_email": "Enter an email address, e.g. john@example.com",
        "invalid_phone": "Enter a phone number, e.g. +7 912 345-67-89",
        "too_long": "This value is too long",
        "contact_required_email_or_phone": "Enter an email address or a phone number",
        "contact_required_email": "Enter an email address",
        "contact_required_phone": "Enter a phone number",
        "too_fast": "The form was sent too quickly. Please check it and send it again.",
        "expired": "This page has expired. Please check the form and send it again.",
        "too_many_files": "Too many files",
        "file_too_large": "File “{name}” is larger than {size} MB",
        "thanks_title": "Request received",
        "request_number": "Request number",
        "back": "Back to the form",
        "language": "Language",
        "other_language": "Русский",
        "rate_limited": "Too many submissions. Please try again in a minute.",
        "invalid_option": "Choose one of the options",
        "consent_required": "Please confirm your consent to the processing of personal data",
    },
}


def text(lang: str, code: str, **values: object) -> str:
    table = TEXTS.get(lang, TEXTS["ru"])
    template = table.get(code) or TEXTS["en"].get(code) or code
    return template.format(**values) if values else template


def pick_language(requested: str | None, accept_language: str | None, default: Lang) -> Lang:
    """The page's language: ?lang= first, then the browser's preference, then the form's."""
    if requested in LANGS:
        return requested
    if accept_language:
        for part in accept_language.split(","):
            tag = part.split(";")[0].strip().lower()[:2]
            if tag in LANGS:
                return tag
    return default
