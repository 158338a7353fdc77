"""The `aoc` command: demo, run a service, replay a consumer group."""
