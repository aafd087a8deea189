"""strip_quotes: the new part of a reply, in the styles of the mail clients Russian and
English-speaking clients use. Each case is a reply written the way that client writes it."""

from __future__ import annotations

import pytest

from channels.email.quotes import strip_quotes

REPLY = "Добрый день!\nСчёт получили, оплатим завтра."

QUOTED_STYLES = {
    "gmail-en": (
        "On Mon, Apr 2, 2012 at 6:26 PM, Ivan Petrov <ivan@example.ru> wrote:\n\n"
        "> Please send the invoice.\n> Thanks"
    ),
    "gmail-en-wrapped": (
        "On Mon, Apr 2, 2012 at 6:26 PM, Ivan Petrov <\nivan@example.ru> wrote:\n\n"
        "> Please send the invoice."
    ),
    "gmail-ru": "пн, 2 апр. 2012 г. в 14:20, Иван Петров <ivan@example.ru>:\n\n> Пришлите счёт.",
    "gmail-ru-wrapped": (
        "пн, 2 апр. 2012 г. в 14:20, Иван Петров <\nivan@example.ru>:\n\n> Пришлите счёт."
    ),
    "apple-mail-en": "On Apr 3, 2012, at 4:19 PM, Ivan wrote:\n\n> Please send the invoice.",
    "apple-mail-ru": (
        "2 апр. 2012 г., в 16:19, Иван <ivan@example.ru> написал(а):\n\n> Пришлите счёт."
    ),
    "thunderbird-en": "On 02.04.2012 18:27, Ivan Petrov wrote:\n> Please send the invoice.",
    "thunderbird-ru": "02.04.2012 18:27, Иван Петров пишет:\n> Пришлите счёт.",
    "android-ru": (
        '02.04.2012 14:20 пользователь "ivan@example.ru" <\nivan@example.ru> написал:\n\n'
        "> Пришлите счёт."
    ),
    "yandex": '02.04.2012, 14:20, "Иван Петров" <ivan@yandex.ru>:\n> Пришлите счёт.',
    "mail-ru": (
        "Понедельник, 2 апреля 2012, 14:20 +04:00 от Иван Петров <ivan@mail.ru>:\n> Пришлите счёт."
    ),
    "outlook-en": (
        "From: Ivan Petrov [mailto:ivan@example.ru]\nSent: Monday, April 02, 2012 2:20 PM\n"
        "To: Sales\nSubject: Invoice\n\nPlease send the invoice."
    ),
    "outlook-en-rule": (
        "________________________________\nFrom: Ivan Petrov <ivan@example.ru>\n"
        "Sent: Monday, April 2, 2012 2:20 PM\nTo: Sales\nSubject: Invoice\n\n"
        "Please send the invoice."
    ),
    "outlook-ru": (
        "От: Иван Петров [mailto:ivan@example.ru]\nОтправлено: 2 апреля 2012 г. 14:20\n"
        "Кому: Отдел продаж\nТема: Счёт\n\nПришлите счёт."
    ),
    "original-message-en": (
        "-----Original Message-----\nFrom: ivan@example.ru\nSent: Monday\n\n"
        "Please send the invoice."
    ),
    "original-message-spaced": (
        "----- Original Message -----\nFrom: ivan@example.ru\nTo: sales@example.com\n"
        "Sent: Monday, April 2, 2012 5:44 PM\nSubject: Invoice\n\nPlease send the invoice."
    ),
    "original-message-ru": (
        "-----Исходное сообщение-----\nОт: ivan@example.ru\nТема: Счёт\n\nПришлите счёт."
    ),
    "forwarded-ru": (
        "-------- Пересылаемое сообщение --------\n"
        '02.04.2012, 14:20, "Иван" <ivan@yandex.ru>:\n\nПришлите счёт.'
    ),
    "forwarded-en": (
        "---------- Forwarded message ---------\nFrom: Ivan <ivan@example.ru>\n"
        "Date: Mon, Apr 2, 2012 at 2:20 PM\nSubject: Invoice\n\nPlease send the invoice."
    ),
    "quote-marks-only": "> Пришлите счёт.\n> Спасибо.",
    "nested-quotes": "> Пришлите счёт.\n>> Когда будет счёт?\n> > > Давно",
}


@pytest.mark.parametrize("style", sorted(QUOTED_STYLES))
def test_quote_in_each_style_is_stripped(style: str) -> None:
    text = f"{REPLY}\n\n{QUOTED_STYLES[style]}"
    assert strip_quotes(text) == REPLY


@pytest.mark.parametrize("style", sorted(QUOTED_STYLES))
def test_quote_without_blank_line_before_it_is_stripped(style: str) -> None:
    text = f"{REPLY}\n{QUOTED_STYLES[style]}"
    assert strip_quotes(text) == REPLY


SIGNATURES = {
    "dash-dash-space": "-- \nИван Петров\nООО «Ромашка»\n+7 912 345-67-89",
    "dash-dash": "--\nIvan Petrov\nSales manager",
    "iphone-en": "Sent from my iPhone",
    "iphone-ru": "Отправлено с iPhone",
    "mobile-ru": "Отправлено с мобильного устройства",
    "yandex-app": "Отправлено из мобильного приложения Яндекс.Почты",
    "outlook-mobile": "Get Outlook for Android",
    "regards-ru": "С уважением,\nИван Петров\nменеджер по закупкам\nООО «Ромашка»",
    "regards-ru-one-line": "С уважением, Иван Петров",
    "regards-en": "Best regards,\nIvan Petrov",
}


@pytest.mark.parametrize("style", sorted(SIGNATURES))
def test_signature_is_stripped(style: str) -> None:
    assert strip_quotes(f"{REPLY}\n\n{SIGNATURES[style]}") == REPLY


@pytest.mark.parametrize("style", sorted(SIGNATURES))
def test_signature_before_quote_is_stripped(style: str) -> None:
    text = f"{REPLY}\n\n{SIGNATURES[style]}\n\n{QUOTED_STYLES['gmail-ru']}"
    assert strip_quotes(text) == REPLY


def test_talon_iphone_reply() -> None:
    text = (
        "Hello\n\nSent from my iPhone\n\nOn Apr 3, 2012, at 4:19 PM, bob <bob@example.com> wrote:"
        "\n\n> Hi"
    )
    assert strip_quotes(text) == "Hello"


def test_plain_text_is_returned_unchanged() -> None:
    text = "Здравствуйте!\n\nХочу заказать доставку на пятницу.\nТелефон: +7 912 345-67-89\n"
    assert strip_quotes(text) is text


def test_empty_and_blank_text_are_returned_unchanged() -> None:
    assert strip_quotes("") == ""
    assert strip_quotes("  \n ") == "  \n "


def test_bottom_posted_reply_keeps_the_text_under_the_quote() -> None:
    text = "On 02.04.2012 18:27, Ivan Petrov wrote:\n> Please send the invoice.\n\nSent it today."
    assert strip_quotes(text) == "Sent it today."


def test_message_starting_with_quote_marks_keeps_the_answer() -> None:
    assert strip_quotes("> Когда доставка?\nЗавтра до обеда.") == "Завтра до обеда."


def test_inline_answers_between_quotes_are_kept_whole() -> None:
    text = "> Цена?\n1200 рублей.\n> Срок?\nДва дня."
    assert strip_quotes(text) == text
    text = "Ответы ниже.\n\n> Цена?\n1200 рублей.\n> Срок?\nДва дня."
    assert strip_quotes(text) == text


def test_only_a_quote_returns_the_original() -> None:
    text = "> Пришлите счёт.\n> Спасибо."
    assert strip_quotes(text) == text
    forwarded = "-------- Пересылаемое сообщение --------\nОт: Иван\nТема: Счёт\n\nПришлите счёт."
    assert strip_quotes(forwarded) == forwarded


def test_message_starting_with_a_header_like_block_is_not_wiped() -> None:
    text = "От: Иван Петров\nОтправлено: 2 апреля 2012 г. 14:20\nКому: Мы\nТема: Заказ\n\nТекст"
    assert strip_quotes(text) == text


def test_only_a_signature_keeps_the_text() -> None:
    assert strip_quotes("С уважением,\nИван") == "С уважением,\nИван"
    assert strip_quotes("-- \nИван") == "-- \nИван"


def test_sentence_before_an_attribution_is_kept() -> None:
    text = "Спасибо за информацию.\nOn Monday, Ivan wrote:\n> old"
    assert strip_quotes(text) == "Спасибо за информацию."
    text = "Meeting at 5pm works.\nOn Mon, 2 Apr 2012 at 10:00, John <j@x.com> wrote:\n> old"
    assert strip_quotes(text) == "Meeting at 5pm works."


def test_wrote_inside_a_sentence_is_not_a_quote() -> None:
    text = "Вчера коллега написал:\nнужно уточнить адрес доставки.\nАдрес: Москва, ул. Ленина, 1"
    assert strip_quotes(text) == text


def test_sign_off_in_the_middle_of_a_long_text_is_kept() -> None:
    body = "\n".join(f"Строка {n} письма." for n in range(12))
    text = f"Здравствуйте!\nС уважением относимся к вашему заказу.\n{body}"
    assert strip_quotes(text) == text


def test_signature_delimiter_far_from_the_end_is_kept() -> None:
    body = "\n".join(f"Пункт {n}." for n in range(30))
    text = f"Список:\n--\n{body}"
    assert strip_quotes(text) == text


def test_trailing_spaces_and_rules_are_trimmed_from_the_new_part() -> None:
    text = (
        "Hello \n\n________________________________\nFrom: a@b.ru\nSent: Monday 10:00\nTo: c\n\nold"
    )
    assert strip_quotes(text) == "Hello"
