"""AOC normalizer service."""
