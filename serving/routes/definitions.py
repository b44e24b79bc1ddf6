"""GET /v1/definitions: the shared vocabulary and its version (public: no key needed)."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import DefsDep
from serving.schemas import DefinitionsOut

router = APIRouter(prefix="/v1", tags=["definitions"])


@router.get("/definitions", response_model=DefinitionsOut)
def definitions(defs: DefsDep) -> dict:
    """The definitions both teams signed off, with their version string and model fingerprint."""
    return {
        "version": defs.version_string,
        "fingerprint": defs.fingerprint,
        "definitions": defs.model_dump(mode="json", by_alias=True),
    }
