"""The whole SharpEyes configuration: one YAML file, validated by pydantic models.

Each section's model lives in the package that owns it (cameras in camera_adapters, the
model in models, Redis in alerting, the pipeline in pipeline, database and HTTP in api);
this module composes them and turns validation failures into messages that name the field's
path, its line in the file, what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alerting.settings import RedisSettings
from api.settings import (
    ApiConfig,
    AuthSettings,
    ConsumerSettings,
    DatabaseSettings,
    EscalationSettings,
    HttpSettings,
    OrganisationSpec,
    RoutingSettings,
)
from camera_adapters.spec import CameraSpec
from models.settings import DetectorSettings
from pipeline.settings import PipelineConfig, PipelineSettings


class LoggingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = Field("text", description="text (key=value) or json lines")


class SharpEyesConfig(BaseModel):
    """The top level of a SharpEyes config file."""

    model_config = ConfigDict(extra="forbid")

    cameras: list[CameraSpec] = Field(default_factory=list)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    model: DetectorSettings = Field(default_factory=DetectorSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    api: HttpSettings = Field(default_factory=HttpSettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    escalation: EscalationSettings = Field(default_factory=EscalationSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    organisation: OrganisationSpec | None = None

    @model_validator(mode="after")
    def _unique_camera_ids(self) -> SharpEyesConfig:
        seen: set[str] = set()
        for camera in self.cameras:
            if camera.id in seen:
                raise ValueError(
                    f"camera id '{camera.id}' is used twice; camera ids must be unique"
                )
            seen.add(camera.id)
        return self

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(
            cameras=self.cameras, redis=self.redis, model=self.model, pipeline=self.pipeline
        )

    def api_config(self) -> ApiConfig:
        return ApiConfig(
            database=self.database,
            redis=self.redis,
            http=self.api,
            consumer=self.consumer,
            cameras=self.cameras,
            auth=self.auth,
            escalation=self.escalation,
            routing=self.routing,
            organisation=self.organisation,
        )


class ConfigError(Exception):
    """The config file is unusable; ``problems`` are one line each, ready to print."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        noun = "problem" if len(self.problems) == 1 else "problems"
        lines = [f"{self.source}: {len(self.problems)} {noun}:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


# -- environment interpolation -----------------------------------------------------------
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def interpolate(value: Any, environ: typing.Mapping[str, str], path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in strings, so secrets stay out of the file."""
    if isinstance(value, dict):
        return {k: interpolate(v, environ, _join(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group("name"), match.group("default")
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise _MissingEnv(path or "(top level)", name)

        return _ENV_REF.sub(replace, value)
    return value


class _MissingEnv(Exception):
    def __init__(self, path: str, name: str) -> None:
        self.path, self.name = path, name


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


# -- error formatting --------------------------------------------------------------------
def format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the deepest YAML node along ``loc`` that exists."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last element of ``loc``."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            inner = _inner_model(arg)
            if inner is not None:
                return inner
    return None


def _describe(error: dict[str, Any], root: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    owner = _model_at(root, loc)
    name = loc[-1] if loc else None
    if kind == "extra_forbidden" and owner is not None:
        allowed = list(owner.model_fields)
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"unknown field '{name}': {hint}allowed here: {', '.join(allowed)}"
    message = error["msg"].removeprefix("Value error, ")
    if kind == "missing":
        message = "required field is missing"
    elif kind == "string_pattern_mismatch":
        message = f"{error['input']!r} is not allowed here"
    value = error.get("input")
    if kind not in ("missing", "value_error", "string_pattern_mismatch") and isinstance(
        value, str | int | float | bool
    ):
        shown = "***" if "password" in str(name).lower() else repr(value)
        message += f", got {shown}"
    field = owner.model_fields.get(str(name)) if owner is not None and name is not None else None
    if field is not None and field.description and kind != "value_error":
        message += f" ({field.description})"
    return message


def validation_problems(
    error: ValidationError, root: type[BaseModel], document: yaml.Node | None = None
) -> list[str]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        line = _line_of(document, loc) if document is not None else None
        where = format_loc(loc) + (f" (line {line})" if line else "")
        problems.append(f"{where}: {_describe(dict(item), root)}")
    return problems


@dataclass(frozen=True)
class LoadedConfig:
    config: SharpEyesConfig
    path: Path


def parse_config(
    text: str, source: str = "<config>", environ: typing.Mapping[str, str] | None = None
) -> SharpEyesConfig:
    """Validate config text; raises ``ConfigError`` listing every problem found."""
    try:
        document = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(
            source, [f"{where}not valid YAML ({problem}); check indentation and quoting"]
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must be a mapping of sections (cameras:, redis:, …)"])
    try:
        data = interpolate(data, os.environ if environ is None else environ)
    except _MissingEnv as missing:
        raise ConfigError(
            source,
            [
                f"{missing.path}: environment variable ${{{missing.name}}} is not set; set it "
                f"or give a default as ${{{missing.name}:-value}}"
            ],
        ) from None
    try:
        return SharpEyesConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(source, validation_problems(error, SharpEyesConfig, document)) from None


def load_config(path: Path | str, environ: typing.Mapping[str, str] | None = None) -> LoadedConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            str(path),
            [
                "file not found: pass --config with the path of your config "
                "(see examples/sharpeyes.example.yaml)"
            ],
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(str(path), [f"cannot read the file: {error}"]) from None
    return LoadedConfig(parse_config(text, str(path), environ), path)
