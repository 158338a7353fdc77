"""AOC collector service."""
