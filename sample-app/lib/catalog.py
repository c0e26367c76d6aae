"""Shared code: imported by functions, loaded once per warm instance."""

USERS = {
    "1": {"id": "1", "name": "Ada Lovelace"},
    "2": {"id": "2", "name": "Grace Hopper"},
    "42": {"id": "42", "name": "Arthur Dent"},
}
