"""The Open Inference Protocol (KServe V2) over gRPC, beside the HTTP app in one process."""
