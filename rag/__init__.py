"""Questions in, cited answers out: retrieval, re-scoring, generation and citation checking."""
