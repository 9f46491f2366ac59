"""Test data shared by the checks/identity/evidence engine tests: generated PKI and tool-output samples."""
