"""Finishing touches of the workspace over HTTP: a conversation's claims linked from its
header (and back), the top bar's button for the shortcuts, a note's @mentions marked."""

from __future__ import annotations

import re

import httpx

from storage.db import Database
from storage.models import ChannelKind
from tests.factories import (
    create_channel,
    create_claim,
    create_manager,
    ingest_message,
    set_language,
)
from tests.inbox.test_web_pages import HUB, signed_in


async def test_a_conversation_links_to_its_claim_and_the_claim_back(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru")
    channel = await create_channel(hub_db, kind=ChannelKind.EMAIL)
    claim = await create_claim(hub_db, channel)
    plain = await ingest_message(hub_db, channel, email="other@example.ru", text="Просто вопрос")
    assert claim.conversation_id is not None
    await signed_in(client, "olga@example.ru")

    page = await client.get(f"/inbox/v/open/c/{claim.conversation_id}")
    assert page.status_code == 200
    head = page.text.split('class="pane-head conv-head"', 1)[1].split("</header>", 1)[0]
    assert re.findall(r'<a href="(/claims/[^"]+)"[^>]*>([^<]+)</a>', head) == [
        (f"/claims/{claim.number}", f"Претензия {claim.number}")
    ]
    back = await client.get(f"/claims/{claim.number}")
    assert f'href="/inbox/v/open/c/{claim.conversation_id}"' in back.text

    without = await client.get(f"/inbox/v/open/c/{plain.conversation_id}")
    assert without.status_code == 200 and "/claims/CLM-" not in without.text


async def test_the_top_bar_has_a_labelled_button_for_the_shortcuts(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    olga = await create_manager(hub_db, email="olga@example.ru")
    await set_language(hub_db, olga.id, "en")
    await signed_in(client, "olga@example.ru")
    page = await client.get("/inbox/v/open")
    button = re.search(r"<button [^>]*data-keys-open[^>]*>", page.text)
    assert button is not None
    assert 'aria-label="Keyboard shortcuts"' in button.group(0)
    assert 'aria-controls="keys-help"' in button.group(0)
    assert 'id="keys-help"' in page.text  # the dialog it opens
    # A page without the shortcuts' dialog has no button for it.
    claims = await client.get("/claims")
    assert claims.status_code == 200 and "data-keys-open" not in claims.text


async def test_a_notes_mentions_are_marked_and_markup_stays_text(
    client: httpx.AsyncClient, hub_db: Database
) -> None:
    await create_manager(hub_db, email="olga@example.ru", name="Ольга")
    irina = await create_manager(hub_db, email="irina@example.ru", name="Ирина Петрова")
    await create_manager(hub_db, email="b@example.ru", name="<b>Боб</b>")
    form = await create_channel(hub_db)
    taken = await ingest_message(hub_db, form, email="c@example.ru", text="@Ирина Петрова клиент")
    await signed_in(client, "olga@example.ru")
    note = "@ирина петрова и @<b>Боб</b>, <script>alert(1)</script> @Ольга"
    sent = await client.post(
        f"/inbox/c/{taken.conversation_id}/messages",
        data={"text": note, "kind": "note", "mentions": str(irina.id)},
        headers={"Origin": HUB},
    )
    assert sent.status_code == 303, sent.text
    page = (await client.get(f"/inbox/v/open/c/{taken.conversation_id}")).text
    marked = re.findall(r'<mark class="mention">(.*?)</mark>', page)
    assert marked == ["@ирина петрова", "@&lt;b&gt;Боб&lt;/b&gt;", "@Ольга"], marked
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The client's own message is never marked, whatever it says.
    assert page.count('<mark class="mention">') == 3
