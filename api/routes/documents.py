"""Documents: list and read them; add and remove them (admin token; the index on disk changes atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, File, Form, HTTPException, Response, UploadFile
from fastapi.responses import JSONResponse

from api.observability import log_event
from api.schemas import (
    ADMIN_RESPONSES,
    ERROR_RESPONSES,
    NOT_FOUND_RESPONSES,
    WRITE_FAILURE_RESPONSES,
    DocumentDetail,
    DocumentSummary,
    IngestResponse,
    RemovedResponse,
)
from api.security import public_source
from api.state import State, error_response, require_admin
from index.library import Library
from index.loaders import DocumentLoadError, document_from_bytes
from index.store import IndexLockedError, IndexStoreError, IndexWriteError

router = APIRouter(tags=["documents"], responses=ERROR_RESPONSES)
# An example upload (a small Markdown file), and the file's name, which decides how it is read (.txt, .md, .html):
# documented as an example of the part's header, which is also the name schemathesis gives the files it uploads.
UPLOAD_ENCODING: dict[str, Any] = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "example": {"file": "# Notes\n\nThe library opens at nine on weekdays.\n", "replace": False},
                "encoding": {
                    "file": {
                        "headers": {
                            "Content-Disposition": {
                                "schema": {"type": "string"},
                                "example": 'form-data; name="file"; filename="notes.md"',
                            }
                        }
                    }
                },
            }
        }
    }
}


def _write_failure(error: IndexStoreError) -> JSONResponse:
    """A failed index write changed nothing: 507 for a full or failing disk, 503 while another writer holds
    the lock, 409 for an index that cannot take the change."""
    if isinstance(error, IndexWriteError):
        return error_response(507, str(error), detail={"changed": False, "errno": error.errno})
    if isinstance(error, IndexLockedError):
        return error_response(503, str(error), headers={"Retry-After": "5"}, detail={"changed": False})
    return error_response(409, str(error), detail={"changed": False})


@router.get("/api/documents", response_model=list[DocumentSummary], summary="List the indexed documents")
async def list_documents(rag_state: State) -> Any:
    """Every indexed document with its id, title, source file name, content hash and size."""
    index = rag_state.pipeline.index
    texts = {d.doc_id: len(d.text) for d in index.documents}
    return [
        DocumentSummary(
            doc_id=info.doc_id,
            title=info.title,
            source=public_source(info.source),
            sha256=info.sha256,
            passages=info.chunk_count,
            chars=texts.get(info.doc_id, 0),
        )
        for info in index.document_infos()
    ]


@router.get(
    "/api/documents/{doc_id}",
    response_model=DocumentDetail,
    responses=NOT_FOUND_RESPONSES,
    summary="Read a document's whole text",
)
async def get_document(doc_id: str, rag_state: State) -> Any:
    """A document's whole text, so a client can show a cited passage (`text[start:end]`) in its context."""
    document = rag_state.pipeline.index.document(doc_id)
    if document is None:
        raise HTTPException(404, f"no document {doc_id!r}; GET /api/documents lists them")
    return DocumentDetail(
        doc_id=document.doc_id, title=document.title, source=public_source(document.source), text=document.text
    )


@router.post(
    "/api/documents",
    response_model=IngestResponse,
    status_code=201,
    summary="Upload a document (admin token)",
    dependencies=[Depends(require_admin)],
    responses={
        200: {"model": IngestResponse, "description": "`unchanged`: the same content was already indexed."},
        **ADMIN_RESPONSES,
        **WRITE_FAILURE_RESPONSES,
    },
    openapi_extra=UPLOAD_ENCODING,
)
async def upload_document(
    rag_state: State,
    file: Annotated[UploadFile, File()],
    response: Response,
    replace: Annotated[
        bool,
        Form(description="Replace every document uploaded earlier under the same file name."),
    ] = False,
) -> Any:
    """Add a .txt, .md or .html document (admin token required); the index on disk is updated atomically.

    A different file with the name of an earlier one is added beside it unless `replace=true`;
    identical content answers 200 `unchanged`; a failed save answers 507 and changes nothing."""
    data = await file.read(rag_state.settings.max_upload_bytes + 1)
    if len(data) > rag_state.settings.max_upload_bytes:
        raise HTTPException(413, f"file is over the limit of {rag_state.settings.max_upload_bytes} bytes")
    name = Path(file.filename or "upload.txt").name
    try:
        document = document_from_bytes(name, data, source=f"upload:{name}")
    except DocumentLoadError as error:
        return error_response(422, f"file: {error}", detail=[{"field": "file", "message": str(error)}])

    def ingest() -> IngestResponse:
        library = Library(rag_state.settings.index_dir, rag_state.pipeline.index)
        report = library.add([document], replace_same_source=replace)
        status = "added" if report.added else "replaced" if report.replaced else "unchanged"
        doc_id = (report.added or report.replaced or report.unchanged)[0]
        return IngestResponse(doc_id=doc_id, status=status, passages=report.passages_embedded)

    try:
        result = await to_thread.run_sync(ingest)
    except IndexStoreError as error:
        return _write_failure(error)
    if result.status == "unchanged":
        response.status_code = 200
    log_event("ingest", doc_id=result.doc_id, status=result.status, passages=result.passages)
    return result


@router.delete(
    "/api/documents/{doc_id}",
    response_model=RemovedResponse,
    summary="Remove a document (admin token)",
    dependencies=[Depends(require_admin)],
    responses={**NOT_FOUND_RESPONSES, **ADMIN_RESPONSES, **WRITE_FAILURE_RESPONSES},
)
async def delete_document(doc_id: str, rag_state: State) -> Any:
    """Remove a document and its passages (admin token required); the index on disk is updated atomically."""

    def remove() -> bool:
        return Library(rag_state.settings.index_dir, rag_state.pipeline.index).remove(doc_id)

    try:
        removed = await to_thread.run_sync(remove)
    except IndexStoreError as error:
        return _write_failure(error)
    if not removed:
        raise HTTPException(404, f"no document {doc_id!r}; GET /api/documents lists them")
    log_event("remove", doc_id=doc_id)
    return RemovedResponse(removed=doc_id)
