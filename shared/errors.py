"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (config, file, data). The message names the key/file/field."""


class ConfigError(UserError):
    """A config file or override is wrong: unknown key, wrong type, missing file."""


class DataError(UserError):
    """A data file or array is wrong: missing key, wrong shape, corrupt content, NaN."""
