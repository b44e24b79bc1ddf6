"""Helpers the tests share: small factories for canonical rows."""
