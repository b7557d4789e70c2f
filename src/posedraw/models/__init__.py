"""Network definitions and their typed configs."""
