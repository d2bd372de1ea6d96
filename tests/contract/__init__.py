"""Tests of the contract and the tooling: generated code, buf, Docker, packaging, import rules."""
