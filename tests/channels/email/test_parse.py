"""parse_email on the project's own small fixtures: charsets, broken MIME, bodies,
attachments, bounces and loop markers. Every fixture is built here as bytes."""

from __future__ import annotations

import base64
import binascii
import random
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.email.charsets import decode_bytes
from channels.email.parse import (
    ParsedEmail,
    UnparseableEmail,
    decode_header_text,
    html_to_text,
    parse_email,
    sanitize_html,
)

RUSSIAN = "Здравствуйте! Прошу выставить счёт на оплату доставки в пятницу."


def message(*headers: str | bytes, body: str | bytes = b"", sender: bool = True) -> bytes:
    """A raw message: the given header lines (plus From/To/Subject/Message-ID defaults)."""
    lines: list[bytes] = [h.encode() if isinstance(h, str) else h for h in headers]
    names = {line.split(b":", 1)[0].lower() for line in lines}
    defaults = {
        b"from": b"From: Client <client@example.ru>",
        b"to": b"To: sales@hub.example",
        b"subject": b"Subject: Test",
        b"message-id": b"Message-ID: <m1@example.ru>",
        b"date": b"Date: Mon, 02 Apr 2012 14:20:00 +0400",
    }
    for name, line in defaults.items():
        if name not in names and (sender or name != b"from"):
            lines.append(line)
    payload = body.encode() if isinstance(body, str) else body
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


def plain(
    body: bytes, charset: str | None, *headers: str | bytes, encoding: str = "8bit"
) -> ParsedEmail:
    content_type = "text/plain" + (f"; charset={charset}" if charset else "")
    return parse_email(
        message(
            f"Content-Type: {content_type}",
            f"Content-Transfer-Encoding: {encoding}",
            *headers,
            body=body,
        )
    )


# ---------------------------------------------------------------- headers


def test_plain_message_headers() -> None:
    parsed = parse_email(
        message(
            'From: "Petrov, Ivan" <Ivan.Petrov@Example.RU>',
            "To: Sales <SALES@hub.example>, second@hub.example",
            "Cc: boss@hub.example",
            "Reply-To: <Orders@Example.RU>, other@example.ru",
            "Subject: =?utf-8?B?0JfQsNC60LDQtw==?= =?utf-8?Q?_=E2=84=9612?=",
            "Message-ID:  < abc.123@mail.example.ru >",
            "In-Reply-To: <parent@hub.example>",
            "References: <root@hub.example>\r\n <parent@hub.example>",
            "Date: Mon, 02 Apr 2012 14:20:00 +0400",
            body="Hello",
        )
    )
    assert parsed.from_address == "ivan.petrov@example.ru"
    assert parsed.from_name == "Petrov, Ivan"
    assert parsed.to == ["sales@hub.example", "second@hub.example"]
    assert parsed.cc == ["boss@hub.example"]
    assert parsed.reply_to == "orders@example.ru"
    assert parsed.subject == "Заказ №12"
    assert parsed.message_id == "abc.123@mail.example.ru"
    assert parsed.in_reply_to == ["parent@hub.example"]
    assert parsed.references == ["root@hub.example", "parent@hub.example"]
    assert parsed.date == datetime(2012, 4, 2, 10, 20, tzinfo=UTC)
    assert parsed.date is not None and parsed.date.tzinfo is UTC
    assert parsed.text == parsed.display_text == "Hello"
    assert parsed.html is None
    assert parsed.auto_reason is None and parsed.bounce is None
    assert parsed.headers["subject"] == "Заказ №12"
    assert parsed.headers["from"] == '"Petrov, Ivan" <Ivan.Petrov@Example.RU>'
    assert set(parsed.headers) >= {"message-id", "date", "to", "cc", "references", "in-reply-to"}


def test_garbage_ids_and_dates_become_none() -> None:
    parsed = parse_email(
        message("Message-ID: not an id", "Date: Pn, 29 paX 2007 21:13:00 +0100", body="x")
    )
    assert parsed.message_id is None
    assert parsed.date is None
    assert any("date" in defect for defect in parsed.defects)


def test_date_without_zone_is_utc() -> None:
    parsed = parse_email(message("Date: Mon, 02 Apr 2012 14:20:00 -0000", body="x"))
    assert parsed.date == datetime(2012, 4, 2, 14, 20, tzinfo=UTC)


def test_references_from_several_headers_and_bare_ids() -> None:
    parsed = parse_email(
        message(
            "References: <a@x>",
            "References: <b@x>, <invalid.   \r\n something@x>",
            "In-Reply-To: bare@x.ru",
            body="x",
        )
    )
    assert parsed.references == ["a@x", "b@x"]
    assert parsed.in_reply_to == ["bare@x.ru"]


def test_missing_sender_and_empty_recipients() -> None:
    parsed = parse_email(message("To: , undisclosed-recipients:;", body="x", sender=False))
    assert parsed.from_address is None and parsed.from_name is None
    assert parsed.to == []


def test_obsolete_blanks_before_colon() -> None:
    raw = b"From  : Ivan <ivan@example.ru>\r\nSubject   : Hello\r\n\r\nbody"
    parsed = parse_email(raw)
    assert parsed.from_address == "ivan@example.ru"
    assert parsed.subject == "Hello"


# ---------------------------------------------------------------- charsets


@pytest.mark.parametrize("declared", [None, "us-ascii", "iso-8859-1", "windows-1251", "utf-8"])
def test_cp1251_body_under_any_label(declared: str | None) -> None:
    parsed = plain(RUSSIAN.encode("cp1251"), declared)
    assert parsed.text == RUSSIAN
    if declared != "windows-1251":
        assert any("windows-1251" in defect for defect in parsed.defects)


@pytest.mark.parametrize("declared", [None, "us-ascii", "iso-8859-1", "koi8-r", "windows-1251"])
def test_koi8r_body_under_any_label(declared: str | None) -> None:
    parsed = plain(RUSSIAN.encode("koi8-r"), declared)
    assert parsed.text == RUSSIAN


@pytest.mark.parametrize("declared", ["windows-1251", "koi8-r", "iso-8859-1", None])
def test_utf8_body_under_a_single_byte_label(declared: str | None) -> None:
    parsed = plain(RUSSIAN.encode(), declared)
    assert parsed.text == RUSSIAN


def test_latin1_text_stays_latin() -> None:
    text = "Formação: Verão café, Größe"
    assert plain(text.encode("latin-1"), "iso-8859-1").text == text
    assert plain(text.encode("latin-1"), None).text == text


def test_short_russian_words_are_detected() -> None:
    for word in ("Да", "Нет", "Счёт", "Re: Да"):
        for codec in ("cp1251", "koi8-r"):
            assert decode_bytes(word.encode(codec), None).text == word


def test_mixed_utf8_and_cp1251_lines() -> None:
    data = "Привет\n".encode() + "Подпись: Иван Петров".encode("cp1251")
    decoded = decode_bytes(data, "utf-8")
    assert decoded.text == "Привет\nПодпись: Иван Петров"
    assert "\ufffd" not in decoded.text


def test_unknown_charset_label() -> None:
    assert plain(RUSSIAN.encode("cp1251"), "x-unknown").text == RUSSIAN
    assert plain(b"plain ascii", '"_iso-2022-jp$ESC"').text == "plain ascii"


def test_html_meta_charset_when_mime_has_none() -> None:
    html = '<html><head><meta charset="koi8-r"></head><body><p>Счёт</p></body></html>'
    parsed = parse_email(message("Content-Type: text/html", body=html.encode("koi8-r")))
    assert parsed.text == "Счёт"


def test_raw_8bit_subject_labelled_latin1() -> None:
    parsed = plain(
        b"body",
        "iso-8859-1",
        b"Subject: " + "Узнай как зарабатывать".encode("cp1251"),
    )
    assert parsed.subject == "Узнай как зарабатывать"
    assert any("subject" in defect for defect in parsed.defects)


def test_raw_8bit_headers_use_the_body_charset() -> None:
    parsed = plain(
        RUSSIAN.encode("koi8-r"),
        "koi8-r",
        b"Subject: " + "Счёт на оплату".encode("koi8-r"),
        b"From: " + "Иван Петров".encode("koi8-r") + b" <ivan@example.ru>",
    )
    assert parsed.subject == "Счёт на оплату"
    assert parsed.from_name == "Иван Петров"
    assert parsed.from_address == "ivan@example.ru"


def test_raw_utf8_headers() -> None:
    parsed = plain(b"x", "utf-8", "Subject: Привет, мир".encode(), 'From: "Jöhn" <j@x.de>'.encode())
    assert parsed.subject == "Привет, мир"
    assert parsed.from_name == "Jöhn"


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        ("=?koi8-r?B?8NLJ18XU?=", "Привет"),
        ("=?windows-1251?Q?=CF=F0=E8=E2=E5=F2_=EC=E8=F0?=", "Привет мир"),
        # one character split across two words
        ("=?utf-8?B?0J/RgNC4?= =?utf-8?B?0LI=?=\r\n =?utf-8?B?0LXRgg==?=", "Привет"),
        ("=?UTF-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
        # broken padding
        ("=?NONE?B?VEVTVA=?=", "TEST"),
        ("=?utf-8?B?0J/RgNC40LLQtdGC?", "=?utf-8?B?0J/RgNC40LLQtdGC?"),
        # a wrong label: windows-1251 bytes labelled iso-8859-1
        ("=?iso-8859-1?B?z/Do4uXy?=", "Привет"),
        # unknown label, UTF-8 bytes
        ("=?x-unknown?B?0J/RgNC40LLQtdGC?=", "Привет"),
        ("=?utf-8*ru?Q?=D0=94=D0=B0?=", "Да"),
        ("Re: =?utf-8?Q?=D0=94=D0=B0?= and more", "Re: Да and more"),
        ("=?UTF-8?B??=", ""),
    ],
)
def test_encoded_words(encoded: str, expected: str) -> None:
    assert decode_header_text(encoded) == expected


# ---------------------------------------------------------------- bodies


def test_html_only_message_gets_text_and_sanitized_html() -> None:
    html = (
        "<html><head><title>T</title><style>p{color:red}</style>"
        "<script>alert(1)</script></head><body>"
        '<p onclick="steal()">Здравствуйте,&nbsp;<b>Иван</b>!</p>'
        '<div>Смотрите <a href="https://shop.example/price">прайс</a> и '
        '<a href="javascript:alert(1)">это</a>.</div>'
        '<img src="cid:logo@x"><img src="https://cdn.example/a.png">'
        '<img src="http://tracker.example/p.gif"><img src="data:image/png;base64,AAAA">'
        "<ul><li>один</li><li>два</li></ul>"
        "&lt;tag&gt; &amp; &#1046;"
        "<blockquote>Старое письмо<br>вторая строка</blockquote></body></html>"
    )
    parsed = parse_email(message("Content-Type: text/html; charset=utf-8", body=html.encode()))
    assert parsed.text == (
        "Здравствуйте, Иван!\n\n"
        "Смотрите прайс (https://shop.example/price) и это.\n"
        "- один\n- два\n"
        "<tag> & Ж\n"
        "> Старое письмо\n> вторая строка"
    )
    assert parsed.display_text == (
        "Здравствуйте, Иван!\n\nСмотрите прайс (https://shop.example/price) и это.\n"
        "- один\n- два\n<tag> & Ж"
    )
    assert parsed.html is not None
    for banned in ("script", "alert", "onclick", "style", "http://tracker", "data:", "<title"):
        assert banned not in parsed.html
    assert 'src="cid:logo@x"' in parsed.html
    assert 'src="https://cdn.example/a.png"' in parsed.html
    assert 'href="https://shop.example/price"' in parsed.html


def test_html_to_text_blocks_links_and_pre() -> None:
    html = (
        "<h1>Заказ</h1><p>Первый абзац</p><p>Второй<br>абзац</p>"
        '<a href="mailto:a@b.ru">a@b.ru</a> <a href="mailto:a@b.ru">почта</a>'
        "<table><tr><td>Товар</td><td>Цена</td></tr><tr><td>Стол</td><td>100</td></tr></table>"
        "<pre>  код\n    отступ</pre>"
    )
    assert html_to_text(html) == (
        "Заказ\n\nПервый абзац\n\nВторой\nабзац\n\na@b.ru почта (a@b.ru)\n"
        "Товар Цена\nСтол 100\n\n  код\n    отступ"
    )


def test_broken_html_does_not_raise() -> None:
    assert html_to_text("<div><p>текст <b>жирный</div></p><<<>>") == "текст жирный\n\n<<<>>"
    assert html_to_text("") == ""
    assert sanitize_html("<p>ok<script>x</script>") == "<p>ok</p>"


def test_alternative_prefers_plain_text_and_keeps_html() -> None:
    raw = message(
        'Content-Type: multipart/alternative; boundary="b1"',
        body=(
            "--b1\r\nContent-Type: text/plain; charset=koi8-r\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(RUSSIAN.encode("koi8-r")).decode()
            + "\r\n--b1\r\nContent-Type: text/html; charset=windows-1251\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            "<p>=C7=E4=F0=E0=E2=F1=F2=E2=F3=E9=F2=E5</p>\r\n--b1--\r\n"
        ),
    )
    parsed = parse_email(raw)
    assert parsed.text == RUSSIAN
    assert parsed.html == "<p>Здравствуйте</p>"


def test_empty_plain_part_falls_back_to_html() -> None:
    raw = message(
        'Content-Type: multipart/alternative; boundary="b1"',
        body=(
            "--b1\r\nContent-Type: text/plain\r\n\r\n\r\n"
            "--b1\r\nContent-Type: text/html\r\n\r\n<div>Только HTML</div>\r\n--b1--\r\n"
        ),
    )
    assert parse_email(raw).text == "Только HTML"


def test_format_flowed_is_unwrapped() -> None:
    body = "Это длинная строка, \r\nперенесённая клиентом.\r\n> Цитата \r\n> продолжение\r\nКонец"
    parsed = plain(body.encode(), "utf-8; format=flowed")
    assert parsed.text == (
        "Это длинная строка, перенесённая клиентом.\n> Цитата продолжение\nКонец"
    )


def test_several_plain_parts_are_joined() -> None:
    raw = message(
        'Content-Type: multipart/mixed; boundary="m"',
        body=(
            "--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nПервая часть\r\n"
            "--m\r\nContent-Type: image/png\r\nContent-Disposition: inline\r\n\r\nPNG\r\n"
            "--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nВторая часть\r\n--m--\r\n"
        ),
    )
    parsed = parse_email(raw)
    assert parsed.text == "Первая часть\n\nВторая часть"
    assert [a.filename for a in parsed.attachments] == ["attachment-1.png"]


def test_reply_display_text_strips_the_quote_and_keeps_the_full_text() -> None:
    body = (
        "Да, подходит.\r\n\r\nС уважением,\r\nИван\r\n\r\n"
        '02.04.2012, 14:20, "Менеджер" <sales@hub.example>:\r\n> Вам подходит пятница?\r\n'
    )
    parsed = plain(body.encode(), "utf-8")
    assert parsed.display_text == "Да, подходит."
    assert "Вам подходит пятница?" in parsed.text


# ---------------------------------------------------------------- attachments


def multipart_with(*parts: str | bytes) -> bytes:
    body = b"".join(
        b"--p\r\n" + (part.encode() if isinstance(part, str) else part) + b"\r\n" for part in parts
    )
    return message('Content-Type: multipart/mixed; boundary="p"', body=body + b"--p--\r\n")


TEXT_PART = "Content-Type: text/plain; charset=utf-8\r\n\r\nСм. вложение"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            "Content-Type: application/pdf\r\n"
            "Content-Disposition: attachment; filename*=UTF-8''%D0%A1%D1%87%D1%91%D1%82.pdf",
            "Счёт.pdf",
        ),
        (
            "Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
            " filename*0*=utf-8''%D0%94%D0%BE%D0%B3%D0%BE;\r\n"
            ' filename*1*=%D0%B2%D0%BE%D1%80; filename*2=".pdf"',
            "Договор.pdf",
        ),
        (
            "Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
            ' filename="=?koi8-r?B?98XEz83P09TJLnBkZg==?="',
            "Ведомости.pdf",
        ),
        (
            'Content-Type: application/pdf; name="=?windows-1251?Q?=D1=F7=E5=F2.pdf?="',
            "Счет.pdf",
        ),
        (
            "Content-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename*=iso-8859-1'ru'%D1%F7%E5%F2.txt",
            "Счет.txt",
        ),
        (
            b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="'
            + "Смета.pdf".encode("cp1251")
            + b'"',
            "Смета.pdf",
        ),
        (
            b'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="'
            + "Смета.pdf".encode()
            + b'"',
            "Смета.pdf",
        ),
        (
            "Content-Type: application/pdf\r\n"
            'Content-Disposition: attachment; filename="..\\\\..\\\\windows\\\\evil.pdf"',
            "evil.pdf",
        ),
        (
            "Content-Type: application/pdf\r\n"
            'Content-Disposition: attachment; filename="../../etc/passwd"',
            "passwd",
        ),
        (
            "Content-Type: application/pdf\r\n"
            'Content-Disposition: attachment; filename="a\u202egpj.exe"'.encode(),
            "a_gpj.exe",
        ),
        ("Content-Type: application/pdf\r\nContent-Disposition: attachment", "attachment-1.pdf"),
        ("Content-Type: image/jpeg\r\nContent-Disposition: attachment", "attachment-1.jpg"),
        ("Content-Type: application/x-unknown-thing", "attachment-1.bin"),
        ('Content-Type: text/plain; name="notes.txt"', "notes.txt"),
    ],
)
def test_attachment_filenames(headers: str | bytes, expected: str) -> None:
    head = headers.encode() if isinstance(headers, str) else headers
    raw = multipart_with(TEXT_PART, head + b"\r\n\r\nDATA")
    parsed = parse_email(raw)
    assert parsed.text == "См. вложение"
    assert [a.filename for a in parsed.attachments] == [expected]
    assert parsed.attachments[0].data == b"DATA"


def test_attachment_content_type_and_base64_repair() -> None:
    raw = multipart_with(
        TEXT_PART,
        "Content-Type: Application/PDF\r\nContent-Transfer-Encoding: base64;\r\n"
        'Content-Disposition: attachment; filename="a.pdf"\r\n\r\nJVBERi0xLjQ\r\nK',
    )
    attachment = parse_email(raw).attachments[0]
    assert attachment.content_type == "application/pdf"
    assert attachment.data.startswith(b"%PDF-1.4")


def test_attachment_over_the_limit_is_dropped_with_a_reason() -> None:
    payload = base64.b64encode(b"x" * 2000).decode()
    raw = multipart_with(
        TEXT_PART,
        "Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="big.zip"\r\n\r\n{payload}',
    )
    parsed = parse_email(raw, max_attachment_bytes=1000)
    attachment = parsed.attachments[0]
    assert attachment.data == b""
    assert attachment.size == 2000
    assert attachment.truncated_reason is not None and "2000" in attachment.truncated_reason
    assert parse_email(raw).attachments[0].data == b"x" * 2000


def test_inline_cid_images() -> None:
    raw = message(
        'Content-Type: multipart/related; boundary="r"',
        body=(
            "--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            '<p>Логотип:<img src="CID:Logo@Example"></p>\r\n'
            "--r\r\nContent-Type: image/png\r\nContent-ID: <Logo@Example>\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
            "--r\r\nContent-Type: image/gif\r\nContent-ID: <unused@example>\r\n\r\nGIF89a\r\n"
            "--r--\r\n"
        ),
    )
    parsed = parse_email(raw)
    logo, unused = parsed.attachments
    assert (logo.content_id, logo.inline, logo.filename) == (
        "Logo@Example",
        True,
        "attachment-1.png",
    )
    assert logo.data == b"\x89PNG\r\n\x1a\n"
    assert (unused.content_id, unused.inline) == ("unused@example", False)
    assert parsed.text == "Логотип:"


FORWARDED = (
    "From: Иван <ivan@example.ru>\r\nSubject: =?utf-8?B?0KHRh9GR0YI=?=\r\n"
    "Message-ID: <inner@example.ru>\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\nТекст пересланного письма\r\n"
)


def test_forwarded_message_is_kept_as_eml() -> None:
    raw = multipart_with(TEXT_PART, f"Content-Type: message/rfc822\r\n\r\n{FORWARDED}")
    parsed = parse_email(raw)
    assert parsed.text == "См. вложение"
    (attachment,) = parsed.attachments
    assert attachment.filename == "Счёт.eml"
    assert attachment.content_type == "message/rfc822"
    inner = parse_email(attachment.data)
    assert inner.message_id == "inner@example.ru"
    assert inner.text == "Текст пересланного письма"


def test_base64_forwarded_message_is_decoded() -> None:
    encoded = base64.encodebytes(FORWARDED.encode()).decode()
    raw = multipart_with(
        TEXT_PART,
        "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n"
        f'Content-Disposition: attachment; filename="fwd.eml"\r\n\r\n{encoded}',
    )
    (attachment,) = parse_email(raw).attachments
    assert attachment.filename == "fwd.eml"
    assert parse_email(attachment.data).text == "Текст пересланного письма"


def test_signature_parts_are_not_attachments() -> None:
    raw = message(
        'Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary="s"',
        body=(
            "--s\r\nContent-Type: text/plain\r\n\r\nSigned text\r\n"
            "--s\r\nContent-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP...\r\n--s--\r\n"
        ),
    )
    parsed = parse_email(raw)
    assert parsed.text == "Signed text"
    assert parsed.attachments == []
    [skipped] = parsed.skipped
    assert skipped.filename == "attachment-1.bin"
    assert "application/pgp-signature" in skipped.reason


def test_uuencoded_attachment() -> None:
    line = binascii.b2a_uu(b"hello uu").decode()
    raw = multipart_with(
        TEXT_PART,
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-uuencode\r\n"
        'Content-Disposition: attachment; filename="a.bin"\r\n\r\n'
        f"begin 644 a.bin\r\n{line}`\r\nend",
    )
    assert parse_email(raw).attachments[0].data == b"hello uu"


# ---------------------------------------------------------------- broken MIME


def test_unquoted_boundary_with_equals_sign_is_repaired() -> None:
    raw = message(
        "Content-Type: multipart/alternative;\r\n  boundary=----=_NextPart_000_0023",
        body=(
            "This is a multi-part message in MIME format.\r\n\r\n"
            "------=_NextPart_000_0023\r\nContent-Type: text/plain; charset=windows-1251\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n=CF=F0=E8=E2=E5=F2\r\n"
            "------=_NextPart_000_0023--\r\n"
        ),
    )
    parsed = parse_email(raw)
    assert parsed.text == "Привет"
    assert any("boundary repaired" in defect for defect in parsed.defects)


def test_boundary_found_in_the_body_when_the_declared_one_is_wrong() -> None:
    raw = message(
        'Content-Type: multipart/mixed; boundary="declared"',
        body="--actual\r\nContent-Type: text/plain\r\n\r\nHello\r\n--actual--\r\n",
    )
    assert parse_email(raw).text == "Hello"


def test_missing_close_boundary_and_unknown_transfer_encoding() -> None:
    raw = message(
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bits\r\n\r\nТекст без закрывающей границы\r\n"
        ),
    )
    parsed = parse_email(raw)
    assert parsed.text == "Текст без закрывающей границы"
    assert any("CloseBoundaryNotFound" in defect for defect in parsed.defects)


def test_multipart_without_boundary_body_is_taken_as_text() -> None:
    raw = message('Content-Type: multipart/mixed; boundary="nowhere"', body="Просто текст\r\n")
    parsed = parse_email(raw)
    assert parsed.text == "Просто текст"


def test_empty_multipart() -> None:
    raw = message('Content-Type: multipart/mixed; boundary="b"', body="")
    parsed = parse_email(raw)
    assert parsed.text == parsed.display_text == ""
    assert parsed.attachments == []


def test_deep_nesting_is_cut_off() -> None:
    body = ""
    for depth in range(40):
        body += f'--b{depth}\r\nContent-Type: multipart/mixed; boundary="b{depth + 1}"\r\n\r\n'
    body += "--b40\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
    parsed = parse_email(message('Content-Type: multipart/mixed; boundary="b0"', body=body))
    assert any("too deep" in defect for defect in parsed.defects)


def test_bad_base64_body_is_repaired() -> None:
    data = base64.b64encode(RUSSIAN.encode()).decode().rstrip("=")
    parsed = plain(data.encode(), "utf-8", encoding="base64")
    assert parsed.text == RUSSIAN


def test_concatenated_base64_blocks() -> None:
    data = (
        base64.b64encode("Часть один. ".encode()) + b"\r\n" + base64.b64encode("Часть два".encode())
    )
    parsed = plain(data, "utf-8", encoding="base64")
    assert parsed.text == "Часть один. Часть два"


def test_leading_blank_lines_and_mbox_from_line() -> None:
    raw = b"\r\n\r\nFrom someone@example.ru Mon Apr  2 14:20:00 2012\r\n" + message(body="Hi")
    assert parse_email(raw).text == "Hi"


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n", b"\x00"])
def test_empty_input_is_unparseable(raw: bytes) -> None:
    with pytest.raises(UnparseableEmail) as caught:
        parse_email(raw)
    assert caught.value.reason


def test_no_header_block_is_unparseable() -> None:
    with pytest.raises(UnparseableEmail, match="no header block") as caught:
        parse_email(b"<html><body>not an email</body></html>")
    assert caught.value.reason == "no header block"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    try:
        parsed = parse_email(data)
    except UnparseableEmail as exc:
        assert exc.reason
    else:
        assert isinstance(parsed.subject, str) and isinstance(parsed.text, str)


def test_corrupted_messages_never_raise_anything_else() -> None:
    seed = multipart_with(
        TEXT_PART,
        'Content-Type: application/pdf; name="=?koi8-r?B?98XEz83P09TJLnBkZg==?="\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK",
        f"Content-Type: message/rfc822\r\n\r\n{FORWARDED}",
    )
    rng = random.Random(20240501)
    for _ in range(300):
        data = bytearray(seed)
        for _ in range(rng.randint(1, 12)):
            position = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[position] = rng.randrange(256)
            elif action < 0.7:
                del data[position : position + rng.randint(1, 40)]
            else:
                data[position:position] = bytes(
                    rng.randrange(256) for _ in range(rng.randint(1, 8))
                )
        try:
            parsed = parse_email(bytes(data))
        except UnparseableEmail as exc:
            assert exc.reason
        else:
            assert isinstance(parsed.text, str)
            assert all(a.filename for a in parsed.attachments)


# ---------------------------------------------------------------- bounces


def dsn(action: str, status: str, returned: str, *, extra: str = "") -> bytes:
    return message(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.ru>",
        "Subject: Undelivered Mail Returned to Sender",
        "Auto-Submitted: auto-replied",
        'Content-Type: multipart/report; report-type=delivery-status; boundary="r"',
        body=(
            "--r\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            "--r\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.example.ru\r\n{extra}\r\n"
            "Final-Recipient: rfc822; <Nobody@Example.COM>\r\n"
            f"Action: {action}\r\nStatus: {status}\r\n"
            "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.com>: Recipient address\r\n"
            " rejected: User unknown\r\n\r\n"
            "Final-Recipient: rfc822; second@example.com\r\nAction: delayed\r\nStatus: 4.4.1\r\n"
            f"\r\n--r\r\n{returned}\r\n--r--\r\n"
        ),
        sender=False,
    )


RETURNED_MESSAGE = (
    "Content-Type: message/rfc822\r\n\r\nFrom: sales@hub.example\r\n"
    "Message-ID: <outbound-42@hub.example>\r\nSubject: Offer\r\n\r\nOur offer"
)
RETURNED_HEADERS = (
    "Content-Type: text/rfc822-headers\r\n\r\nFrom: sales@hub.example\r\n"
    "Message-ID: <outbound-43@hub.example>\r\nSubject: Offer\r\n"
)


def test_permanent_bounce_with_returned_message() -> None:
    parsed = parse_email(dsn("failed", "5.1.1", RETURNED_MESSAGE))
    bounce = parsed.bounce
    assert bounce is not None
    assert bounce.original_message_id == "outbound-42@hub.example"
    assert bounce.recipients == ["nobody@example.com", "second@example.com"]
    assert (bounce.action, bounce.status, bounce.permanent) == ("failed", "5.1.1", True)
    assert (
        bounce.diagnostic
        == "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown"
    )
    assert parsed.auto_reason == "auto-submitted: auto-replied"
    assert parsed.text == "Your message could not be delivered."
    assert [a.filename for a in parsed.attachments] == ["Offer.eml"]


def test_delayed_bounce_with_returned_headers() -> None:
    parsed = parse_email(dsn("delayed", "4.2.2", RETURNED_HEADERS))
    bounce = parsed.bounce
    assert bounce is not None
    assert bounce.original_message_id == "outbound-43@hub.example"
    assert (bounce.action, bounce.status, bounce.permanent) == ("delayed", "4.2.2", False)
    assert parsed.attachments == []


def test_bounce_falls_back_to_the_envelope_id() -> None:
    returned = "Content-Type: text/plain\r\n\r\nnothing returned"
    parsed = parse_email(
        dsn("failed", "5.0.0", returned, extra="Original-Envelope-Id: <env-7@hub.example>")
    )
    assert parsed.bounce is not None
    assert parsed.bounce.original_message_id == "env-7@hub.example"


def test_bounce_status_from_the_diagnostic_when_missing() -> None:
    parsed = parse_email(dsn("failed", "", RETURNED_MESSAGE))
    assert parsed.bounce is not None and parsed.bounce.status == "5.1.1"


def test_read_receipt_is_automatic() -> None:
    raw = message(
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"',
        body=(
            "--r\r\nContent-Type: text/plain\r\n\r\nThe message was displayed\r\n"
            "--r\r\nContent-Type: message/disposition-notification\r\n\r\n"
            "Final-Recipient: rfc822; client@example.ru\r\nDisposition: manual-action/"
            "MDN-sent-manually; displayed\r\n\r\n--r--\r\n"
        ),
    )
    parsed = parse_email(raw)
    assert parsed.bounce is None
    assert parsed.read_receipt is True
    assert parsed.auto_reason == "read receipt"


# ---------------------------------------------------------------- loop markers


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Auto-Submitted: auto-replied", "auto-submitted: auto-replied"),
        ("Auto-Submitted: auto-generated (failure)", "auto-submitted: auto-generated"),
        ("Auto-Submitted: No", None),
        ("X-Autoreply: yes", "x-autoreply"),
        ("X-Autorespond: Out of office", "x-autorespond"),
        ("Precedence: bulk", "precedence: bulk"),
        ("Precedence: list", "precedence: list"),
        ("Precedence: junk", "precedence: junk"),
        ("Precedence: auto_reply", "precedence: auto_reply"),
        ("Precedence: first-class", None),
        ("List-Id: News <news.example.ru>", "list-id"),
        ("List-Unsubscribe: <mailto:unsubscribe@example.ru>", "list-unsubscribe"),
        ("X-Auto-Response-Suppress: All", "x-auto-response-suppress"),
        ("X-Auto-Response-Suppress: DR, OOF, AutoReply", "x-auto-response-suppress"),
        ("X-Auto-Response-Suppress: DR, RN, NRN", None),
        ("From: MAILER-DAEMON@mx.example.ru", "mailer-daemon sender"),
        ("From: Postmaster <postmaster@example.ru>", "mailer-daemon sender"),
        ("From: MAILER-DAEMON (Mail Delivery System)", "mailer-daemon sender"),
        ("From: noreply@shop.example", "noreply sender"),
        ("From: Shop <no-reply@shop.example>", "noreply sender"),
        ("From: do-not-reply@bank.example", "noreply sender"),
        ("From: DoNotReply@bank.example", "noreply sender"),
        ("From: notifications-noreply@service.example", "noreply sender"),
        ("From: Noah <noah@example.ru>", None),
        ("From: Ivan <ivan.reply@example.ru>", None),
        ("Return-Path: <>", "null return-path"),
        ("X-Mailer: Outlook", None),
    ],
)
def test_loop_markers(header: str, reason: str | None) -> None:
    parsed = parse_email(message(header, body="Текст"))
    assert parsed.auto_reason == reason


def test_own_message_id_domain_is_a_loop() -> None:
    raw = message("Message-ID: <reply-1@Hub.Example>", body="x")
    assert parse_email(raw, own_domains=frozenset({"hub.example"})).auto_reason == "own message id"
    assert parse_email(raw, own_domains=frozenset({"other.example"})).auto_reason is None
    assert parse_email(raw).auto_reason is None


def test_a_bounce_without_a_report_part_is_a_delivery_report_kept_whole() -> None:
    raw = (
        b"From: MAILER DAEMON <>\r\n"
        b"To: support@hub.example\r\n"
        b"Subject: failure notice\r\n"
        b"Content-Type: text/plain\r\n\r\n"
        b"Hi. This is the qmail-send program at mx.example.net.\r\n"
        b"I'm afraid I wasn't able to deliver your message.\r\n\r\n"
        b"From: support@hub.example\r\n"
        b"To: ivan@client.example\r\n"
        b"Subject: Re: order\r\n\r\n"
        b"<ivan@client.example>: recipient reached disk quota\r\n"
    )
    parsed = parse_email(raw)
    assert parsed.from_address is None and parsed.bounce is None
    assert parsed.delivery_report
    assert parsed.display_text == parsed.text
    assert "recipient reached disk quota" in parsed.display_text


def test_a_person_is_no_delivery_report() -> None:
    parsed = parse_email(message("From: Ivan <ivan@client.example>", body="Hi\r\n"))
    assert not parsed.delivery_report
