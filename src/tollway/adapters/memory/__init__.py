"""In-memory fakes of every port, for unit tests and contract tests."""
