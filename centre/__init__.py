"""The command centre: watches many crossings and orders group lockdowns (signed, see protocol.py)."""
