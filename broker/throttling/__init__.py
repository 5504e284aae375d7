"""Counting failed attempts and rates per source, and how a limited door refuses."""
