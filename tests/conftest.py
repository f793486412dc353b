"""Fixtures every tier may use: the brokers, the secured Kafka and the destination sites."""

pytest_plugins = (
    "tests.fixtures.broker",
    "tests.fixtures.browser",
    "tests.fixtures.secure_kafka",
    "tests.fixtures.sites",
)
