"""Texts both sides use, from texts.json, which the Go side embeds too (python/texts.go).

The Go side checks a task's settings before it hands the task over; the task process checks
them again in case something else called it, and says the same thing in the same words.
"""

import json
import os

with open(os.path.join(os.path.dirname(__file__), "texts.json"), encoding="utf-8") as _f:
    _TEXTS = json.load(_f)


def text(name: str, **values) -> str:
    """The text called name, with each {key} replaced by values[key]."""
    result = _TEXTS[name]
    for key, value in values.items():
        result = result.replace("{" + key + "}", str(value))
    return result
