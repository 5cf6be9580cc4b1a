"""The data schema: the one place that names the model's inputs, its target and its task.

The schema lives in `schema.yaml`, beside this module: `schema infer` writes it from a data file
(core/schema_inference.py) and you may edit it by hand. The request schemas of the API, the
batch file checks, the V2 and gRPC tensor metadata, the training checks and the tests all
follow from it. InputError, the error of any input that does not fit the schema, says where it
is wrong.
"""

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.yaml"

FeatureType = Literal["number", "integer", "boolean", "category"]
Task = Literal["binary", "multiclass", "regression"]
# A name that is safe as a column, a JSON key, a V2 tensor name and a Python identifier part.
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$"


class Feature(BaseModel):
    """One input column."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="The column's name.")
    type: FeatureType = Field(description="number, integer, boolean or category.")
    nullable: bool = Field(False, description="Whether a value may be missing.")
    categories: tuple[str, ...] = Field(
        (), description="The known values of a category feature, in a fixed order."
    )
    unknown: Literal["error", "missing"] = Field(
        "error",
        description="What a category value that is not among `categories` gets at prediction "
        "time: refused (error), or treated as missing (missing; needs nullable).",
    )
    description: str = Field("", description="What the column holds, for the API docs.")
    example: float | int | bool | str | None = Field(
        None, description="A typical value, for the API docs and the tests."
    )

    @model_validator(mode="after")
    def _consistent(self) -> "Feature":
        if self.type == "category":
            if not self.categories:
                raise ValueError(f"category feature {self.name!r} needs its categories")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError(f"feature {self.name!r} lists a category twice")
        elif self.categories:
            raise ValueError(
                f"feature {self.name!r} is {self.type}: only a category has categories"
            )
        if self.unknown == "missing" and not self.nullable:
            raise ValueError(
                f"feature {self.name!r}: unknown categories can only become missing values "
                "when the feature is nullable"
            )
        if self.example is None and not self.nullable:
            raise ValueError(f"feature {self.name!r} needs an example")
        return self


class Schema(BaseModel):
    """The inputs, the target and the task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Task = Field(description="binary or multiclass classification, or regression.")
    target: str = Field(pattern=NAME_PATTERN, description="The column to predict.")
    classes: tuple[str, ...] = Field(
        (), description="A classifier's labels, as text, in the order of its probabilities."
    )
    features: tuple[Feature, ...] = Field(min_length=1, description="The input columns.")

    @model_validator(mode="after")
    def _consistent(self) -> "Schema":
        names = [f.name for f in self.features]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"feature(s) named twice: {', '.join(twice)}")
        if self.target in names:
            raise ValueError(f"the target {self.target!r} is also a feature")
        if self.task == "regression" and self.classes:
            raise ValueError("a regression has no classes")
        if self.task == "binary" and len(self.classes) != 2:
            raise ValueError(f"a binary task has 2 classes, not {len(self.classes)}")
        if self.task == "multiclass" and len(self.classes) < 3:
            raise ValueError(
                f"a multiclass task has 3 or more classes, not {len(self.classes)} "
                "(2 classes: task binary)"
            )
        return self

    @property
    def is_classification(self) -> bool:
        return self.task != "regression"

    def to_yaml(self) -> str:
        """The schema as the YAML of schema.yaml: defaults left out, in a fixed order."""
        import yaml

        document = self.model_dump(mode="json", exclude_defaults=True)
        document["features"] = [
            feature.model_dump(mode="json", exclude_defaults=True) for feature in self.features
        ]
        return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100))


class SchemaError(ValueError):
    """A schema file that cannot be read or does not hold a valid schema."""


def read_schema(path: Path) -> Schema:
    """The schema in `path`, or SchemaError naming the file and the field that is wrong."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SchemaError(f"{path}: cannot read it: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SchemaError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(document, dict):
        raise SchemaError(f"{path}: expected a mapping with task, target and features")
    return parse_schema(document, str(path))


def parse_schema(document: Any, source: str) -> Schema:
    try:
        return Schema.model_validate(document)
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = re.sub(r"^(Value|Assertion) error, ", "", problem["msg"])
            problems.append(f"{where}: {message}" if where else message)
        raise SchemaError(f"{source}: {'; '.join(problems)}") from None


def write_schema(schema: Schema, path: Path, header: str) -> None:
    """Write the schema as YAML, after a comment `header`, replacing the file atomically."""
    lines = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(lines + schema.to_yaml(), encoding="utf-8")
    temporary.replace(path)


SCHEMA: Schema = read_schema(SCHEMA_FILE)
FEATURES: tuple[Feature, ...] = SCHEMA.features
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
TARGET: str = SCHEMA.target
TASK: Task = SCHEMA.task


class InputError(ValueError):
    """Input that does not match the feature schema. `location` says where, e.g. [3, 'x']."""

    def __init__(self, location: Sequence[str | int], message: str) -> None:
        self.location = list(location)
        self.message = message
        where = ".".join(str(part) for part in self.location)
        super().__init__(f"{where}: {message}" if where else message)

    def __reduce__(self) -> tuple[type, tuple[list[str | int], str]]:
        # So the error crosses process boundaries (a Dask worker's error reaches the client).
        return (type(self), (self.location, self.message))
