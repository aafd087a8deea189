"""The one i18n mechanism: catalogues, plural forms, fallbacks and the language picker."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from intake.i18n import (
    Catalogue,
    accepted_languages,
    catalogues_under,
    lang_of,
    other_language,
    pick_language,
    problems_of,
)

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

    def test_templates_get_text_and_plural_in_one_language(self, catalogue: Catalogue) -> None:
        said = catalogue.for_templates("ru")
        assert said["t"]("greeting", name="Анна") == "Здравствуйте, Анна!"
        assert said["plural"]("minutes", 3) == "3 минуты"

    def test_plural_codes_are_told_apart(self, catalogue: Catalogue) -> None:
        assert catalogue.plural_codes() == {"minutes"}


class TestCataloguesUnder:
    def test_every_directory_with_a_po_file_is_a_catalogue(self, tmp_path: Path) -> None:
        for place in ("a/locale", "b/locale/form", ".hidden/locale"):
            (tmp_path / place).mkdir(parents=True)
            (tmp_path / place / "ru.po").write_text(RU, encoding="utf-8")
        (tmp_path / "b/locale/form/en.po").write_text(EN, encoding="utf-8")
        catalogues = catalogues_under(tmp_path)
        found = [c.directory.relative_to(tmp_path).as_posix() for c in catalogues]
        assert found == ["a/locale", "b/locale/form"]
        # A language's file missing is a problem, not an error; its messages fall back.
        assert any("a/locale/en.po is missing" in problem for problem in catalogues[0].problems())
        assert catalogues[0].text("en", "greeting", name="Ann") == "greeting"
        assert catalogues[1].problems() != []  # the sample's placeholders differ


class TestLanguage:
    @pytest.mark.parametrize(
        ("tag", "lang"),
        [("ru", "ru"), ("ru-RU", "ru"), ("en_GB", "en"), ("EN", "en"), ("de", "ru"), (None, "ru")],
    )
    def test_lang_of(self, tag: str | None, lang: str) -> None:
        assert lang_of(tag) == lang

    @pytest.mark.parametrize(("lang", "other"), [("ru", "en"), ("en-GB", "ru"), ("de", "en")])
    def test_a_switch_offers_the_other_language(self, lang: str, other: str) -> None:
        assert other_language(lang) == other

    def test_accept_language_is_ranked_by_quality(self) -> None:
        assert accepted_languages("de-DE,de;q=0.9,en;q=0.5,ru;q=0.8") == ["ru", "en"]
        assert accepted_languages("en;q=0, ru") == ["ru"]
        assert accepted_languages("") == []

    def test_an_explicit_choice_wins_then_the_browser_then_the_default(self) -> None:
        assert pick_language("en", accept_language="ru") == "en"
        assert pick_language(None, "xx", accept_language="fr, en-US;q=0.7") == "en"
        assert pick_language(None, accept_language="fr", default="en") == "en"


ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("storage", "intake", "routing", "channels", "bots", "inbox", "hub")
# The catalogue whose `t(...)` and `plural(...)` each template is rendered with.
TEMPLATES = {
    "channels/webform/templates/form.html": "channels/webform/locale/form",
    "channels/webform/templates/thanks.html": "channels/webform/locale/form",
    "channels/webform/templates/claim_form.html": "channels/webform/locale/claims",
    "channels/webform/templates/claim_thanks.html": "channels/webform/locale/claims",
}


def _project_catalogues() -> list[Catalogue]:
    return [found for package in PACKAGES for found in catalogues_under(ROOT / package)]


def _speakers(module: object) -> dict[str, tuple[Catalogue, str | None]]:
    """The module's names bound to a catalogue (method None) or to its `text` / `plural`."""
    found: dict[str, tuple[Catalogue, str | None]] = {}
    for name, value in vars(module).items():
        if isinstance(value, Catalogue):
            found[name] = (value, None)
        owner = getattr(value, "__self__", None)
        if isinstance(owner, Catalogue) and value.__name__ in ("text", "plural"):
            found[name] = (owner, value.__name__)
    return found


def _said_in_code() -> list[tuple[str, Catalogue, str, str]]:
    """(where, catalogue, method, code) for every literal code given to a catalogue's call."""
    said: list[tuple[str, Catalogue, str, str]] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts or path.name == "__main__.py":
                continue  # Alembic scripts run only inside Alembic; __main__ runs a program
            relative = path.relative_to(ROOT)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            module = importlib.import_module(".".join(relative.with_suffix("").parts))
            speakers = _speakers(module)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or len(node.args) < 2:
                    continue
                func, speaker, method = node.func, None, None
                if isinstance(func, ast.Name) and func.id in speakers:
                    speaker, method = speakers[func.id]
                elif (
                    isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and func.value.id in speakers
                    and func.attr in ("text", "plural")
                ):
                    speaker, method = speakers[func.value.id][0], func.attr
                code = node.args[1]
                if speaker is None or method is None or not isinstance(code, ast.Constant):
                    continue
                said.append((f"{relative}:{node.lineno}", speaker, method, str(code.value)))
    for template, directory in TEMPLATES.items():
        source = (ROOT / template).read_text(encoding="utf-8")
        for match in re.finditer(r"""\b(t|plural)\(\s*["']([^"']+)["']""", source):
            method = "text" if match[1] == "t" else "plural"
            said.append((template, Catalogue(ROOT / directory), method, match[2]))
    return said


class TestProjectCatalogues:
    def test_every_catalogue_is_whole_in_both_languages(self) -> None:
        catalogues = _project_catalogues()
        assert len(catalogues) >= 5
        assert problems_of(catalogues) == []

    def test_every_code_said_in_code_is_in_its_catalogue(self) -> None:
        said = _said_in_code()
        assert len(said) > 100  # the walk finds the calls
        wrong = []
        for where, catalogue, method, code in said:
            plural = code in catalogue.plural_codes()
            known = all(catalogue.has(lang, code) for lang in ("ru", "en"))
            if not known or plural != (method == "plural"):
                wrong.append(f"{where}: {method}({code!r}) in {catalogue.directory}")
        assert wrong == []
