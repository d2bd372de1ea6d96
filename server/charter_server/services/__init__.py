"""Use cases, one module per area. They take a Principal and domain inputs, return domain records."""
