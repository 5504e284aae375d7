"""Accounts: who people are, how they prove it (passwords, TOTP, tokens, the browser's cookie),
what they may do (route access, roles, teams) and their administration (``deskhand-broker users``)."""
