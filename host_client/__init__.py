"""The Deskhand host client: runs on the end user's machine and shares its screen."""
