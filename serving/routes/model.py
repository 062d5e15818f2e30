"""What model is serving."""

from __future__ import annotations

from fastapi import APIRouter

from creditrisk.catalogue import CATALOGUE
from serving.deps import MODEL_RESPONSES, KeyDep, ModelDep
from serving.schemas import ModelInfo

router = APIRouter(tags=["model"])


@router.get("/model/info", response_model=ModelInfo, responses=MODEL_RESPONSES)
async def model_info(_key: KeyDep, model: ModelDep) -> ModelInfo:
    """Registered name, version, alias, run, training date, metrics and the feature catalogue."""
    return ModelInfo(
        name=model.ref.name, version=model.ref.version, alias=model.ref.alias,
        run_id=model.ref.run_id, candidate=model.info.get("candidate"),
        trained_as_of=model.info.get("trained_as_of"), metrics=model.info.get("metrics", {}),
        features=[{"name": f.name, "meaning": f.meaning, "unit": f.unit} for f in CATALOGUE],
        loaded_at=model.loaded_at,
    )
