"""The domain: plain dataclasses, enums and errors. No gRPC, no SQL."""
