"""Durable JetStream consumers: one shared consume loop (``loop``) and the handlers it drives."""
