"""The kernels as numpy in, numpy out: native loading, registry and dispatch, pack/gemm, the
int8 head, validation, the numpy oracle, quantisation and the guide's legacy encodings."""
