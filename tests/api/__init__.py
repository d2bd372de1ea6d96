"""In-process gRPC tests of the API: roles, bad input, and the resources end to end."""
