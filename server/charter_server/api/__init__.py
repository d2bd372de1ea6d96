"""Transport: the grpc.aio server and its dispatcher, gRPC servicers (convert -> service -> convert),
streams, and the status table."""
