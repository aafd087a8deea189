"""Normalising identities: one person is one (kind, value) whatever the spelling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intake.identities import (
    IdentityValue,
    normalize,
    normalize_email,
    normalize_phone,
    normalize_telegram,
)
from storage.errors import InvalidInput
from storage.models import IdentityKind


class TestNormalizeEmail:
    def test_case_is_folded(self) -> None:
        assert normalize_email("Ivan.Petrov@Example.RU") == "ivan.petrov@example.ru"

    def test_surrounding_whitespace_is_dropped(self) -> None:
        assert normalize_email("  ivan@example.ru \n") == "ivan@example.ru"

    def test_plus_tag_is_kept(self) -> None:
        # A tag may route mail to a different person or folder: never stripped.
        assert normalize_email("ivan+shop@example.ru") == "ivan+shop@example.ru"

    def test_cyrillic_domain_is_kept_in_unicode(self) -> None:
        assert normalize_email("ivan@ПРИМЕР.РФ") == "ivan@пример.рф"

    def test_punycode_domain_is_the_same_identity_as_unicode(self) -> None:
        assert normalize_email("Ivan@XN--E1AFMKFD.XN--P1AI") == normalize_email("ivan@пример.рф")

    def test_cyrillic_local_part_is_lowercased(self) -> None:
        assert normalize_email("ИВАН@пример.рф") == "иван@пример.рф"

    def test_lowercasing_does_not_rewrite_letters(self) -> None:
        # casefold() turns "ß" into "ss": a reply would go to another mailbox.
        assert normalize_email("Straße@example.de") == "straße@example.de"

    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "   ",
            "ivan",
            "ivan@",
            "@example.ru",
            "ivan@example",
            "ivan@@example.ru",
            "ivan@example.ru.",
            "Ivan Petrov <ivan@example.ru>",
            "ivan petrov@example.ru",
        ],
    )
    def test_invalid_address_is_refused(self, raw: str) -> None:
        with pytest.raises(InvalidInput) as info:
            normalize_email(raw)
        assert info.value.code == "invalid_email"


RU_MOBILE = "+79123456789"


class TestNormalizePhone:
    @pytest.mark.parametrize(
        "raw",
        [
            "8 (912) 345-67-89",
            "+7 912 345 6789",
            "89123456789",
            "79123456789",
            "9123456789",
            "8-912-345-67-89",
            "+7 (912) 345-67-89 ",
            "00 7 912 345 67 89",
            "0079123456789",
        ],
    )
    def test_russian_spellings_are_one_number(self, raw: str) -> None:
        assert normalize_phone(raw) == RU_MOBILE

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("+44 20 7946 0958", "+442079460958"),
            ("+1 650 253 0000", "+16502530000"),
            ("0044 20 7946 0958", "+442079460958"),
            ("+49 30 901820", "+4930901820"),
        ],
    )
    def test_international_number_ignores_the_region(self, raw: str, expected: str) -> None:
        assert normalize_phone(raw, "RU") == expected
        assert normalize_phone(raw, "GB") == expected

    @pytest.mark.parametrize(
        ("raw", "region", "expected"),
        [
            ("493055571600", "RU", "+493055571600"),  # as Zammad's CTI examples send it
            ("79123456789", "GB", RU_MOBILE),
            ("442079460958", "RU", "+442079460958"),
        ],
    )
    def test_international_digits_without_plus(self, raw: str, region: str, expected: str) -> None:
        # Phone systems (PBX webhooks) drop the "+"; a national reading wins when valid.
        assert normalize_phone(raw, region) == expected

    def test_a_valid_national_reading_wins_over_the_international_one(self) -> None:
        assert normalize_phone("89123456789", "RU") == RU_MOBILE
        assert normalize_phone("+7 912 345-67-89", "RU") == normalize_phone("89123456789", "RU")

    def test_toll_free_number(self) -> None:
        assert normalize_phone("8 800 555 35 35") == "+78005553535"

    def test_national_number_uses_the_region(self) -> None:
        assert normalize_phone("020 7946 0958", "GB") == "+442079460958"
        assert normalize_phone("020 7946 0958", "gb") == "+442079460958"

    def test_russian_trunk_prefix_is_not_valid_in_another_region(self) -> None:
        with pytest.raises(InvalidInput):
            normalize_phone("8 (912) 345-67-89", "GB")

    def test_same_digits_mean_different_numbers_by_region(self) -> None:
        assert normalize_phone("9123456789", "RU") == RU_MOBILE
        assert normalize_phone("9123456789", "GB") == "+449123456789"

    @pytest.mark.parametrize(
        "raw",
        [
            "",
            "  ",
            "abc",
            "12345",
            "+8 912",
            "+7 912 345 67 8",
            "+7 912 345 67 890 1",
            "+7 000 000 00 00",
            "8 (912) 345-67-89-00-00-00",
        ],
    )
    def test_invalid_number_is_refused(self, raw: str) -> None:
        with pytest.raises(InvalidInput) as info:
            normalize_phone(raw)
        assert info.value.code == "invalid_phone"

    def test_unknown_region_is_refused(self) -> None:
        with pytest.raises(InvalidInput):
            normalize_phone("89123456789", "XX")


def _spellings() -> st.SearchStrategy[str]:
    """Ways people write +7 912 345-67-89: prefixes, separators, brackets, spaces."""
    digits = "9123456789"

    @st.composite
    def build(draw: st.DrawFn) -> str:
        prefix = draw(st.sampled_from(["+7", "8", "7", "007", "00 7", "+ 7", ""]))
        groups = draw(
            st.sampled_from(
                [
                    (3, 3, 2, 2),
                    (3, 3, 4),
                    (3, 7),
                    (10,),
                    (3, 2, 3, 2),
                ]
            )
        )
        parts, position = [], 0
        for size in groups:
            parts.append(digits[position : position + size])
            position += size
        if draw(st.booleans()):
            parts[0] = f"({parts[0]})"
        separators = st.sampled_from([" ", "-", ".", "", "  "])
        body = parts[0]
        for part in parts[1:]:
            body += draw(separators) + part
        between = draw(st.sampled_from([" ", "", "-"]))
        padding = draw(st.sampled_from(["", " ", "\t", " \n"]))
        return padding + prefix + between + body + padding

    return build()


class TestPhoneProperty:
    @given(_spellings())
    def test_every_spelling_of_a_russian_mobile_is_one_e164(self, raw: str) -> None:
        assert normalize_phone(raw, "RU") == RU_MOBILE


class TestNormalizeTelegram:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("123456789", "123456789"),
            (123456789, "123456789"),
            (" 42 ", "42"),
            ("0042", "42"),
            ("7000000000", "7000000000"),
        ],
    )
    def test_user_id_is_decimal_text(self, raw: str | int, expected: str) -> None:
        assert normalize_telegram(raw) == expected

    @pytest.mark.parametrize(
        "raw",
        ["", " ", "-", "+5", "12a", "@ivan_petrov", "1.5", "1e9", "²", "١٢٣", "9" * 40],
    )
    def test_non_id_is_refused(self, raw: str) -> None:
        with pytest.raises(InvalidInput) as info:
            normalize_telegram(raw)
        assert info.value.code == "invalid_telegram_id"


class TestNormalize:
    def test_dispatches_by_kind(self) -> None:
        assert normalize("email", "A@Example.ru") == IdentityValue(
            IdentityKind.EMAIL, "a@example.ru"
        )
        assert normalize(IdentityKind.PHONE, "8 912 345 67 89") == IdentityValue(
            IdentityKind.PHONE, RU_MOBILE
        )
        assert normalize("telegram", "077") == IdentityValue(IdentityKind.TELEGRAM, "77")

    def test_region_is_passed_to_phones(self) -> None:
        assert normalize("phone", "020 7946 0958", "GB").value == "+442079460958"

    def test_web_session_is_kept_as_given(self) -> None:
        assert normalize("web", "  sess-AbC  ") == IdentityValue(IdentityKind.WEB, "sess-AbC")

    @pytest.mark.parametrize("raw", ["", "   ", "x" * 321])
    def test_invalid_web_session_is_refused(self, raw: str) -> None:
        with pytest.raises(InvalidInput):
            normalize("web", raw)

    def test_unknown_kind_is_refused(self) -> None:
        with pytest.raises(ValueError, match="fax"):
            normalize("fax", "123")
