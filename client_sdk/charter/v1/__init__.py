"""Generated code of the charter.v1 contract. Do not edit; run protos/generate.py."""
