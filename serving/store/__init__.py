"""The score store: the live score and recent events of every visitor, on SQLite or Redis."""
