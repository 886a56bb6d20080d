"""The local web console."""
