"""The HTTP and gRPC server: one prediction core behind several protocols."""
