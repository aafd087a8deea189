"""The telephony channel: phone systems' webhooks into the call journal and intake."""
