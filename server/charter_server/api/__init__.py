"""Transport: gRPC servicers (convert -> service -> convert), interceptors and the status table."""
