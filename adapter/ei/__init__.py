"""The engagement index (EI): Update messages, the client that sends them, and the outbox sender."""
