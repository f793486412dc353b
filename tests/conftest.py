"""Fixtures every tier may use: the brokers (`tests.fixtures.broker`)."""

pytest_plugins = ("tests.fixtures.broker", "tests.fixtures.secure_kafka")
