"""Support sessions from code to end: codes, help requests, grants, consent, the peers and their signalling hub, file transfers."""
