"""Where `make build` puts libryzlab.so and its header (ryzlab.h, read by cffi); a package so
that setuptools installs both as its package data."""
