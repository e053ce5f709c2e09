"""One exception type for bad user input, so notebooks and tests can catch it precisely."""


class ParameterError(ValueError):
    """A parameter has a value the workbook cannot use; the message names it and what is expected."""

    def __init__(self, parameter: str, expected: str, got=None):
        self.parameter, self.expected, self.got = parameter, expected, got
        message = f"parameter '{parameter}': expected {expected}"
        if got is not None:
            message += f", got {got!r}"
        super().__init__(message)
