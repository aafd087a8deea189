"""The Telegram channel: bots as entry points (webhook or long polling), Bot API delivery."""
