"""The workspace's texts and how it shows message bodies (no server needed)."""

from __future__ import annotations

from inbox.web.common import CATALOGUE
from inbox.web.render import email_document, inert_html, split_quote


def test_every_page_text_exists_in_both_languages() -> None:
    assert CATALOGUE.problems() == []
    assert CATALOGUE.plural("ru", "age.minutes", 5) == "5 минут назад"
    assert CATALOGUE.plural("en", "age.minutes", 1) == "1 minute ago"


def test_quoted_history_is_folded_apart_from_the_new_text() -> None:
    body = split_quote(
        "Да, подходит.\n\n7 дек. 2026 г., в 10:00, Анна <anna@example.ru> написал(а):\n"
        "> Вам подходит пятница?\n> Анна"
    )
    assert body.text == "Да, подходит."
    assert "Вам подходит пятница?" in body.quoted
    assert split_quote("Просто текст").quoted == ""


def test_email_html_is_inert() -> None:
    html = (
        '<p onclick="x()">Hi</p><script>alert(1)</script>'
        '<img src="https://tracker.example.net/p.png" alt="p"><a href="javascript:x()">a</a>'
        '<iframe src="https://evil.example"></iframe><style>body{display:none}</style>'
    )
    clean = inert_html(html)
    for hostile in ("onclick", "<script", "alert", "tracker.example.net", "javascript:", "<iframe"):
        assert hostile not in clean
    assert "display:none" not in clean
    assert "<p>Hi</p>" in clean
    document = email_document(html)
    assert document.startswith("<!doctype html>") and "<p>Hi</p>" in document
