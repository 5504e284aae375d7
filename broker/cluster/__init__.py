"""What the brokers sharing a Redis (``DESKHAND_REDIS_URL``) tell each other."""
