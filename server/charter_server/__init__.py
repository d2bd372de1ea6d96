"""Charter's licensing service: gRPC transport, domain services and storage."""

__version__ = "0.1.0"
