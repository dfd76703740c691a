"""Measurement: the harness (verify, calibrate, cold weights), ceilings, statistics, decode
timing and the peers (llama.cpp, numpy)."""
