"""What clients and managers read about claims, in Russian and English."""

from __future__ import annotations

LANGS = ("ru", "en")

STATUS_LABELS: dict[str, dict[str, str]] = {
    "ru": {
        "registered": "зарегистрирована",
        "in_review": "на рассмотрении",
        "investigating": "идёт проверка",
        "resolved": "решена",
        "closed": "закрыта",
        "rejected": "отклонена",
    },
    "en": {
        "registered": "registered",
        "in_review": "in review",
        "investigating": "under investigation",
        "resolved": "resolved",
        "closed": "closed",
        "rejected": "rejected",
    },
}

DEFAULT_REASONS: dict[str, dict[str, str]] = {
    "quality": {"ru": "Качество товара или услуги", "en": "Quality of goods or service"},
    "delivery": {"ru": "Доставка", "en": "Delivery"},
    "billing": {"ru": "Оплата и счета", "en": "Payment and invoices"},
    "service": {"ru": "Обслуживание", "en": "Customer service"},
    "other": {"ru": "Другое", "en": "Other"},
}

_TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "status_changed": "Статус вашей претензии {number}: {status}.",
        "resolution": "Решение: {resolution}",
        "comment": "Комментарий: {comment}",
        "ask_rating": "Оцените, пожалуйста, как решена претензия: от 1 (плохо) до 5 (отлично).",
        "filed_title": "Претензия {number}: {reason}",
        "order": "Заказ или договор",
        "description": "Описание",
        "phone": "Телефон",
        "reason": "Причина",
    },
    "en": {
        "status_changed": "Your claim {number} is now {status}.",
        "resolution": "Resolution: {resolution}",
        "comment": "Comment: {comment}",
        "ask_rating": "Please rate how the claim was resolved: from 1 (poor) to 5 (excellent).",
        "filed_title": "Claim {number}: {reason}",
        "order": "Order or contract",
        "description": "Description",
        "phone": "Phone",
        "reason": "Reason",
    },
}


def lang_of(language: str | None, default: str = "ru") -> str:
    """ru or en from an IETF tag; other languages get `default`."""
    tag = (language or "").strip().lower()
    for lang in LANGS:
        if tag == lang or tag.startswith(lang + "-") or tag.startswith(lang + "_"):
            return lang
    return default if default in LANGS else "ru"


def text(lang: str, code: str, **values: object) -> str:
    template = _TEXTS.get(lang, _TEXTS["ru"]).get(code) or _TEXTS["en"][code]
    return template.format(**values) if values else template


def status_label(lang: str, status: str) -> str:
    return STATUS_LABELS.get(lang, STATUS_LABELS["ru"]).get(status, status)


def status_notice(
    lang: str,
    number: str,
    status: str,
    *,
    resolution: str | None = None,
    comment: str | None = None,
    ask_rating: bool = False,
) -> str:
    """The message that tells a client their claim's new status."""
    lines = [text(lang, "status_changed", number=number, status=status_label(lang, status))]
    if resolution and status in ("resolved", "rejected"):
        lines.append(text(lang, "resolution", resolution=resolution))
    if comment:
        lines.append(text(lang, "comment", comment=comment))
    if ask_rating:
        lines.append("")
        lines.append(text(lang, "ask_rating"))
    return "\n".join(lines)
