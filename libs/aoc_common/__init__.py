"""Code shared by every AOC service: settings, event model, topics, codecs, engines, logging, metrics.

Nothing here may import a service package: services depend on this library, never the reverse.
"""

__version__ = "0.1.0"
