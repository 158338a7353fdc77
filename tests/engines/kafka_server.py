"""Tansu (Kafka protocol) broker fixture."""
