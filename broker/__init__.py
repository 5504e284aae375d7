"""The Deskhand broker: accounts, tickets, support sessions, codes and signalling."""
