"""The help desk around sessions: tickets, SLA timers, KPIs and satisfaction surveys."""
