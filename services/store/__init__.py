"""AOC store service."""
