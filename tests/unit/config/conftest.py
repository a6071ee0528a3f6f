from tests.unit.isolated_config import WriteFile, isolated, write

__all__ = ["WriteFile", "isolated", "write"]
