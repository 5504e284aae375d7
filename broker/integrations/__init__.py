"""External helpdesks: outgoing webhooks (the outbox and its worker) and the signed inbound webhook."""
