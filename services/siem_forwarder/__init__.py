"""AOC siem_forwarder service."""
