"""Datasets on disk and in memory."""
