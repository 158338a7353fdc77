"""Regular-expression fragments for the API's document that mean in a JSON Schema validator (ECMA
262 regular expressions) exactly what the Python code that enforces them means.

`\\s` is not one of them: ECMA's whitespace differs from `str.isspace()` (it leaves out \\x1c-\\x1f and
\\x85, and adds \\ufeff), so a pattern using it would call valid what `str.strip()` finds blank.
"""

from __future__ import annotations

# The characters `str.isspace()` is true for that are not control characters (C0), and all of them,
# as character-class bodies.
SPACES = r" \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f" + SPACES
