"""Reference solvers shared by task families (spectral ETDRK4, method of lines, sparse elliptic)."""
