"""One exception type for mistakes a user can fix; the CLI prints it as one line, no traceback."""


class UserError(Exception):
    """Bad input, missing file or unknown name. The message names the file, row or argument."""
