"""`omnihub channels add telephony`, run as the real console script on an embedded install."""

from __future__ import annotations

from pathlib import Path

from tests.hub.console import Cli, query


class TestAddTelephony:
    def test_generic_line_gets_a_token_in_its_url(self, cli: Cli, data_dir: Path) -> None:
        added = cli("channels", "add", "telephony", "--key", "pbx", "--provider", "generic")
        listed = cli("channels", "list", "--kind", "telephony")

        assert added.returncode == 0, added.stderr
        assert added.stdout.startswith("phone line pbx added: POST /webhooks/telephony/pbx/")
        token = added.stdout.strip().rsplit("/", 1)[1]
        assert len(token) >= 24
        assert "shown only this once" in added.stderr
        assert listed.stdout == "telephony\tpbx\tpbx\tactive\tok\t\n"
        ((config, secrets),) = query(data_dir, "SELECT config, secrets FROM channels")
        assert '"generic"' in str(config) and token not in str(config) + str(secrets)

    def test_twilio_line_keeps_its_auth_token_sealed(self, cli: Cli, data_dir: Path) -> None:
        added = cli(
            "channels",
            "add",
            "telephony",
            "--key",
            "tw",
            "--provider",
            "twilio",
            "--dial",
            "client:anna",
            env={"OMNIHUB_TWILIO_AUTH_TOKEN": "twilio-auth-token-секрет"},
        )

        assert added.returncode == 0, added.stderr
        assert added.stdout == "phone line tw added: POST /webhooks/telephony/tw\n"
        ((config, secrets),) = query(data_dir, "SELECT config, secrets FROM channels")
        assert "client:anna" in str(config)
        assert "секрет" not in str(config) + str(secrets)

    def test_a_provider_without_its_secret_fails_clearly(self, cli: Cli, data_dir: Path) -> None:
        result = cli("channels", "add", "telephony", "--key", "zd", "--provider", "zadarma")

        assert result.returncode == 1
        assert result.stderr == "Error: the zadarma provider needs api_secret\n"
        assert query(data_dir, "SELECT count(*) FROM channels WHERE key = 'zd'") == [(0,)]
