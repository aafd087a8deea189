"""Payloads and configuration of the web-form channel."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from channels.greeting import GreetingConfig
from channels.webform.texts import FORM
from intake.i18n import Catalogue

FieldValue = Annotated[str, StringConstraints(max_length=2000)]


class WebFormSubmission(BaseModel):
    """A submission as a site's script posts it (JSON); browser posts are mapped onto it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    phone: Annotated[str, StringConstraints(max_length=50)] | None = None
    message: Annotated[str, StringConstraints(max_length=10000)] | None = None
    fields: dict[Annotated[str, StringConstraints(max_length=64)], FieldValue] = Field(
        default_factory=dict, max_length=50
    )
    # The person agreed to the processing of their personal data (the form's consent box).
    consent: bool | None = None


FieldType = Literal["text", "email", "tel", "textarea", "select", "checkbox"]
STANDARD_FIELDS = ("name", "email", "phone", "message")


class LocalizedText(BaseModel):
    ru: str = ""
    en: str = ""

    @classmethod
    def said(cls, catalogue: Catalogue, code: str) -> LocalizedText:
        """The catalogue's message `code` in each language (a default the form may change)."""
        return cls(ru=catalogue.text("ru", code), en=catalogue.text("en", code))

    def get(self, lang: str) -> str:
        value: str = getattr(self, lang, "") or self.ru or self.en
        return value


class ConsentConfig(BaseModel):
    """The consent to process personal data (152-FZ): a box the person must tick, next to
    the link to the privacy policy; what was agreed to is stored with the lead."""

    required: bool = False
    policy_url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    # Which wording of the consent and the policy the person saw: bump it when they change.
    version: Annotated[str, StringConstraints(min_length=1, max_length=50)] = "1"
    text: LocalizedText = Field(default_factory=lambda: LocalizedText.said(FORM, "consent.text"))
    link_text: LocalizedText = Field(
        default_factory=lambda: LocalizedText.said(FORM, "consent.link_text")
    )

    @field_validator("policy_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://", "/")):
            raise ValueError("policy_url must be an http(s) URL or a path on this site")
        return value or None

    def wording(self, lang: str) -> str:
        """The consent as the person read it, the policy named (stored with the lead)."""
        return f"{self.text.get(lang)} {self.link_text.get(lang)}".strip()


class FormField(BaseModel):
    """One input of a form. Standard names map onto the contact and the message."""

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
    type: FieldType = "text"
    label: LocalizedText
    required: bool = False
    max_length: int = Field(default=2000, ge=1, le=10000)
    options: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _not_the_honeypot(cls, name: str) -> str:
        if name == "website":
            raise ValueError("'website' is the honeypot every form carries; choose another name")
        return name


class FormConfig(BaseModel):
    """A web form channel's configuration, stored as the channel's config."""

    title: LocalizedText
    intro: LocalizedText = LocalizedText()
    thanks: LocalizedText
    fields: list[FormField]
    # Contact details required beyond the per-field flags: "email_or_phone" means one of them.
    require_contact: Literal["none", "email", "phone", "email_or_phone"] = "email_or_phone"
    allowed_origins: list[str] = Field(default_factory=list)
    language: Literal["ru", "en"] = "ru"
    min_fill_seconds: float = Field(default=2.0, ge=0, le=600)
    max_files: int = Field(default=5, ge=0, le=20)
    max_file_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    accept_files: bool = True
    consent: ConsentConfig = Field(default_factory=ConsentConfig)
    # The thanks page's in-hours or out-of-hours line (channels.greeting).
    greeting: GreetingConfig = Field(default_factory=GreetingConfig)


def default_form_config() -> FormConfig:
    """The form `default` every hub has out of the box."""
    fields = (("name", "text", 200), ("email", "email", 320), ("phone", "tel", 50))
    return FormConfig(
        title=LocalizedText.said(FORM, "default.title"),
        intro=LocalizedText.said(FORM, "default.intro"),
        thanks=LocalizedText.said(FORM, "default.thanks"),
        fields=[
            *(
                FormField(
                    name=name,
                    type=kind,
                    label=LocalizedText.said(FORM, f"field.{name}"),
                    max_length=length,
                )
                for name, kind, length in fields
            ),
            FormField(
                name="message",
                type="textarea",
                label=LocalizedText.said(FORM, "field.message"),
                required=True,
                max_length=10000,
            ),
        ],
        require_contact="email_or_phone",
    )
