"""``affectlab list METHOD``: a method's summary, presets and options (imports the method)."""

from __future__ import annotations

from typing import Any

from pydantic.fields import FieldInfo


def method_lines(spec: str) -> list[str]:
    """Lines describing the method ``spec`` names: summary, protocols, data presets, its
    hyper-parameter presets (what each changes) and every option with type, default and
    description."""
    from affectlab.plugins import resolve_method

    cls = resolve_method(spec)
    protocols = ", ".join(cls.protocols) if cls.protocols is not None else "all"
    data = ", ".join(f"{d}: {p}" for d, p in cls.data_presets.items()).replace("*:", "any:")
    lines = [f"{spec}: {cls.summary or cls.__doc__ or ''}".rstrip(),
             f"protocols: {protocols}" + ("  (transductive)" if cls.transductive else ""),
             f"data preset: {data}", "presets (--method-preset):"]
    for name, values in cls.presets.items():
        changes = ", ".join(f"{k}={_show(v)}" for k, v in values.items()) or "the defaults"
        lines.append(f"  {name:14s} {changes}")
    fields = cls.Config.model_fields
    lines.append("options (--set method.<option>=value; type, default, description):"
                 if fields else "options: none")
    rows = [(name, _type(info), _default(info), info.description or "")
            for name, info in fields.items()]
    widths = [max((len(row[k]) for row in rows), default=0) for k in range(3)]
    for row in rows:
        lines.append("  " + "  ".join(f"{cell:{w}s}" for cell, w in zip(row, widths,
                                                                      strict=False)).rstrip()
                     + (f"  {row[3]}" if row[3] else ""))
    return lines


def _type(info: FieldInfo) -> str:
    """``float``, ``list[int]``, ``Literal['balanced'] | None``, ..."""
    annotation = info.annotation
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    text = str(annotation).replace("typing.", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text.removeprefix("Optional[")[:-1] + " | None"
    return text


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return _show(info.default_factory())
    return _show(info.default)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)
