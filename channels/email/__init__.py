"""The email channel: IMAP intake, SMTP replies."""
