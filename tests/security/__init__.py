"""Security tests: the reproductions of issue 19 against a running school."""
