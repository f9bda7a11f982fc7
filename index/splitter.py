"""Split documents into passages measured in the embedder's tokens, with exact character offsets."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from langchain_text_splitters import RecursiveCharacterTextSplitter
from tokenizers import Tokenizer

from index.types import Chunk, ChunkUnit, Document

# Paragraphs first, then lines, sentences, clauses and words: passages end at natural boundaries.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]


class TokenChunker:
    """Recursive splitting with length in word-piece tokens (or characters, for the common baseline);
    offsets are found, never estimated."""

    def __init__(
        self, tokenizer_file: Path, chunk_size: int, chunk_overlap: int, unit: ChunkUnit = ChunkUnit.TOKENS
    ) -> None:
        if chunk_size < 8:
            raise ValueError(f"chunk_size must be at least 8 tokens, got {chunk_size}")
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size), got {chunk_overlap}")
        self.tokenizer_file = tokenizer_file
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.unit = ChunkUnit(unit)

    @cached_property
    def _tokenizer(self) -> Tokenizer:
        tokenizer = Tokenizer.from_file(str(self.tokenizer_file))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    @cached_property
    def _splitter(self) -> RecursiveCharacterTextSplitter:
        return RecursiveCharacterTextSplitter(
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            length_function=self.count_tokens if self.unit is ChunkUnit.TOKENS else len,
            separators=SEPARATORS,
            keep_separator="end",
            strip_whitespace=True,
        )

    @staticmethod
    def _locate(text: str, piece: str, previous_start: int, previous_end: int) -> int:
        """Where `piece` starts: after the previous passage's start, and, since every passage covers new
        text, ending after the previous one ends (repeated text has earlier copies that do not)."""
        first = start = text.find(piece, previous_start + 1)
        while start >= 0 and start + len(piece) <= previous_end:
            start = text.find(piece, start + 1)
        return start if start >= 0 else first

    def split(self, document: Document) -> list[Chunk]:
        chunks: list[Chunk] = []
        previous_start, previous_end = -1, 0
        for piece in self._splitter.split_text(document.text):
            if not piece.strip():
                continue
            # Pieces are verbatim substrings in document order; overlap means the next one may start
            # before the previous one ends.
            start = self._locate(document.text, piece, previous_start, previous_end)
            if start < 0:
                raise ValueError(f"splitter produced text not found in {document.doc_id}")
            end = start + len(piece)
            chunks.append(
                Chunk(
                    chunk_id=f"{document.doc_id}#{len(chunks)}",
                    doc_id=document.doc_id,
                    text=piece,
                    start=start,
                    end=end,
                )
            )
            previous_start, previous_end = start, end
        return chunks
