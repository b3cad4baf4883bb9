"""The errors of reading data: a system's files missing or malformed."""


class DataError(ValueError):
    """A training or test system whose files are missing or malformed."""


class SystemNotFoundError(DataError, FileNotFoundError):
    """A system path that is not a directory holding type.raw (DeePMD-kit raises OSError)."""
