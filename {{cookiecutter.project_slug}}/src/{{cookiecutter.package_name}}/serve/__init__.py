"""The HTTP server: one prediction core behind several protocols."""
