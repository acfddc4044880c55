"""geo-busyness"""

__version__ = "0.1"
