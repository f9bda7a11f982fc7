"""Documents in, passages out: loading, splitting, embedding and the on-disk FAISS index.

This package knows nothing about questions or answers; `rag` sits on top of it.
"""

from index.types import Chunk, Document, IndexSpec

__all__ = ["Chunk", "Document", "IndexSpec"]
