"""The one i18n mechanism: catalogues, plural forms, fallbacks and the language picker."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.i18n import Catalogue, accepted_languages, lang_of, pick_language

RU = r"""
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

msgid "greeting"
msgstr "Здравствуйте, {name}!"

msgid "minutes"
msgid_plural "minutes"
msgstr[0] "{count} минута"
msgstr[1] "{count} минуты"
msgstr[2] "{count} минут"

msgid "only.ru"
msgstr "Только по-русски {number}"
"""

EN = r"""
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

msgid "greeting"
msgstr "Hello, {who}!"

msgid "minutes"
msgid_plural "minutes"
msgstr[0] "{count} minute"
msgstr[1] "{count} minutes"

msgid "only.en"
msgstr "English only"
"""


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    (tmp_path / "ru.po").write_text(RU, encoding="utf-8")
    (tmp_path / "en.po").write_text(EN, encoding="utf-8")
    return Catalogue(tmp_path)


class TestCatalogue:
    def test_a_message_is_said_in_the_asked_language(self, catalogue: Catalogue) -> None:
        assert catalogue.text("ru", "greeting", name="Анна") == "Здравствуйте, Анна!"

    def test_russian_plurals_follow_russian_rules(self, catalogue: Catalogue) -> None:
        said = [catalogue.plural("ru", "minutes", n) for n in (1, 2, 5, 11, 21, 22, 25)]
        assert said == [
            "1 минута",
            "2 минуты",
            "5 минут",
            "11 минут",
            "21 минута",
            "22 минуты",
            "25 минут",
        ]
        assert catalogue.plural("en", "minutes", 1) == "1 minute"
        assert catalogue.plural("en", "minutes", 2) == "2 minutes"

    def test_a_missing_message_falls_back_to_english_then_to_its_code(
        self, catalogue: Catalogue
    ) -> None:
        assert catalogue.text("ru", "only.en") == "English only"
        assert catalogue.text("ru", "nowhere") == "nowhere"
        assert catalogue.text("de", "only.en") == "English only"

    def test_problems_name_missing_messages_and_different_placeholders(
        self, catalogue: Catalogue
    ) -> None:
        problems = catalogue.problems()
        assert any("en.po: only.ru is missing" in problem for problem in problems)
        assert any("ru.po: only.en is missing" in problem for problem in problems)
        assert any("greeting has different placeholders" in problem for problem in problems)
        assert not any("minutes" in problem for problem in problems)


class TestLanguage:
    @pytest.mark.parametrize(
        ("tag", "lang"),
        [("ru", "ru"), ("ru-RU", "ru"), ("en_GB", "en"), ("EN", "en"), ("de", "ru"), (None, "ru")],
    )
    def test_lang_of(self, tag: str | None, lang: str) -> None:
        assert lang_of(tag) == lang

    def test_accept_language_is_ranked_by_quality(self) -> None:
        assert accepted_languages("de-DE,de;q=0.9,en;q=0.5,ru;q=0.8") == ["ru", "en"]
        assert accepted_languages("en;q=0, ru") == ["ru"]
        assert accepted_languages("") == []

    def test_an_explicit_choice_wins_then_the_browser_then_the_default(self) -> None:
        assert pick_language("en", accept_language="ru") == "en"
        assert pick_language(None, "xx", accept_language="fr, en-US;q=0.7") == "en"
        assert pick_language(None, accept_language="fr", default="en") == "en"
