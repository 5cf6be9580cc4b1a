"""What the HTTP routes take and answer, for the OpenAPI document only.

The routes read raw bodies and write their answers themselves, for speed (see
routes/lean_route.py), so nothing here parses or serialises a request at run time. Response
bodies are pydantic models that the routes name in `response_model` and `responses`; request
bodies are JSON Schemas derived from the data schema, as the decoders in json_codec.py and
v2_codec.py are, and the routes refer to them from `openapi_extra`. The OpenAPI fuzz test run against the image keeps both honest.
"""

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, create_model
from pydantic.json_schema import models_json_schema

from ..core.schema import FEATURE_NAMES, FEATURES, Feature, FeatureType

REF = "#/components/schemas/{model}"
JSON_TYPES: dict[FeatureType, str] = {
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "category": "string",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


PYTHON_TYPES: dict[FeatureType, Any] = {
    "number": float,
    "integer": int,
    "boolean": bool,
    "category": str,
}


def _python_type(feature: Feature) -> Any:
    kind = PYTHON_TYPES[feature.type]
    if feature.type == "category" and feature.unknown == "error":
        kind = Literal[feature.categories]  # OpenAPI lists the categories as an enum
    return kind | None if feature.nullable else kind


def _field(feature: Feature) -> Any:
    if feature.type in ("number", "integer"):
        field = Field(
            description=feature.description,
            examples=[feature.example],
            allow_inf_nan=False,
            strict=False,
        )
    else:
        field = Field(description=feature.description, examples=[feature.example])
    return (_python_type(feature), field)


# The request record, generated from FEATURES so OpenAPI shows the real names and types.
Record: type[BaseModel] = create_model(
    "Record",
    __config__=ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{f.name: f.example for f in FEATURES}]},
    ),
    **{f.name: _field(f) for f in FEATURES},
)


# --- errors: {"detail"} outside /v2, {"error"} under /v2 (errors.py) ------------------


class ProblemDetail(BaseModel):
    detail: str = Field(description="What is wrong and how to fix it.")


class FieldProblem(BaseModel):
    type: str = Field(description="Kind of problem, e.g. `value_error`.")
    loc: list[str | int] = Field(
        description="Where: `body`, then the keys and indexes that lead to the wrong field."
    )
    msg: str = Field(description="What is wrong with it.")


class InvalidInput(BaseModel):
    detail: list[FieldProblem]


# What the prediction routes answer besides 200. The middleware's own answers (401, and 413
# while the body is read) are declared for every route in openapi.py.
PREDICTION_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {
        "model": ProblemDetail,
        "description": "Body over MAX_REQUEST_BYTES or rows over MAX_BATCH_ROWS",
    },
    422: {
        "model": InvalidInput,
        "description": "Invalid input: `detail[].loc` is the path of the wrong field",
    },
    503: {"model": ProblemDetail, "description": "No model loaded"},
}


class V2Error(BaseModel):
    error: str = Field(description="What is wrong and how to fix it.")


# --- the project's own routes, SageMaker's and the probes -----------------------------


class PredictResponse(BaseModel):
    predictions: list[float] | list[str] | None = Field(
        None,
        description="Each row's predicted class (a classifier) or value (a regressor), in "
        "request order; left out when `outputs` does not ask for it.",
    )
    probabilities: list[dict[str, float]] | None = Field(
        None,
        description="Probability of each class, per row (classifiers); left out when "
        "`outputs` does not ask for it.",
    )
    model_version: str = Field(description="Version of the model that answered.")


class RuntimeInfo(BaseModel):
    name: Literal["onnx", "native"] = Field(
        description="onnx: ONNX Runtime serves the verified ONNX model; native: the framework."
    )
    reason: str | None = Field(
        description="Why the native model serves (no verified ONNX model, or MODEL_RUNTIME)."
    )


class MetadataResponse(BaseModel):
    status: Literal["loading", "ready", "failed"]
    reason: str | None = Field(description="Why the model failed to load, else null.")
    model: dict[str, Any] | None = Field(
        description="The artifact's metadata.json, or null while no model is loaded."
    )
    model_load_seconds: float | None
    source: str = Field(
        description="Where the model comes from: MODEL_DIR, or MODEL_URI without credentials."
    )
    runtime: RuntimeInfo | None = Field(
        description="Which runtime serves the model, or null while none is loaded."
    )
    settings: dict[str, Any] = Field(
        description="Every setting by its variable; secrets as set or not."
    )


class ExecutionParameters(BaseModel):
    MaxConcurrentTransforms: int = Field(ge=1, description="One request per CPU.")
    BatchStrategy: Literal["MULTI_RECORD"]
    MaxPayloadInMB: int = Field(ge=1, description="MAX_REQUEST_BYTES, in whole MB.")


class Liveness(BaseModel):
    status: Literal["alive"]


class Readiness(BaseModel):
    status: Literal["ready"]
    model_version: str


class NotReadyYet(BaseModel):
    status: Literal["loading", "failed"]
    reason: str = Field(description="What is being loaded, or why loading failed.")


# --- Open Inference Protocol (KServe V2): the published specification's shapes ---------

# The datatypes the server takes, beside BYTES (text); any other is refused with 400 naming
# the tensor. Numbers, then booleans and numbers.
NumberDatatype = Literal[
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
]
NumericDatatype = Literal["BOOL", NumberDatatype]


class ServerLiveResponse(BaseModel):
    live: bool


class ServerReadyResponse(BaseModel):
    ready: bool


class ModelReadyResponse(BaseModel):
    name: str
    ready: bool


class ServerMetadataResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dimension of any size.")


class ModelMetadataResponse(BaseModel):
    name: str
    versions: list[str] = Field(description="The loaded model's version; empty while loading.")
    platform: str
    inputs: list[MetadataTensor] = Field(description="One tensor per feature, in schema order.")
    outputs: list[MetadataTensor]


class _RequestInput(BaseModel):
    name: str = Field(
        description="A feature's name, for one tensor per feature (shape [N] or [N, 1]); any "
        "other name for a single [N, features] tensor of numbers with the features in schema "
        "order (not when a feature is a category)."
    )
    shape: list[NonNegativeInt]
    parameters: dict[str, Any] | None = None


# One element of a tensor's `data`: null is a missing value (of a nullable feature).
_Number = float | bool | None
_Bool = bool | None
_Text = str | None


class NumbersInput(_RequestInput):
    datatype: NumberDatatype
    data: list[_Number | list[_Number]] = Field(
        description="The values, flat or nested in row-major order: finite numbers, or null "
        "for a missing value."
    )


class BoolInput(_RequestInput):
    datatype: Literal["BOOL"]
    data: list[_Bool | list[_Bool]] = Field(
        description="A boolean feature's values: true, false, or null for a missing value."
    )


class BytesInput(_RequestInput):
    datatype: Literal["BYTES"]
    data: list[_Text | list[_Text]] = Field(
        description="Values as UTF-8 text, such as a category's name; null for a missing value."
    )


# A tensor is read by its datatype: numbers, booleans or text.
RequestInput = Annotated[NumbersInput | BoolInput | BytesInput, Field(discriminator="datatype")]


class RequestOutput(BaseModel):
    name: Literal["predict", "predict_proba"]
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    id: Any = Field(None, description="Returned as sent in the response's `id`.")
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(
        None, description="The outputs to answer; all of them when absent or empty."
    )


class ResponseOutput(BaseModel):
    name: Literal["predict", "predict_proba"]
    datatype: Literal["BYTES", "FP64"]
    shape: list[int]
    data: list[str | float] = Field(
        description="`predict`: the class labels; `predict_proba`: the probabilities, row-major."
    )


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: Any = Field(None, description="The request's `id`, when it had one.")
    outputs: list[ResponseOutput]


# --- request bodies --------------------------------------------------------------------


def _value(feature: Feature) -> dict[str, Any]:
    """The JSON Schema of one value of the feature."""
    schema: dict[str, Any] = {"type": JSON_TYPES[feature.type]}
    if feature.type == "category" and feature.unknown == "error":
        schema["enum"] = list(feature.categories)
    if feature.nullable:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"].append(None)
    return schema


def _table_form(key: str, description: str) -> dict[str, Any]:
    """One of MLflow's JSON forms: an object with `key` and, optionally, `params`."""
    return {
        "type": "object",
        "description": description,
        "properties": {
            key: ref("DataframeSplit") if key == "dataframe_split" else ref("Table"),
            "params": {"description": "MLflow's inference parameters: accepted and ignored."},
        },
        "required": [key],
        "additionalProperties": False,
    }


_width = len(FEATURES)
_value_kinds = list({json.dumps(_value(f)): _value(f) for f in FEATURES}.values())
_any_value = _value_kinds[0] if len(_value_kinds) == 1 else {"anyOf": _value_kinds}
INVOCATION_SCHEMAS: dict[str, Any] = {
    "Row": {
        "type": "array",
        "description": f"The values of one row, in feature order: {', '.join(FEATURE_NAMES)}.",
        "prefixItems": [{**_value(f), "title": f.name} for f in FEATURES],
        "minItems": _width,
        "maxItems": _width,
    },
    "Records": {"type": "array", "items": ref("Record"), "minItems": 1},
    "Rows": {"type": "array", "items": ref("Row"), "minItems": 1},
    "Columns": {
        "type": "object",
        "description": "One list of values per feature, all of one length.",
        "properties": {
            f.name: {"type": "array", "items": _value(f), "minItems": 1} for f in FEATURES
        },
        "required": list(FEATURE_NAMES),
        "additionalProperties": False,
    },
    "Table": {"oneOf": [ref("Records"), ref("Rows"), ref("Columns")]},
    "DataframeSplit": {
        "type": "object",
        "description": "pandas' split orientation: column names and rows of values.",
        "properties": {
            "columns": {
                "type": "array",
                "items": {"enum": list(FEATURE_NAMES)},
                "minItems": _width,
                "maxItems": _width,
                "uniqueItems": True,
            },
            "data": {
                "type": "array",
                "items": {
                    "type": "array",
                    "items": _any_value,
                    "minItems": _width,
                    "maxItems": _width,
                },
                "minItems": 1,
            },
        },
        "required": ["columns", "data"],
    },
    "InvocationsJSON": {
        "oneOf": [
            ref("Record"),
            ref("Records"),
            ref("Rows"),
            _table_form("dataframe_split", "MLflow: a table in pandas' split orientation."),
            _table_form("dataframe_records", "MLflow: records, rows or columns."),
            _table_form("instances", "MLflow, as TensorFlow Serving: records, rows or columns."),
            _table_form("inputs", "MLflow, as TensorFlow Serving: records, rows or columns."),
        ]
    },
}


def request_schemas() -> dict[str, Any]:
    """Every schema the request bodies refer to, by its name under components/schemas."""
    _, pydantic_schemas = models_json_schema(
        [(Record, "validation"), (InferenceRequest, "validation")], ref_template=REF
    )
    return {**pydantic_schemas["$defs"], **INVOCATION_SCHEMAS}
