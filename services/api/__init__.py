"""AOC api service."""
