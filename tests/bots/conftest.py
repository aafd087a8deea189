"""The client bot's tests use the Telegram channel's stand-in and hub."""

from tests.channels.telegram.conftest import api, hub

__all__ = ["api", "hub"]
