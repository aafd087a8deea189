"""What the hub itself writes to clients by email, in Russian and English."""

from __future__ import annotations

_ACKNOWLEDGEMENT = {
    "ru": (
        "Здравствуйте!\n\n"
        "Мы получили ваше обращение «{subject}» и зарегистрировали его под номером {number}.\n"
        "Менеджер ответит вам в ближайшее рабочее время. Чтобы дополнить обращение, "
        "просто ответьте на это письмо.\n\n"
        "Это письмо отправлено автоматически."
    ),
    "en": (
        "Hello,\n\n"
        'We have received your request "{subject}" and registered it as number {number}.\n'
        "A manager will answer you within working hours. To add to your request, "
        "simply reply to this message.\n\n"
        "This message was sent automatically."
    ),
}

_NO_SUBJECT = {"ru": "без темы", "en": "no subject"}


def acknowledgement(language: str, number: int, subject: str | None) -> str:
    lang = language if language in _ACKNOWLEDGEMENT else "ru"
    return _ACKNOWLEDGEMENT[lang].format(number=number, subject=subject or _NO_SUBJECT[lang])
