"""Split documents into passages measured in the embedder's tokens, with exact character offsets."""

from __future__ import annotations

from bisect import bisect_left
from functools import cached_property
from pathlib import Path

from langchain_text_splitters import RecursiveCharacterTextSplitter
from tokenizers import Tokenizer

from index.sentences import Span, sentence_spans
from index.types import Chunk, ChunkUnit, Document

# Paragraphs first, then lines, sentences, clauses and words: passages end at natural boundaries.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""]


class TokenChunker:
    """Sentence-aligned passages measured in word-piece tokens (or characters, for the common baseline);
    offsets come from the sentence segmenter and the tokenizer, never estimated."""

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
        """Word-piece tokens in `text`, without special tokens and never truncated: the unit `chunk_size` counts in."""
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

    def _span_lengths(self, text: str, spans: list[Span]) -> list[int]:
        """Length of each span in the chunk unit; tokens come from one tokenizer call per document."""
        if self.unit is ChunkUnit.CHARS:
            return [s.end - s.start for s in spans]
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        token_starts = [start for start, _ in encoding.offsets]
        return [bisect_left(token_starts, s.end) - bisect_left(token_starts, s.start) for s in spans]

    def _pieces(self, text: str, span: Span, length: int) -> list[Span]:
        """A sentence over the budget is cut by the recursive splitter: the only passages that start inside one."""
        if length <= self.chunk_size:
            return [span]
        sentence = text[span.start : span.end]
        pieces: list[Span] = []
        previous_start, previous_end = -1, 0
        for piece in self._splitter.split_text(sentence):
            if not piece.strip():
                continue
            # Located as whole-document passages are: a repeated piece ("U.S. U.S.") is the copy that
            # extends past the previous piece, not the first copy.
            start = self._locate(sentence, piece, previous_start, previous_end)
            if start < 0:
                continue
            pieces.append(Span(span.start + start, span.start + start + len(piece)))
            previous_start, previous_end = start, start + len(piece)
        return pieces or [span]

    def units(self, text: str) -> tuple[list[Span], list[int]]:
        """Sentence spans (long ones cut to the budget) and their lengths in the chunk unit."""
        spans = sentence_spans(text)
        lengths = self._span_lengths(text, spans)
        units: list[Span] = []
        for span, length in zip(spans, lengths, strict=True):
            units.extend(self._pieces(text, span, length))
        return units, self._span_lengths(text, units)

    def split(self, document: Document) -> list[Chunk]:
        """Pack whole sentences into passages of at most `chunk_size`; neighbours share whole sentences up
        to `chunk_overlap`."""
        if self.unit is ChunkUnit.CHARS:
            return self._split_recursive(document)
        text = document.text
        units, lengths = self.units(text)
        chunks: list[Chunk] = []
        first = 0
        while first < len(units):
            last, size = first, 0
            while last < len(units) and (last == first or size + lengths[last] <= self.chunk_size):
                size += lengths[last]
                last += 1
            start, end = units[first].start, units[last - 1].end
            chunks.append(Chunk(f"{document.doc_id}#{len(chunks)}", document.doc_id, text[start:end], start, end))
            if last >= len(units):
                break
            # Step back over whole sentences for the overlap, always moving forward by at least one.
            next_first, shared = last, 0
            while next_first - 1 > first and shared + lengths[next_first - 1] <= self.chunk_overlap:
                shared += lengths[next_first - 1]
                next_first -= 1
            first = next_first
        return chunks

    @staticmethod
    def _locate(text: str, piece: str, previous_start: int, previous_end: int) -> int:
        """Where `piece` starts. Pieces come in order, each covering new text and leaving no gap but whitespace,
        so it starts after the previous piece's start, no later than the first non-space after the previous end,
        and ends after that end; of the copies of a repeated piece ("日本. 日本. 日本") that fit, the one that
        overlaps least (as the splitter joins them). Otherwise the first copy after the previous start."""
        first = text.find(piece, previous_start + 1)
        gap_end = previous_end
        while gap_end < len(text) and text[gap_end].isspace():
            gap_end += 1
        best = -1
        start = first
        while 0 <= start <= gap_end:
            if start + len(piece) > previous_end:
                best = start
            start = text.find(piece, start + 1)
        return best if best >= 0 else first

    def _split_recursive(self, document: Document) -> list[Chunk]:
        """LangChain's plain recursive character splitting: the common baseline's passages."""
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
