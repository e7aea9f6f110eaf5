"""Small code samples shared by the RLAIF tests."""

PY_GOOD = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n'
PY_GOOD2 = "def mul(a, b):\n    # product\n    return a * b\n"
CPP_GOOD = "// Adds two ints.\nint add(int a, int b) {\n    return a + b;\n}\n"
RUST_GOOD = "/// Adds.\npub fn add(a: i64, b: i64) -> i64 {\n    a + b\n}\n"
JS_GOOD = "/** Adds. */\nfunction add(a, b) {\n  return a + b;\n}\n"
