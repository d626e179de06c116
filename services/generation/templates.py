"""The template catalogue: templates as data, validated at load, rendered safely.

A template is a system prompt and a user-prompt skeleton with `{{name}}` placeholders, plus typed options.
Each skeleton is filled in one regex pass, so the user's prompt and option strings are inserted literally:
whatever they contain (`{{tone}}`, `{% for %}`, `{{__class__}}`) is never read as template syntax.

File format (templates.yaml and admin files):

    shared_options:            # reusable option definitions, referenced as `- use: tone`
      tone: {type: enum, values: [...], default: friendly, description: ..., phrase: "Write in a {{value}} tone."}
    templates:
      - code: bio-instagram
        name: ...
        description: ...
        category: social
        max_tokens: 200        # optional
        model: ...             # optional
        system: ...            # may use option placeholders, never {{prompt}}
        prompt: ...            # must use {{prompt}}
        options:
          - use: tone          # a shared option; the other keys here override its fields
            default: witty
          - {name: count, type: integer, min: 1, max: 5, default: 3, description: ..., phrase: "Write {{value}} options."}

An option reads in the prompt as its `phrases` entry for the value (enum, boolean), else its `phrase` with
`{{value}}` filled in (an empty string reads as nothing), else the value itself. A skeleton line made only of
placeholders that all read as nothing is left out, so optional instructions leave no blank gaps.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BUILTIN_FILE = Path(__file__).resolve().parent / "templates.yaml"

OPTION_TYPES = ("enum", "boolean", "integer", "number", "string")

FREESTYLE_SYSTEM = (
    "You are a skilled, precise writing assistant. Do what the user asks and reply with the finished content "
    "only: no preamble, no notes about what you did."
)

_PROMPT = "prompt"
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_CODE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_OPTION_NAME = re.compile(r"[a-z][a-z0-9_]*")

_TEMPLATE_KEYS = {"code", "name", "description", "category", "max_tokens", "model", "system", "prompt", "options"}
_OPTION_KEYS = {"name", "type", "description", "default", "required", "phrase"}
_TYPE_KEYS = {
    "enum": {"values", "phrases"},
    "boolean": {"phrases"},
    "integer": {"min", "max"},
    "number": {"min", "max"},
    "string": {"max_length"},
}


class TemplateError(Exception):
    """A bad template (raised at load) or a bad request against one (raised at render)."""


class UnknownTemplate(TemplateError):
    def __init__(self, code: str) -> None:
        super().__init__(f"Unknown template {code!r}.")
        self.code = code


class InvalidOptions(TemplateError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class TemplateOption:
    name: str
    type: str
    description: str
    default: Any
    required: bool
    values: tuple[str, ...] = ()
    minimum: int | float | None = None
    maximum: int | float | None = None
    max_length: int | None = None
    # How a value reads inside the prompt (see the module docstring).
    phrases: tuple[tuple[str | bool, str], ...] = ()
    phrase: str | None = None

    def check(self, value: Any) -> Any:
        """The value as the template uses it, or InvalidOptions saying what is allowed."""
        field = f"options.{self.name}"
        if self.type == "enum":
            if isinstance(value, str) and value in self.values:
                return value
            raise InvalidOptions(field, f"{field} must be one of: {', '.join(self.values)} (got {_show(value)}).")
        if self.type == "boolean":
            # Strictly a bool: "false" and 0 are truthy or ambiguous, and a typo should not flip a switch.
            if isinstance(value, bool):
                return value
            raise InvalidOptions(field, f"{field} must be true or false (got {_show(value)}).")
        if self.type == "string":
            if not isinstance(value, str):
                raise InvalidOptions(field, f"{field} must be a string (got {_show(value)}).")
            if self.max_length is not None and len(value) > self.max_length:
                raise InvalidOptions(field, f"{field} must be at most {self.max_length} characters (got {len(value)}).")
            return value
        number = _as_number(value, integer=self.type == "integer")
        if (
            number is None
            or (self.minimum is not None and number < self.minimum)
            or (self.maximum is not None and number > self.maximum)
        ):
            kind = "an integer" if self.type == "integer" else "a number"
            raise InvalidOptions(field, f"{field} must be {kind}{self._range()} (got {_show(value)}).")
        return number

    def text(self, value: Any) -> str:
        """How the (checked) value reads inside the prompt."""
        for key, phrase in self.phrases:
            if key == value and type(key) is type(value):
                return phrase
        if self.phrase is not None:
            return "" if value == "" else _fill(self.phrase, {"value": _plain(value)})
        return _plain(value)

    def _range(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f" from {_plain(self.minimum)} to {_plain(self.maximum)}"
        if self.minimum is not None:
            return f" of at least {_plain(self.minimum)}"
        if self.maximum is not None:
            return f" of at most {_plain(self.maximum)}"
        return ""


@dataclass(frozen=True, slots=True)
class Template:
    code: str
    name: str
    description: str
    category: str
    options: tuple[TemplateOption, ...]
    max_tokens: int | None
    model: str | None
    system: str  # skeleton of the system prompt
    prompt: str  # skeleton of the user prompt; holds {{prompt}}

    def option(self, name: str) -> TemplateOption | None:
        return next((o for o in self.options if o.name == name), None)

    def render(self, prompt: str, options: Mapping[str, Any] | None) -> RenderedPrompt:
        given = dict(options or {})
        for name in sorted(given):
            if self.option(name) is None:
                takes = f"it takes: {', '.join(o.name for o in self.options)}" if self.options else "it takes none"
                raise InvalidOptions(f"options.{name}", f"Unknown option {name!r} for template {self.code!r}; {takes}.")
        resolved: dict[str, Any] = {}
        for option in self.options:
            # JSON null means "not given": clients often send every field and null the ones they leave at default.
            value = given.get(option.name)
            if value is not None:
                resolved[option.name] = option.check(value)
            elif option.required:
                raise InvalidOptions(f"options.{option.name}", f"options.{option.name} is required.")
            else:
                resolved[option.name] = option.default
        variables = {o.name: o.text(resolved[o.name]) for o in self.options}
        variables[_PROMPT] = prompt
        return RenderedPrompt(
            system=_fill(self.system, variables), user=_fill(self.prompt, variables), template=self.code, options=resolved
        )


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    system: str
    user: str
    template: str  # "" for freestyle
    options: dict[str, Any]  # resolved: given values checked, defaults filled in


class TemplateCatalogue:
    def __init__(self, templates: Iterable[Template] = ()) -> None:
        self._templates = {t.code: t for t in templates}

    @classmethod
    def load(cls, extra_files: Iterable[str] = (), extra_templates: Iterable[Mapping] = ()) -> TemplateCatalogue:
        """The built-in catalogue, then admin files, then inline templates; a later template replaces one with its code.

        Raises TemplateError naming the template and its problem: a gateway must not start with a broken catalogue.
        """
        shared: dict[str, Mapping] = {}
        templates: dict[str, Template] = {}
        for path in [BUILTIN_FILE, *map(Path, extra_files)]:
            shared_raw, templates_raw = _read_file(path)
            for name, spec in shared_raw.items():
                _parse_option({"name": name, **_mapping(spec, f"shared option {name!r} in {path}")}, f"shared_options in {path}")
                shared[name] = spec
            templates.update(_parse_templates(templates_raw, shared, str(path)))
        templates.update(_parse_templates(list(extra_templates), shared, "generation.templates"))
        return cls(templates.values())

    def get(self, code: str) -> Template | None:
        return self._templates.get(code)

    def all(self) -> list[Template]:
        return sorted(self._templates.values(), key=lambda t: (t.category, t.code))

    def render(self, code: str | None, prompt: str, options: Mapping[str, Any] | None) -> RenderedPrompt:
        if not code:
            if options:
                raise InvalidOptions("options", "Options need a template: freestyle generation takes none.")
            return RenderedPrompt(system=FREESTYLE_SYSTEM, user=prompt, template="", options={})
        template = self._templates.get(code)
        if template is None:
            raise UnknownTemplate(code)
        return template.render(prompt, options)


def _fill(skeleton: str, variables: Mapping[str, str]) -> str:
    # One pass per line over the skeleton: substituted text is never scanned again, so it stays literal.
    lines = []
    for line in skeleton.strip().splitlines():
        filled = _PLACEHOLDER.sub(lambda m: variables[m.group(1)], line)
        only_placeholders = _PLACEHOLDER.search(line) and not _PLACEHOLDER.sub("", line).strip()
        if filled.strip() or not only_placeholders:
            lines.append(filled)
    return "\n".join(lines)


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _show(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_number(value: Any, *, integer: bool) -> int | float | None:
    # bool is an int subclass, and true is not a count.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        # Struct carries every JSON number as a double: 3.0 is the integer 3, 3.5 is not an integer.
        if integer:
            return int(value) if value.is_integer() else None
    return value


# --- loading ---------------------------------------------------------------------------------------------------


def _fail(where: str, problem: str) -> TemplateError:
    return TemplateError(f"{where}: {problem}")


def _mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected a mapping, got {type(value).__name__}")
    return value


def _read_file(path: Path) -> tuple[Mapping, list]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"template file {path}", f"cannot be read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise _fail(f"template file {path}", f"is not valid YAML ({exc})") from exc
    if document is None:
        return {}, []
    document = _mapping(document, f"template file {path}")
    unknown = set(document) - {"shared_options", "templates"}
    if unknown:
        raise _fail(f"template file {path}", f"unknown top-level keys {sorted(map(str, unknown))} (expected shared_options, templates)")
    shared = _mapping(document.get("shared_options") or {}, f"shared_options in {path}")
    templates = document.get("templates") or []
    if not isinstance(templates, list):
        raise _fail(f"template file {path}", "'templates' must be a list")
    return shared, templates


def _parse_templates(raws: list, shared: Mapping[str, Mapping], source: str) -> dict[str, Template]:
    parsed: dict[str, Template] = {}
    for index, raw in enumerate(raws):
        template = _parse_template(raw, shared, source, index)
        if template.code in parsed:
            raise _fail(f"template {template.code!r} ({source})", "defined twice in the same source")
        parsed[template.code] = template
    return parsed


def _parse_template(raw: Any, shared: Mapping[str, Mapping], source: str, index: int) -> Template:
    raw = _mapping(raw, f"{source}, template #{index + 1}")
    code = raw.get("code")
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise _fail(f"{source}, template #{index + 1}", f"'code' must be kebab-case like 'bio-instagram' (got {code!r})")
    where = f"template {code!r} ({source})"
    unknown = set(raw) - _TEMPLATE_KEYS
    if unknown:
        raise _fail(where, f"unknown keys {sorted(map(str, unknown))}")
    for key in ("name", "description", "category", "system", "prompt"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise _fail(where, f"'{key}' must be a non-empty string")
    max_tokens = raw.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _fail(where, f"'max_tokens' must be a positive integer (got {max_tokens!r})")
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise _fail(where, f"'model' must be a model name (got {model!r})")

    options_raw = raw.get("options") or []
    if not isinstance(options_raw, list):
        raise _fail(where, "'options' must be a list")
    options: list[TemplateOption] = []
    for spec in options_raw:
        option = _parse_option(_resolve_use(_mapping(spec, f"{where}: option"), shared, where), where)
        if any(o.name == option.name for o in options):
            raise _fail(where, f"option {option.name!r} is defined twice")
        options.append(option)

    if _PROMPT in _PLACEHOLDER.findall(raw["system"]):
        raise _fail(where, "'system' must not use {{prompt}}: the user's text belongs in the user message")
    known = {_PROMPT, *(o.name for o in options)}
    _check_placeholders(raw["system"], known - {_PROMPT}, where, "'system'")
    _check_placeholders(raw["prompt"], known, where, "'prompt'")
    if _PROMPT not in _PLACEHOLDER.findall(raw["prompt"]):
        raise _fail(where, "'prompt' must use {{prompt}}, or the user's text would be dropped")
    return Template(
        code=code,
        name=raw["name"].strip(),
        description=raw["description"].strip(),
        category=raw["category"].strip(),
        options=tuple(options),
        max_tokens=max_tokens,
        model=model,
        system=raw["system"],
        prompt=raw["prompt"],
    )


def _resolve_use(spec: Mapping, shared: Mapping[str, Mapping], where: str) -> Mapping:
    if "use" not in spec:
        return spec
    name = spec["use"]
    if not isinstance(name, str) or name not in shared:
        raise _fail(where, f"option uses unknown shared option {name!r} (known: {', '.join(sorted(shared))})")
    overrides = {k: v for k, v in spec.items() if k != "use"}
    return {"name": name, **shared[name], **overrides}


def _parse_option(spec: Mapping, where: str) -> TemplateOption:
    name = spec.get("name")
    if not isinstance(name, str) or not _OPTION_NAME.fullmatch(name) or name == _PROMPT:
        raise _fail(where, f"option name must be snake_case and not 'prompt' (got {name!r})")
    where = f"{where}: option {name!r}"
    kind = spec.get("type")
    if kind not in OPTION_TYPES:
        raise _fail(where, f"unknown type {kind!r} (known: {', '.join(OPTION_TYPES)})")
    unknown = set(spec) - _OPTION_KEYS - _TYPE_KEYS[kind]
    if unknown:
        raise _fail(where, f"unknown keys for a {kind} option: {sorted(map(str, unknown))}")
    description = spec.get("description")
    if not isinstance(description, str) or not description.strip():
        raise _fail(where, "'description' must be a non-empty string")
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise _fail(where, "'required' must be true or false")

    values: tuple[str, ...] = ()
    if kind == "enum":
        raw_values = spec.get("values")
        if (
            not isinstance(raw_values, list)
            or not raw_values
            or not all(isinstance(v, str) and v for v in raw_values)
            or len(set(raw_values)) != len(raw_values)
        ):
            # YAML reads bare yes/no/on/off as booleans and 1 as a number: quote such values.
            raise _fail(where, f"'values' must be a list of distinct strings (got {raw_values!r})")
        values = tuple(raw_values)

    minimum, maximum = spec.get("min"), spec.get("max")
    for key, bound in (("min", minimum), ("max", maximum)):
        if bound is not None and _as_number(bound, integer=kind == "integer") != bound:
            raise _fail(where, f"'{key}' must be {'an integer' if kind == 'integer' else 'a number'} (got {bound!r})")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise _fail(where, f"'min' ({minimum}) is greater than 'max' ({maximum})")

    max_length = spec.get("max_length")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise _fail(where, f"'max_length' must be a positive integer (got {max_length!r})")

    phrases = _parse_phrases(spec.get("phrases"), kind, values, where)
    phrase = spec.get("phrase")
    if phrase is not None:
        if not isinstance(phrase, str):
            raise _fail(where, "'phrase' must be a string")
        _check_placeholders(phrase, {"value"}, where, "'phrase'")

    option = TemplateOption(
        name=name,
        type=kind,
        description=description.strip(),
        default=None,
        required=required,
        values=values,
        minimum=minimum,
        maximum=maximum,
        max_length=max_length,
        phrases=phrases,
        phrase=phrase,
    )
    if required:
        if spec.get("default") is not None:
            raise _fail(where, "a required option takes no default")
        return option
    if spec.get("default") is None:
        raise _fail(where, "needs a 'default' (or 'required: true')")
    try:
        default = option.check(spec["default"])
    except InvalidOptions as exc:
        raise _fail(where, f"invalid default: {exc}") from None
    return dataclasses.replace(option, default=default)


def _parse_phrases(raw: Any, kind: str, values: tuple[str, ...], where: str) -> tuple[tuple[str | bool, str], ...]:
    if raw is None:
        return ()
    raw = _mapping(raw, f"{where}: 'phrases'")
    allowed: tuple[str | bool, ...] = values if kind == "enum" else (True, False)
    pairs = []
    for key, text in raw.items():
        if not any(key == a and type(key) is type(a) for a in allowed):
            raise _fail(where, f"'phrases' has key {key!r}, which is not a value of the option ({', '.join(map(_plain, allowed))})")
        if not isinstance(text, str):
            raise _fail(where, f"'phrases' entry for {key!r} must be a string")
        pairs.append((key, text))
    return tuple(pairs)


def _check_placeholders(text: str, known: set[str], where: str, label: str) -> None:
    for name in _PLACEHOLDER.findall(text):
        if name not in known:
            raise _fail(where, f"{label} uses {{{{{name}}}}}, which names no variable (known: {', '.join(sorted(known))})")
    leftover = _PLACEHOLDER.sub("", text)
    if "{{" in leftover or "}}" in leftover:
        raise _fail(where, f"{label} has a malformed placeholder (write {{{{name}}}})")
