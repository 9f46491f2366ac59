"""Contract check: rendered install documents validated against upstream API definitions.

The definitions are fetched by `.ci/contract/fetch-upstream` (pins in `.ci/contract/versions.txt`) into
`.cache/contract/`; a small Go program built from `.ci/contract/checker/` runs the upstream decoders and
validators. This package turns an install plan into check items, runs them, and reports findings.
"""
