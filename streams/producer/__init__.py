"""The OMS side: `VarianceProducer`, the client that OMS services publish events with, and
the `variance-sync publish` command on top of it."""
