"""posedraw: draw anime characters in a pose you choose, steered by text."""

__version__ = "0.1.0"
