"""See shared DESIGN.md."""
