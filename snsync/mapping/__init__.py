"""Attribute mapping: the Entra ID expression language and its function library."""
