"""The one exception type users see: a single line that names the file, the field and the fix."""

# Characters str.splitlines() breaks at: in a message they are shown escaped, so it stays one line whatever a file,
# a label or a flag value quoted in it holds.
LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


class SentituneError(Exception):
    """Bad input or an impossible request. The CLI prints it as one line and exits with code 2."""

    def __init__(self, message: object = "", *args):
        super().__init__(str(message).translate(LINE_BREAKS), *args)
