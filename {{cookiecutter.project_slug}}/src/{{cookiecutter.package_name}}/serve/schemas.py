"""Response models of /predict and /invocations, for OpenAPI; requests use features.Record."""

from pydantic import BaseModel, Field


class PredictResponse(BaseModel):
    predictions: list[str] = Field(description="Predicted class of each row, in request order.")
    probabilities: list[dict[str, float]] | None = Field(
        None, description="Probability of each class, per row (classifiers that have them)."
    )
    model_version: str = Field(description="Version of the model that answered.")


class ProblemDetail(BaseModel):
    detail: str = Field(description="What is wrong and how to fix it.")
