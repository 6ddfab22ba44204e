"""A tiny CloudFormation reader: YAML with the short intrinsic tags (`!Ref`, `!Sub`, `!GetAtt`,
`!If`, ...), `Ref` resolved to parameter defaults, pseudo parameters and the physical names of
the few resources the local stack creates. Anything it cannot resolve is `None`, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_REGION = "ap-south-1"
LOCAL_ACCOUNT_ID = "123456789012"


class TemplateError(ValueError):
    """template.yaml does not describe what the local stack needs."""


@dataclass(frozen=True)
class Tagged:
    """A short-form intrinsic function as written in YAML (`!Sub "..."`)."""

    name: str
    value: Any


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps `!Tag value` as `Tagged("Fn::Tag"/"Ref", value)`."""


def _construct_tagged(loader: _Loader, suffix: str, node: yaml.Node) -> Tagged:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return Tagged(name, value)


_Loader.add_multi_constructor("!", _construct_tagged)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template (short intrinsic tags allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateError(f"template not found: {path}") from None
    document = yaml.load(text, Loader=_Loader)
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return document


class _Unresolved(Exception):
    pass


@dataclass
class Resolver:
    """Evaluates intrinsic functions against parameter defaults and known physical names."""

    template: Mapping[str, Any]
    region: str = DEFAULT_REGION
    account_id: str = LOCAL_ACCOUNT_ID
    stack_name: str = "local"
    parameters: dict[str, Any] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    """Physical names of resources, by logical ID (what `Ref` returns for them)."""
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in (self.template.get("Parameters") or {}).items():
            if name not in self.parameters and isinstance(spec, dict) and "Default" in spec:
                self.parameters[name] = spec["Default"]

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
        }

    def resolve(self, value: Any) -> Any:
        """The value with every intrinsic evaluated; `None` where that is not possible."""
        try:
            return self._eval(value)
        except _Unresolved:
            return None

    def _ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.names:
            return self.names[name]
        raise _Unresolved(name)

    def _condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions") or {}
        if name not in conditions:
            raise _Unresolved(name)
        return bool(self._eval(conditions[name]))

    def _eval(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._lenient(item) for item in value]
        if isinstance(value, Tagged):
            return self._intrinsic(value.name, value.value)
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                    return self._intrinsic(key, arg)
            return {key: self._lenient(item) for key, item in value.items()}
        return value

    def _lenient(self, value: Any) -> Any:
        """Inside a list or mapping, an unresolvable member becomes `None`, not the whole."""
        try:
            return self._eval(value)
        except _Unresolved:
            return None

    def _intrinsic(self, name: str, arg: Any) -> Any:
        if name == "Ref":
            return self._ref(self._eval(arg))
        if name == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            local = {key: self._eval(item) for key, item in variables.items()}

            def substitute(match: re.Match[str]) -> str:
                token = match.group(1)
                if token.startswith("!"):
                    return "${" + token[1:] + "}"
                if token in local:
                    return str(local[token])
                if "." in token:
                    return str(self._getatt(*token.split(".", 1)))
                return str(self._ref(token))

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
        if name == "Fn::GetAtt":
            logical_id, attribute = self._eval(arg)
            return self._getatt(logical_id, attribute)
        if name == "Fn::If":
            condition, when_true, when_false = arg
            chosen = when_true if self._condition(condition) else when_false
            if isinstance(chosen, dict) and chosen.get("Ref") == "AWS::NoValue":
                return None
            if (
                isinstance(chosen, Tagged)
                and chosen.name == "Ref"
                and chosen.value == "AWS::NoValue"
            ):
                return None
            return self._eval(chosen)
        if name == "Fn::Equals":
            left, right = (self._eval(item) for item in arg)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self._eval(arg[0])
        if name == "Fn::And":
            return all(self._eval(item) for item in arg)
        if name == "Fn::Or":
            return any(self._eval(item) for item in arg)
        if name == "Condition":
            return self._condition(arg)
        if name == "Fn::Join":
            separator, items = arg
            return str(separator).join(str(item) for item in self._eval(items))
        if name == "Fn::Select":
            index, items = arg
            return self._eval(items)[int(self._eval(index))]
        raise _Unresolved(name)

    def _getatt(self, logical_id: str, attribute: str) -> Any:
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        raise _Unresolved(f"{logical_id}.{attribute}")
