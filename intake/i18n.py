"""One way to say things in the reader's language: gettext catalogues, Russian and English.

Every text a client or a manager reads is a message of a catalogue: a directory holding one
gettext `<lang>.po` file per language (`ru.po`, `en.po`) beside the code that says it. The
message id is a short code (`claim.status_changed`), the translation a `str.format` template
(`{number}`); a plural message has `msgid_plural` and the language's plural forms, so Russian
says "1 минута, 2 минуты, 5 минут" by its own rule. Translators edit the `.po` files with any
gettext tool; nothing is compiled at build time (Babel reads them when first used).

A text missing in the asked language falls back to English, then to its code, so a missing
translation shows as a readable code, never as an error in front of a client. The tests check
that every catalogue has each message in both languages with the same placeholders.

`pick_language` is the one language picker: an explicit choice first (a `?lang=` parameter, the
client's or manager's stored setting), then the browser's `Accept-Language`, then the default;
`other_language` is what a language switch offers. A module says its texts through its
catalogue's `text` / `plural` (often bound to a short name: `t = CATALOGUE.text`); a template
gets both from `for_templates(lang)`. `catalogues_under` finds every catalogue of a tree, so one
test checks them all, and the codes the code says, whichever part they belong to.
"""

from __future__ import annotations

import gettext
import io
import string
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Literal

from babel.messages.catalog import Catalog as BabelCatalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

Lang = Literal["ru", "en"]
LANGS: tuple[Lang, ...] = ("ru", "en")
DEFAULT_LANG: Lang = "ru"
FALLBACK_LANG: Lang = "en"


def lang_of(tag: str | None, default: Lang = DEFAULT_LANG) -> Lang:
    """`ru` or `en` from an IETF tag (`ru`, `en-GB`, `ru_RU`); any other tag gives `default`."""
    return _known(tag) or default


def _known(tag: str | None) -> Lang | None:
    value = (tag or "").strip().lower().replace("_", "-")
    for lang in LANGS:
        if value == lang or value.startswith(lang + "-"):
            return lang
    return None


def accepted_languages(header: str | None) -> list[Lang]:
    """The languages of an `Accept-Language` header that we speak, most preferred first."""
    ranked: list[tuple[float, int, Lang]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.partition(";")
        lang = _known(tag)
        if lang is None:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, lang))
    seen: list[Lang] = []
    for _quality, _position, lang in sorted(ranked):
        if lang not in seen:
            seen.append(lang)
    return seen


def pick_language(
    *choices: str | None, accept_language: str | None = None, default: Lang = DEFAULT_LANG
) -> Lang:
    """The first explicit choice we speak, else the browser's preference, else `default`."""
    for choice in choices:
        lang = _known(choice)
        if lang is not None:
            return lang
    preferred = accepted_languages(accept_language)
    return preferred[0] if preferred else default


def other_language(lang: str) -> Lang:
    """The language a switch offers to a reader of `lang`: the other one we speak."""
    return "en" if lang_of(lang) == "ru" else "ru"


class Catalogue:
    """The messages of one part of omnihub, read from `<directory>/<lang>.po`."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @cached_property
    def _catalogs(self) -> dict[Lang, BabelCatalog]:
        loaded: dict[Lang, BabelCatalog] = {}
        for lang in LANGS:
            path = self.directory / f"{lang}.po"
            if not path.exists():  # said by problems(); its messages fall back meanwhile
                loaded[lang] = BabelCatalog(locale=lang)
                continue
            with path.open("rb") as source:
                loaded[lang] = read_po(source, locale=lang)
        return loaded

    @cached_property
    def _codes(self) -> dict[Lang, frozenset[str]]:
        return {
            lang: frozenset(_code(m.id) for m in catalog if m.id and m.string)
            for lang, catalog in self._catalogs.items()
        }

    @cached_property
    def _translations(self) -> dict[Lang, gettext.GNUTranslations]:
        loaded: dict[Lang, gettext.GNUTranslations] = {}
        for lang, catalog in self._catalogs.items():
            compiled = io.BytesIO()
            write_mo(compiled, catalog)
            compiled.seek(0)
            loaded[lang] = gettext.GNUTranslations(compiled)
        for lang in LANGS:
            if lang != FALLBACK_LANG:
                loaded[lang].add_fallback(loaded[FALLBACK_LANG])
        return loaded

    def translations(self, lang: str) -> gettext.GNUTranslations:
        """The gettext object of `lang` (English for a language we do not speak)."""
        return self._translations[_known(lang) or FALLBACK_LANG]

    def text(self, lang: str, code: str, /, **values: object) -> str:
        """The message `code` in `lang`, its `{placeholders}` filled from `values`."""
        template = self.translations(lang).gettext(code)
        return template.format(**values) if values else template

    def plural(self, lang: str, code: str, count: int, /, **values: object) -> str:
        """The form of plural message `code` for `count` (`{count}` is filled too)."""
        template = self.translations(lang).ngettext(code, code, count)
        return template.format(count=count, **values)

    def for_templates(self, lang: str) -> dict[str, Callable[..., str]]:
        """`t(code, **values)` and `plural(code, count, **values)` in `lang`, for a template."""

        def said(code: str, /, **values: object) -> str:
            return self.text(lang, code, **values)

        def said_for(code: str, count: int, /, **values: object) -> str:
            return self.plural(lang, code, count, **values)

        return {"t": said, "plural": said_for}

    def has(self, lang: str, code: str) -> bool:
        """Whether `lang`'s own file has the message (no fallback)."""
        return code in self._codes[_known(lang) or FALLBACK_LANG]

    def codes(self, lang: str) -> set[str]:
        """The message codes `lang`'s own file translates."""
        return set(self._codes[_known(lang) or FALLBACK_LANG])

    def plural_codes(self) -> set[str]:
        """The codes of plural messages (said with `plural()`, not `text()`), in any language."""
        return {
            _code(message.id)
            for catalog in self._catalogs.values()
            for message in catalog
            if message.id and message.pluralizable
        }

    def problems(self) -> list[str]:
        """What a translator must fix: messages missing in a language, placeholders that differ."""
        found: list[str] = []
        templates: dict[Lang, dict[str, set[str]]] = {}
        for lang, catalog in self._catalogs.items():
            if not (self.directory / f"{lang}.po").exists():
                found.append(f"{self.directory}/{lang}.po is missing")
            templates[lang] = {}
            for message in catalog:
                if not message.id:
                    continue
                code = _code(message.id)
                forms = [message.string] if isinstance(message.string, str) else message.string
                if not forms or not all(forms):
                    found.append(f"{self.directory}/{lang}.po: {code} is not translated")
                    continue
                templates[lang][code] = set().union(*(_placeholders(form) for form in forms))
        all_codes = set().union(*(set(table) for table in templates.values()))
        for code in sorted(all_codes):
            present = {lang: templates[lang].get(code) for lang in LANGS}
            for lang, names in present.items():
                if names is None:
                    found.append(f"{self.directory}/{lang}.po: {code} is missing")
            named = [names for names in present.values() if names is not None]
            if len(named) == len(LANGS) and any(names != named[0] for names in named):
                found.append(f"{self.directory}: {code} has different placeholders")
        return found


def catalogues_under(root: Path | str) -> list[Catalogue]:
    """Every catalogue in the tree: each directory holding a `<lang>.po` of ours."""
    directories = {
        path.parent
        for lang in LANGS
        for path in Path(root).rglob(f"{lang}.po")
        if not any(part.startswith(".") for part in path.relative_to(root).parts)
    }
    return [Catalogue(directory) for directory in sorted(directories)]


def _code(message_id: str | Sequence[str]) -> str:
    return message_id if isinstance(message_id, str) else message_id[0]


def _placeholders(template: str) -> set[str]:
    return {name for _text, name, _spec, _conv in string.Formatter().parse(template) if name}


def problems_of(catalogues: Iterable[Catalogue]) -> list[str]:
    """Every catalogue's problems, for one test over the whole project."""
    return [problem for catalogue in catalogues for problem in catalogue.problems()]
