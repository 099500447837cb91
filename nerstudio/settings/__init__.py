"""Settings package: `base` is the one configuration, read from the environment (production and the
embedded default alike); `test` adjusts it for the test suite."""
