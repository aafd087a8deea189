"""Calls: the call events' words, the call book, the call journal, its admin and queries."""
