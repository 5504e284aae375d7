"""Deskhand tests."""
