"""Identity resolution: deterministic + probabilistic identity graph, stable customer ids."""
