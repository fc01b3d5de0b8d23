"""Compiled kernels: pure ``@njit`` functions on arrays and scalars (internal)."""
