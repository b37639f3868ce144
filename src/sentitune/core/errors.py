"""The one exception type users see: a single line that names the file, the field and the fix."""


class SentituneError(Exception):
    """Bad input or an impossible request. The CLI prints it as one line and exits with code 2."""
