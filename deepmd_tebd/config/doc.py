"""Documentation of the input script, generated from the schema (`dp doc-train-input`)."""
from __future__ import annotations

import json

from . import schema as S


def _type_text(node: dict) -> str:
    if "x-expect" in node:
        return node["x-expect"]
    types = node.get("type", "any")
    return " | ".join(types) if isinstance(types, list) else types


def _lines(node: dict, path: str, out: list[str]) -> None:
    for key, sub in node.get("properties", {}).items():
        here = f"{path}/{key}" if path else key
        if "x-unsupported" in sub:
            continue
        head = f"{here} ({_type_text(sub)}"
        if "default" in sub:
            head += f", default {json.dumps(sub['default'])}"
        elif key in node.get("required", []):
            head += ", required"
        else:
            head += ", optional"
        head += ")"
        if sub.get("x-alias"):
            head += f" [alias: {', '.join(sub['x-alias'])}]"
        out.append(head)
        if sub.get("description"):
            out.append(f"    {sub['description']}")
        if "enum" in sub:
            out.append(f"    one of: {', '.join(map(str, sub['enum']))}")
        _lines(sub, here, out)
        for vpath, implemented in S.VARIANTS.items():
            if "/".join(vpath) == here:
                for tag, vschema in implemented.items():
                    if tag in S.VARIANT_ALIASES:
                        continue
                    out.append(f"  when {here}/type = {tag}:")
                    _lines(vschema, here, out)


def document(out_type: str = "rst") -> str:
    """The documentation as text (rst-style definition list) or as the JSON Schema itself."""
    if out_type == "json":
        variants = {"/".join(path): {tag: node for tag, node in implemented.items()}
                    for path, implemented in S.VARIANTS.items()}
        return json.dumps({"schema": S.ROOT, "variants": variants}, indent=2)
    out = ["DeePMD-kit v2 input script, as read by deepmd_tebd", ""]
    _lines(S.ROOT, "", out)
    return "\n".join(out)
