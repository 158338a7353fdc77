"""The analyst web UI: static files served by the API (no build step, no CDN)."""
