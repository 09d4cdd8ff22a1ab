"""Reads the facts the ipk builder and the checks need from an OpenWrt package Makefile.

Only the simple forms these recipes use are understood: `VAR:=value` assignments at top level
and `define Package/<name>[/part] ... endef` blocks with `KEY:=value` lines (a trailing
backslash continues a line). Anything cleverer is reported rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_ASSIGNMENT = re.compile(r"^\s*([A-Z0-9_]+)\s*[:+?]?=\s*(.*?)\s*$")
_DEFINE = re.compile(r"^define\s+(\S+)\s*$")


class RecipeError(ValueError):
    pass


@dataclass(frozen=True)
class Package:
    name: str
    variables: dict[str, str]
    description: str
    conffiles: tuple[str, ...]

    @property
    def depends(self) -> tuple[str, ...]:
        """DEPENDS as package names; only plain `+name` entries are allowed here."""
        names = []
        for token in self.variables.get("DEPENDS", "").split():
            if not re.fullmatch(r"\+[a-z0-9][a-z0-9.+_-]*", token):
                raise RecipeError(f"{self.name}: unsupported DEPENDS entry '{token}'")
            names.append(token[1:])
        return tuple(names)


@dataclass(frozen=True)
class Recipe:
    path: Path
    variables: dict[str, str]
    blocks: dict[str, list[str]]

    def variable(self, name: str) -> str:
        try:
            return self.variables[name]
        except KeyError:
            raise RecipeError(f"{self.path}: no {name}") from None

    @property
    def version(self) -> str:
        return self.variable("PKG_VERSION")

    @property
    def release(self) -> str:
        return self.variable("PKG_RELEASE")

    def prepared_sources(self, variable: str) -> tuple[str, ...]:
        """The paths below $(variable) that Build/Prepare copies into the build directory."""
        body = "\n".join(self.blocks.get("Build/Prepare", []))
        found = re.findall(rf"\$\({re.escape(variable)}\)/([^\s\\]+)", body)
        return tuple(dict.fromkeys(found))

    def package(self, name: str) -> Package:
        body = self.blocks.get(f"Package/{name}")
        if body is None:
            raise RecipeError(f"{self.path}: no 'define Package/{name}'")
        variables = dict(_assignments(body))
        description = "\n".join(self.blocks.get(f"Package/{name}/description", [])).strip()
        conffiles = tuple(line.strip() for line in self.blocks.get(f"Package/{name}/conffiles",
                                                                    []) if line.strip())
        return Package(name, variables, description, conffiles)


def _logical_lines(lines: list[str]) -> list[str]:
    joined: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    return joined


def _assignments(lines: list[str]) -> list[tuple[str, str]]:
    result = []
    for line in _logical_lines(lines):
        match = _ASSIGNMENT.match(line)
        if match:
            result.append((match.group(1), " ".join(match.group(2).split())))
    return result


def read_recipe(path: Path) -> Recipe:
    lines = path.read_text().splitlines()
    top: list[str] = []
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if current is not None:
            if line.strip() == "endef":
                current = None
            else:
                current.append(line)
            continue
        match = _DEFINE.match(line)
        if match:
            current = blocks.setdefault(match.group(1), [])
        else:
            top.append(line)
    if current is not None:
        raise RecipeError(f"{path}: 'define' without 'endef'")
    return Recipe(path, dict(_assignments(top)), blocks)
