"""The commands: one thin click module per command over the library API."""
