"""Errors raised by the management services; the CLI turns them into messages."""


class ServiceError(Exception):
    """A management operation that cannot be carried out, with a message for humans."""


class NotFound(ServiceError):
    pass


class AlreadyExists(ServiceError):
    pass


class InvalidValue(ServiceError):
    pass
