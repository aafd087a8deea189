"""Conformance: parse_email on real samples written by others (../shared/corpora/email).

Every sample must parse or be cleanly quarantined with a reason; the Russian samples
(KOI8-R and windows-1251, labelled right and wrong) must read as Russian; the delivery
status notifications must give the right bounce; talon's standard replies must lose
their quoted part. The corpora are not copied into the project: the folder is found
at ``$OMNIHUB_TEST_CORPORA`` or next to the repository, and a missing folder skips these
tests (fails them when OMNIHUB_TEST_REQUIRE_ALL=1).
"""

from __future__ import annotations

import re
from datetime import UTC
from functools import cache
from pathlib import Path

import pytest

from channels.email.parse import (
    Bounce,
    ParsedAttachment,
    ParsedEmail,
    UnparseableEmail,
    html_to_text,
    parse_email,
)
from channels.email.quotes import strip_quotes
from tests.conftest import CORPORA, missing_part

EMAIL = CORPORA / "email"
MISSING = "<corpus missing>"
CYRILLIC = re.compile("[А-Яа-яЁё]")


def _samples() -> list[str]:
    if not EMAIL.is_dir():
        return [MISSING]
    return sorted(path.relative_to(EMAIL).as_posix() for path in EMAIL.rglob("*.eml")) or [MISSING]


SAMPLES = _samples()


def _corpus_dir() -> Path:
    if not EMAIL.is_dir():
        missing_part(f"email corpus not found at {EMAIL} (set OMNIHUB_TEST_CORPORA)")
    return EMAIL


def _corpus_path(relative: str) -> Path:
    if relative == MISSING:
        _corpus_dir()
        missing_part(f"no .eml samples under {EMAIL}")
    path = _corpus_dir() / relative
    if not path.is_file():
        missing_part(f"corpus sample {relative} not found under {EMAIL}")
    return path


@cache
def _parse(relative: str) -> ParsedEmail | UnparseableEmail:
    try:
        return parse_email(_corpus_path(relative).read_bytes())
    except UnparseableEmail as exc:
        return exc


def parsed(relative: str) -> ParsedEmail:
    result = _parse(relative)
    assert isinstance(result, ParsedEmail), f"{relative}: unparseable: {result}"
    return result


@pytest.mark.parametrize("relative", SAMPLES)
def test_every_sample_parses_or_is_quarantined(relative: str) -> None:
    path = _corpus_path(relative)
    try:
        result = parse_email(path.read_bytes())
    except UnparseableEmail as exc:
        assert isinstance(exc.reason, str) and exc.reason.strip()
        assert not exc.reason.startswith("parser error"), exc.reason
        return
    assert isinstance(result, ParsedEmail)
    assert isinstance(result.subject, str) and "\n" not in result.subject
    assert isinstance(result.text, str) and isinstance(result.display_text, str)
    assert bool(result.display_text.strip()) == bool(result.text.strip())
    assert result.html is None or isinstance(result.html, str)
    if result.html is not None:
        assert "<script" not in result.html.lower()
    assert result.message_id is None or (result.message_id and "<" not in result.message_id)
    assert all(isinstance(item, str) for item in [*result.in_reply_to, *result.references])
    for address in [result.from_address, result.reply_to, *result.to, *result.cc]:
        assert address is None or (address == address.lower() and "@" in address)
    assert result.date is None or result.date.tzinfo is UTC
    assert result.bounce is None or isinstance(result.bounce, Bounce)
    assert all(isinstance(defect, str) for defect in result.defects)
    assert all(
        isinstance(key, str) and isinstance(value, str) for key, value in result.headers.items()
    )
    for attachment in result.attachments:
        assert isinstance(attachment, ParsedAttachment)
        assert (
            attachment.filename
            and "/" not in attachment.filename
            and "\\" not in attachment.filename
        )
        assert attachment.content_type == attachment.content_type.lower()
        assert attachment.content_type.count("/") == 1
        assert attachment.content_id is None or "<" not in attachment.content_id
    # Replacement characters only where the sample itself carries one (U+FFFD in UTF-8):
    # never produced by decoding, and never in a Cyrillic text.
    fields = [result.subject, result.text, result.from_name or ""]
    fields += [attachment.filename for attachment in result.attachments]
    for field in fields:
        if CYRILLIC.search(field):
            assert "\ufffd" not in field, f"{relative}: {field[:200]!r}"
        if "\ufffd" in field:
            assert b"\xef\xbf\xbd" in path.read_bytes(), f"{relative}: {field[:200]!r}"


# ---------------------------------------------------------------- Russian samples

KOI8R = "django_mailbox/django_mailbox/tests/messages/message_with_koi8r_filename_attachments.eml"
CP1251_DECLARED = (
    "django_mailbox/django_mailbox/tests/messages/message_with_single_byte_encoding.eml"
)
CP1251_AS_ASCII = (
    "django_mailbox/django_mailbox/tests/messages/"
    "message_with_invalid_content_for_declared_encoding.eml"
)
CP1251_RAW_SUBJECT = (
    "django_mailbox/django_mailbox/tests/messages/"
    "message_with_single_byte_extended_subject_encoding.eml"
)
CP1251_8BIT = "imap_tools/tests/messages/attachment_8bit.eml"
CP1251_ENCODED_NAME = "imap_tools/tests/messages/plain_emails/raw_email_bad_time.eml"


def test_koi8r_subject_sender_text_and_attachment_names() -> None:
    email = parsed(KOI8R)
    assert email.subject == "Предложения от НИУ ВШЭ на 2016 год"
    assert email.from_name == "Савостенок Ольга Святославовна"
    assert email.from_address == "osavostenok@hse.ru"
    assert email.text.startswith("Добрый день, уважаемые коллеги.")
    for words in ("Высшая школа экономики", "Центр развития карьеры", "Ярмарки вакансий"):
        assert words in email.text
    assert email.html is not None and "уважаемые коллеги" in email.html
    assert [attachment.filename for attachment in email.attachments] == [
        "Пакет предложений HSE Career Fair 8 апреля 2016.pdf",
        "Ведомости.pdf",
        "Пакет предложений 2016.pptx",
    ]
    assert [attachment.size for attachment in email.attachments] == [545826, 503828, 1890446]
    assert email.attachments[0].data.startswith(b"%PDF")
    assert email.attachments[2].data.startswith(b"PK")


def test_koi8r_attachments_over_the_limit_keep_their_names() -> None:
    email = parse_email(_corpus_path(KOI8R).read_bytes(), max_attachment_bytes=1_000_000)
    big = email.attachments[2]
    assert big.filename == "Пакет предложений 2016.pptx"
    assert big.data == b"" and big.truncated_reason and "1890446" in big.truncated_reason
    assert email.attachments[0].truncated_reason is None


@pytest.mark.parametrize("relative", [CP1251_DECLARED, CP1251_AS_ASCII])
def test_cp1251_body_declared_or_labelled_ascii(relative: str) -> None:
    email = parsed(relative)
    assert email.text == "Это сообщение имеет неправильную кодировка."


def test_cp1251_body_labelled_ascii_is_recorded_as_repaired() -> None:
    assert any("windows-1251" in defect for defect in parsed(CP1251_AS_ASCII).defects)


def test_raw_cp1251_subject() -> None:
    email = parsed(CP1251_RAW_SUBJECT)
    assert email.subject == "Узнай как зарабатывать от 1000$ в неделю!"
    assert email.from_address == "mr.test32@mail.ru"


def test_8bit_cp1251_body_and_forwarded_utf8_message() -> None:
    email = parsed(CP1251_8BIT)
    assert email.from_name == "Каукин Владимир"
    assert "отдел расписания" in email.text and "тел. (343) 072-00-00" in email.text
    assert email.html is not None and "отдел расписания" in email.html
    assert email.display_text == "SCR\n\n/\nS19\n07FEB\nwat"  # the "-- " signature stripped
    (forwarded,) = email.attachments
    assert forwarded.filename == "Message01.eml"
    inner = parse_email(forwarded.data)
    assert inner.from_name == "Каукин Владимир"
    assert "уважаемые" in inner.text and "Перенаправленное сообщение" in inner.text


def test_cp1251_encoded_word_sender_and_repaired_boundary() -> None:
    email = parsed(CP1251_ENCODED_NAME)
    assert email.from_name is not None and email.from_name.startswith("Атиков")
    assert "MailScanner" in email.text
    assert any("boundary repaired" in defect for defect in email.defects)


@pytest.mark.parametrize(
    ("relative", "subject", "words"),
    [
        (
            "imap_tools/tests/messages/base.eml",
            "Соберите всю почту в этот ящик",
            ["Здравствуйте!", "Яндекс.Почту", "настройте сбор почты"],
        ),
        (
            "imap_tools/tests/messages/attachment_inline1.eml",
            "Mail.Ru – больше, чем почта. Познакомьтесь с проектами Mail.Ru Group",
            ["Здравствуйте"],
        ),
        (
            "imap_tools/tests/messages/plain_emails/raw_email_with_partially_quoted_content_id.eml",
            "Пример email с вложением и Content-ID",
            ["текстовое сообщение с вложением"],
        ),
        ("imap_tools/tests/messages/forwarded_message.eml", "статус", []),
    ],
)
def test_utf8_russian_samples(relative: str, subject: str, words: list[str]) -> None:
    email = parsed(relative)
    assert email.subject == subject
    for word in words:
        assert word in email.text


def test_forwarded_message_keeps_its_russian_subject_as_name() -> None:
    email = parsed("imap_tools/tests/messages/forwarded_message.eml")
    (attachment,) = email.attachments
    assert attachment.filename == "статус.eml"
    assert "Новый заказ" in parse_email(attachment.data).text


def test_inline_images_of_html_mail() -> None:
    email = parsed("imap_tools/tests/messages/attachment_inline1.eml")
    assert {a.filename for a in email.attachments} == {"blank.png", "sm-ok.png", "logo.png"}
    assert all(a.inline and a.content_id for a in email.attachments)
    assert email.html is not None and "cid:part51.09060808.01070700@mail.ru" in email.html


# ---------------------------------------------------------------- bounces

REPORTS = "imap_tools/tests/messages/multipart_report_emails"
BOUNCES = {
    f"{REPORTS}/multi_address_bounce1.eml": (
        "failed", "5.1.1", True, 5, "118707422.15521266992174819.JavaMail.root@lvmail01",
    ),
    f"{REPORTS}/multi_address_bounce2.eml": (
        "failed", "5.1.1", True, 5, "118707422.15521266992174819.JavaMail.root@lvmail01",
    ),
    f"{REPORTS}/multipart_report_multiple_status.eml": (
        "failed", "5.3.0", True, 1, "4c2a146147ac8_61ff157c4ec1652df@s.h.c.mail",
    ),
    f"{REPORTS}/report_422.eml": (
        "delayed", "4.2.2", False, 1,
        "15655788.13.1200472642578.JavaMail.Administrator@mail.ttttt.com.au",
    ),
    f"{REPORTS}/report_530.eml": (
        "failed", "5.3.0", True, 1, "200712232303.lBNN3jDq002941@mail12.rrrr.com.au",
    ),
    "imap_tools/tests/messages/mime_emails/raw_email_with_mimepart_without_content_type.eml": (
        "delayed", "4.5.0", False, 1,
        "89d7557c0610181510r6fa5ebd8n66a7deec71ade118@mail.gmail.com",
    ),
}  # fmt: skip


@pytest.mark.parametrize("relative", sorted(BOUNCES))
def test_delivery_status_notifications(relative: str) -> None:
    action, status, permanent, recipients, original = BOUNCES[relative]
    email = parsed(relative)
    bounce = email.bounce
    assert bounce is not None
    assert (bounce.action, bounce.status, bounce.permanent) == (action, status, permanent)
    assert len(bounce.recipients) == recipients
    assert all(r == r.lower() and "@" in r for r in bounce.recipients)
    assert bounce.original_message_id == original
    assert email.auto_reason is not None


def test_bounce_recipients_and_diagnostic() -> None:
    bounce = parsed(f"{REPORTS}/report_530.eml").bounce
    assert bounce is not None
    assert bounce.recipients == ["edwin@zzzzzzz.com"]
    assert bounce.diagnostic == "553 5.3.0 <edwin@zzzzzzz.com>... Unknown E-Mail Address"


@pytest.mark.parametrize("relative", [s for s in SAMPLES if s not in BOUNCES] or [MISSING])
def test_other_samples_are_not_bounces(relative: str) -> None:
    result = _parse(relative)
    if isinstance(result, ParsedEmail):
        assert result.bounce is None


# ---------------------------------------------------------------- talon's replies

TALON = "talon/tests/fixtures"
STANDARD_REPLIES = [s for s in SAMPLES if s.startswith(f"{TALON}/standard_replies/")]


@pytest.mark.parametrize("relative", STANDARD_REPLIES or [MISSING])
def test_talon_standard_replies_lose_the_quote(relative: str) -> None:
    email = parsed(relative)
    assert email.display_text == "Hello"
    assert email.text != email.display_text  # the full original is kept
    expected_file = _corpus_path(relative).with_name(Path(relative).stem + "_reply_text")
    if expected_file.is_file():
        # talon keeps signatures ("Sent from my iPhone", "-- " blocks); the hub strips
        # them too, so talon's reply text starts with ours and the rest is a signature.
        talon_reply = expected_file.read_text().strip()
        assert talon_reply.startswith(email.display_text)
        rest = talon_reply[len(email.display_text) :].strip()
        assert rest and strip_quotes(f"Hello\n\n{rest}") == "Hello"
        assert "wrote:" not in rest and not any(line.startswith(">") for line in rest.split("\n"))


def test_talon_reply_sharing_a_block_with_its_quote() -> None:
    email = parsed(f"{TALON}/reply-quotations-share-block.eml")
    assert email.display_text.startswith("Hi Katharine.")
    assert email.display_text.endswith("Joe XXX")
    assert "New Booking Inquiry" in email.text and "New Booking Inquiry" not in email.display_text


HTML_REPLIES = ["gmail", "hotmail", "mail_ru", "ms_outlook_2003", "ms_outlook_2007"]
HTML_REPLIES += ["ms_outlook_2010", "thunderbird", "windows_mail", "yandex_ru"]


@pytest.mark.parametrize("name", HTML_REPLIES)
def test_talon_html_replies(name: str) -> None:
    html_file = _corpus_dir() / TALON / "html_replies" / f"{name}.html"
    if not html_file.is_file():
        missing_part(f"{html_file} not found")
    text = strip_quotes(html_to_text(html_file.read_bytes().decode("utf-8")))
    assert text.startswith("Hi. I am fine.")
    assert text.replace("\n\n", "\n").endswith("Thanks,\nAlex")
    assert "How are you" not in text
