"""AOC alerter service."""
