"""The contact panel over HTTP (the app in-process, both databases): what it shows, editing
name, company and notes (validation, CSRF, visibility), merging a suggested duplicate, and
PATCH /api/v1/contacts/{id} on the same service."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from intake.calls.book import finish_calls, prepare_calls
from intake.calls.events import CallChannel, CallEvent, CallEventKind, EndCause
from intake.calls.journal import record_call_event
from intake.claims.service import ClaimIn, file_claim
from intake.ingest import IntakeConfig
from storage.db import Database
from storage.models import (
    CallDirection,
    ChannelKind,
    Contact,
    ContactMerge,
    Conversation,
    Identity,
    Lead,
    ManagerRole,
    MergeSuggestion,
)
from storage.types import utcnow
from tests.factories import create_channel, create_manager, create_token, ingest_message
from tests.inbox.test_web_pages import HUB, signed_in

HX = {"HX-Request": "true"}


def no_codes(text: str) -> None:
    """Every text of the panel is in the catalogue (a missing one shows its code)."""
    assert not re.search(r">[^<]*\b(panel|keys|identity|channel|status)\.[a-z_.]+", text), text


async def two_people_one_person(hub_db: Database) -> tuple[int, int, int, int]:
    """An email from anna@, a web form with a phone, then a form naming both: one person as
    two contacts and the suggestion to merge them. (contact, its conversation, other, its
    conversation)."""
    mailbox = await create_channel(hub_db, kind=ChannelKind.EMAIL, title="Почта")
    form = await create_channel(hub_db, title="Форма на сайте")
    by_mail = await ingest_message(
        hub_db, mailbox, email="anna@example.ru", name="Анна К.", subject="Счёт на оплату"
    )
    by_form = await ingest_message(hub_db, form, phone="+79123456789", name="Анна")
    both = await ingest_message(
        hub_db, form, email="anna@example.ru", phone="+79123456789", text="Это снова я"
    )
    assert both.contact_id == by_mail.contact_id
    return (
        by_mail.contact_id,
        by_mail.conversation_id,
        by_form.contact_id,
        by_form.conversation_id,
    )


class TestPanel:
    async def test_identities_owner_conversations_and_leads_in_both_languages(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        admin = await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
        contact_id, conversation_id, _other, _ = await two_people_one_person(hub_db)
        async with hub_db.transaction() as session:
            await session.execute(
                update(Contact).where(Contact.id == contact_id).values(owner_id=admin.id)
            )
        await signed_in(client, "olga@example.ru")
        workspace = await client.get(f"/inbox/v/open/c/{conversation_id}")
        # The conversation view loads the panel with htmx.
        assert (
            f'hx-get="/inbox/contacts/{contact_id}/panel?view=open&amp;conversation='
            f'{conversation_id}"' in workspace.text
        )
        assert '<script src="/static/inbox/keys.js" defer></script>' in workspace.text
        assert 'id="keys-help"' in workspace.text and "Горячие клавиши" in workspace.text

        panel = await client.get(
            f"/inbox/contacts/{contact_id}/panel",
            params={"view": "open", "conversation": conversation_id},
            headers=HX,
        )
        assert panel.status_code == 200
        text = panel.text
        assert text.lstrip().startswith("{#") is False and 'id="contact-panel"' in text
        assert "<html" not in text  # a fragment
        assert "anna@example.ru" in text and "+79123456789" in text
        assert "Анна Смирнова" not in text and "Анна Менеджер" in text  # the owner
        assert "Ответственный" in text and "Обращения" in text
        conversations = re.findall(r'data-panel-conversation="(\d+)"', text)
        assert len(conversations) == 2 and str(conversation_id) in conversations
        assert f'href="/inbox/v/open/c/{conversation_id}"' in text
        assert re.search(r"Заявки <span class=\"count\">2</span>", text)
        assert "Возможно, это тот же человек" in text
        no_codes(text)

        no_codes(workspace.text)
        english_page = await client.get(f"/inbox/v/open/c/{conversation_id}?lang=en")
        assert f"conversation={conversation_id}&amp;lang=en" in english_page.text
        assert "Keyboard shortcuts" in english_page.text
        no_codes(english_page.text)
        english = await client.get(f"/inbox/contacts/{contact_id}/panel", params={"lang": "en"})
        assert "Possibly the same person" in english.text and "Owner" in english.text
        # The panel's own links and forms keep the language asked for.
        assert f'hx-get="/inbox/contacts/{contact_id}/edit?view=unassigned&amp;lang=en"' in (
            english.text
        )
        form = await client.get(f"/inbox/contacts/{contact_id}/edit", params={"lang": "en"})
        assert f'hx-post="/inbox/contacts/{contact_id}?lang=en"' in form.text
        assert '<label for="contact-name">Name</label>' in form.text
        no_codes(form.text)
        assert 'href="/inbox/v/unassigned/c/' in english.text  # the default view
        no_codes(english.text)
        assert (await client.get("/inbox/contacts/999999/panel")).status_code == 404
        assert (
            await client.get(f"/inbox/contacts/{contact_id}/panel", params={"view": "x"})
        ).status_code == 404

    async def test_claims_and_calls_a_count_and_the_latest_three(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        await create_manager(hub_db, email="olga@example.ru", role=ManagerRole.ADMIN)
        form = await create_channel(hub_db)
        found = await ingest_message(hub_db, form, phone="+79123456789", name="Анна")
        mailbox = await create_channel(hub_db, kind=ChannelKind.EMAIL)
        async with hub_db.transaction() as session:
            filed = await file_claim(
                session,
                ClaimIn(
                    channel_id=mailbox.id,
                    channel_kind=ChannelKind.EMAIL,
                    external_id="claim-1",
                    reason="billing",
                    description="Дважды списали оплату",
                    phone="8 912 345-67-89",
                ),
            )
        assert filed.claim.contact_id == found.contact_id
        phones = await create_channel(hub_db, kind=ChannelKind.TELEPHONY)
        line = CallChannel(phones.id, ChannelKind.TELEPHONY)
        start = utcnow()
        for n in range(4):
            events = [
                CallEvent(
                    CallEventKind.RINGING,
                    f"call-{n}",
                    CallDirection.INBOUND,
                    "89123456789",
                    "74951234567",
                    at=start.replace(microsecond=0) + timedelta(minutes=n),
                ),
                CallEvent(
                    CallEventKind.ENDED,
                    f"call-{n}",
                    at=start.replace(microsecond=0) + timedelta(minutes=n, seconds=20),
                    answered=False,
                    cause=EndCause.CANCEL,
                ),
            ]
            for event in events:
                async with hub_db.transaction() as session:
                    book = await prepare_calls(session, [(line, event)], IntakeConfig(), start)
                    await record_call_event(session, line, event, IntakeConfig(), book)
                    await finish_calls(book)
        await signed_in(client, "olga@example.ru")
        panel = await client.get(f"/inbox/contacts/{found.contact_id}/panel")
        assert re.search(r'Претензии <span class="count">1</span>', panel.text)
        assert filed.claim.number in panel.text and "зарегистрирована" in panel.text
        assert re.search(r'Звонки <span class="count">4</span>', panel.text)
        assert panel.text.count("Входящий · пропущен") == 3  # the latest three
        no_codes(panel.text)

    async def test_a_manager_sees_only_contacts_of_conversations_they_may_see(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        await create_manager(hub_db, email="olga@example.ru")
        other = await create_manager(hub_db, email="ivan@example.ru")
        (
            contact_id,
            conversation_id,
            other_contact,
            other_conversation,
        ) = await two_people_one_person(hub_db)
        async with hub_db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.contact_id == contact_id)
                .values(assignee_id=other.id)
            )
        await signed_in(client, "olga@example.ru")
        base = f"/inbox/contacts/{contact_id}"
        assert (await client.get(f"{base}/panel")).status_code == 404
        assert (await client.get(f"{base}/edit")).status_code == 404
        assert (await client.get(f"{base}/merge/{other_contact}")).status_code == 404
        edit = await client.post(base, data={"name": "x"}, headers={"Origin": HUB})
        assert edit.status_code == 404
        merge = await client.post(
            f"{base}/merge", data={"other_contact_id": other_contact}, headers={"Origin": HUB}
        )
        assert merge.status_code == 404
        async with hub_db.read() as session:
            assert await session.get(Contact, other_contact) is not None
            assert (await session.get(Contact, contact_id)).name == "Анна К."  # type: ignore[union-attr]
        # The other contact's conversation is unassigned: its panel lists only what she sees.
        panel = await client.get(
            f"/inbox/contacts/{other_contact}/panel",
            params={"conversation": other_conversation},
        )
        assert panel.status_code == 200
        assert re.findall(r'data-panel-conversation="(\d+)"', panel.text) == [
            str(other_conversation)
        ]
        assert f'data-panel-conversation="{conversation_id}"' not in panel.text


class TestEdit:
    async def test_save_validate_and_csrf(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        await create_manager(hub_db, email="olga@example.ru")
        mailbox = await create_channel(hub_db, kind=ChannelKind.EMAIL)
        found = await ingest_message(hub_db, mailbox, email="c@example.ru", name="Клиент")
        contact_id, conversation_id = found.contact_id, found.conversation_id
        await signed_in(client, "olga@example.ru")
        base = f"/inbox/contacts/{contact_id}"

        form = await client.get(f"{base}/edit", params={"conversation": conversation_id})
        assert form.status_code == 200
        assert 'name="csrf_token"' in form.text and 'id="contact-notes"' in form.text
        assert '<label for="contact-name">Имя</label>' in form.text
        no_codes(form.text)

        # No Origin, no token: refused before anything changes; another site: refused too.
        assert (await client.post(base, data={"name": "Взломщик"})).status_code == 403
        forged = await client.post(
            base, data={"name": "Взломщик"}, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403
        wrong_token = await client.post(base, data={"name": "Взломщик", "csrf_token": "nope"})
        assert wrong_token.status_code == 403

        too_long = await client.post(
            base,
            data={"name": "Я" * 201, "company": "ООО «Ромашка»", "notes": "", "view": "open"},
            headers={"Origin": HUB},
        )
        assert too_long.status_code == 422
        assert 'aria-invalid="true"' in too_long.text and "не более 200 символов" in too_long.text
        assert 'value="ООО «Ромашка»"' in too_long.text  # what was typed stays
        async with hub_db.read() as session:
            contact = await session.get(Contact, contact_id)
            assert contact is not None and contact.name == "Клиент" and contact.company is None

        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        saved = await client.post(
            base,
            data={
                "csrf_token": token.group(1),
                "name": "  <b>Анна</b>   Кузнецова ",
                "company": "ООО «Ромашка»",
                "notes": "Звонить после 18:00.\nVIP",
                "view": "open",
                "conversation": str(conversation_id),
            },
        )
        assert saved.status_code == 303
        assert saved.headers["location"] == f"/inbox/v/open/c/{conversation_id}"
        panel = await client.get(f"{base}/panel")
        assert "&lt;b&gt;Анна&lt;/b&gt; Кузнецова" in panel.text and "<b>Анна" not in panel.text
        assert "Звонить после 18:00.\nVIP" in panel.text and "ООО «Ромашка»" in panel.text

        # From htmx beside a conversation: the conversation page again (the name is shown in
        # its list and header too); without one, the panel in place.
        beside = await client.post(
            base,
            data={"name": "Анна К.", "conversation": str(conversation_id), "view": "open"},
            headers=HX | {"Origin": HUB},
        )
        assert beside.status_code == 200 and beside.text == ""
        assert json.loads(beside.headers["hx-location"]) == {
            "path": f"/inbox/v/open/c/{conversation_id}",
            "target": "#workspace",
            "select": "#workspace",
            "swap": "outerHTML show:none",
        }
        # A refusal comes as 200 for htmx to swap.
        swapped = await client.post(
            base, data={"name": "Анна", "company": "", "notes": ""}, headers=HX | {"Origin": HUB}
        )
        assert swapped.status_code == 200 and 'id="contact-panel"' in swapped.text
        assert "<html" not in swapped.text and "ООО «Ромашка»" not in swapped.text
        refused = await client.post(
            base, data={"notes": "x\x07"}, headers=HX | {"Origin": HUB}, params={"lang": "en"}
        )
        assert refused.status_code == 200 and "have control characters" in refused.text
        async with hub_db.read() as session:
            contact = await session.get(Contact, contact_id)
            assert contact is not None
            assert (contact.name, contact.company, contact.notes) == ("Анна", None, None)


class TestMerge:
    async def test_one_click_merge_moves_everything_and_is_recorded(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        olga = await create_manager(hub_db, email="olga@example.ru", name="Ольга Петрова")
        contact_id, conversation_id, other_id, other_conversation = await two_people_one_person(
            hub_db
        )
        async with hub_db.transaction() as session:
            await session.execute(
                update(Contact).where(Contact.id == other_id).values(notes="Любит звонки")
            )
        await signed_in(client, "olga@example.ru")
        base = f"/inbox/contacts/{contact_id}"
        place = {"view": "open", "conversation": conversation_id}
        panel = await client.get(f"{base}/panel", params=place)
        assert f'data-merge="{other_id}"' in panel.text
        assert "+79123456789" in panel.text  # the other contact's identity, with the reason
        assert "one message named identities of both contacts" in panel.text

        confirm = await client.get(f"{base}/merge/{other_id}", params=place)
        assert confirm.status_code == 200
        assert "Объединить «Анна» с «Анна К.»? Сюда перейдут:" in confirm.text
        # The other contact has its phone, one conversation and its lead.
        assert "<li>1 контакт для связи</li>" in confirm.text
        assert "<li>1 обращение</li>" in confirm.text and "<li>1 заявка</li>" in confirm.text
        assert f'name="other_contact_id" value="{other_id}"' in confirm.text
        no_codes(confirm.text)

        done = await client.post(
            f"{base}/merge",
            data={"other_contact_id": other_id, "view": "open", "conversation": conversation_id},
            headers={"Origin": HUB},
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/inbox/v/open/c/{conversation_id}"

        async with hub_db.read() as session:
            assert await session.get(Contact, other_id) is None
            kept = await session.get(Contact, contact_id)
            assert kept is not None and kept.notes == "Любит звонки"
            identities = set(
                await session.scalars(
                    select(Identity.value).where(Identity.contact_id == contact_id)
                )
            )
            assert {"anna@example.ru", "+79123456789"} <= identities
            moved = await session.get(Conversation, other_conversation)
            assert moved is not None and moved.contact_id == contact_id
            leads = set(await session.scalars(select(Lead.contact_id)))
            assert leads == {contact_id}
            [record] = list(await session.scalars(select(ContactMerge)))
            assert record.manager_id == olga.id and record.from_contact_id == other_id
            assert record.moved["conversations"] == [other_conversation]
            assert list(await session.scalars(select(MergeSuggestion))) == []

        after = await client.get(f"{base}/panel", params=place)
        assert "Возможно, это тот же человек" not in after.text
        listed = re.findall(r'data-panel-conversation="(\d+)"', after.text)
        # Her email, her two web-form requests (one of them the other contact's till now).
        assert len(listed) == 3 and {str(conversation_id), str(other_conversation)} < set(listed)
        assert "Объединены с этим клиентом" in after.text
        assert "Ольга Петрова объединил(а) «Анна»" in after.text
        assert "1 обращение" in after.text and "+79123456789" in after.text
        no_codes(after.text)

        # Merged already: said in plain words, nothing else happens.
        again = await client.post(
            f"{base}/merge",
            data={"other_contact_id": other_id, "view": "open"},
            headers=HX | {"Origin": HUB},
        )
        assert again.status_code == 200
        assert "второй контакт уже объединён или удалён" in again.text


class TestPatchContact:
    async def test_change_clear_and_refuse(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        channel = await create_channel(hub_db)
        found = await ingest_message(hub_db, channel, email="c@example.ru", name="Клиент")
        url = f"/api/v1/contacts/{found.contact_id}"
        changed = await client.patch(
            url,
            json={"name": " Анна ", "company": "ООО «Ромашка»", "notes": "строка 1\nстрока 2"},
            headers=admin_headers,
        )
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert (body["name"], body["company"], body["notes"]) == (
            "Анна",
            "ООО «Ромашка»",
            "строка 1\nстрока 2",
        )
        assert body["identities"][0]["value"] == "c@example.ru"
        kept = await client.patch(url, json={"company": ""}, headers=admin_headers)
        assert kept.json()["name"] == "Анна" and kept.json()["company"] is None
        assert (await client.get(url, headers=admin_headers)).json()["notes"] == (
            "строка 1\nстрока 2"
        )

        long = await client.patch(url, json={"name": "Я" * 201}, headers=admin_headers)
        assert long.status_code == 422 and long.json()["error"] == "invalid_name"
        notes = await client.patch(url, json={"notes": "a\x00b"}, headers=admin_headers)
        assert notes.status_code == 422
        extra = await client.patch(url, json={"owner_id": 1}, headers=admin_headers)
        assert extra.status_code == 422
        missing = await client.patch("/api/v1/contacts/999999", json={}, headers=admin_headers)
        assert missing.status_code == 404

    async def test_a_managers_token_changes_only_contacts_they_may_see(
        self, client: httpx.AsyncClient, hub_db: Database
    ) -> None:
        ivan = await create_manager(hub_db, email="ivan@example.ru")
        olga = await create_manager(hub_db, email="olga@example.ru")
        token, _ = await create_token(hub_db, manager_id=olga.id)
        headers = {"Authorization": f"Bearer {token}"}
        channel = await create_channel(hub_db)
        found = await ingest_message(hub_db, channel, email="c@example.ru")
        url = f"/api/v1/contacts/{found.contact_id}"
        assert (await client.patch(url, json={"name": "Анна"}, headers=headers)).status_code == 200
        async with hub_db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == found.conversation_id)
                .values(assignee_id=ivan.id)
            )
        hidden = await client.patch(url, json={"name": "Борис"}, headers=headers)
        assert hidden.status_code == 404

    async def test_a_managers_get_sees_what_their_patch_may_change(
        self, client: httpx.AsyncClient, hub_db: Database, admin_headers: dict[str, str]
    ) -> None:
        ivan = await create_manager(hub_db, email="ivan@example.ru")
        olga = await create_manager(hub_db, email="olga@example.ru")
        token, _ = await create_token(hub_db, manager_id=olga.id)
        headers = {"Authorization": f"Bearer {token}"}
        channel = await create_channel(hub_db)
        found = await ingest_message(hub_db, channel, email="c@example.ru")
        url = f"/api/v1/contacts/{found.contact_id}"
        seen = await client.get(url, headers=headers)  # unassigned: every manager sees it
        assert seen.status_code == 200 and seen.json()["id"] == found.contact_id
        async with hub_db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == found.conversation_id)
                .values(assignee_id=ivan.id)
            )
        hidden = await client.get(url, headers=headers)
        assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"
        assert (await client.patch(url, json={"name": "Борис"}, headers=headers)).status_code == 404
        assert (await client.get(url, headers=admin_headers)).status_code == 200
        # Her own contact she sees (and may change) without a conversation of hers.
        async with hub_db.transaction() as session:
            await session.execute(
                update(Contact).where(Contact.id == found.contact_id).values(owner_id=olga.id)
            )
        owned = await client.get(url, headers=headers)
        assert owned.status_code == 200 and owned.json()["id"] == found.contact_id
        assert (await client.patch(url, json={"name": "Анна"}, headers=headers)).status_code == 200
        gone = await client.get("/api/v1/contacts/999999", headers=headers)
        assert gone.status_code == 404
