"""One module per source system; each turns people (and stories) into that system's records."""
