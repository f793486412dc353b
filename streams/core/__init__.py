"""The per-event core: pure functions and plain state, no Faust, no I/O.

Decoding and validating a record, routing it to NetSuite rows, the variance math of
positions and their exact dedupe, the per-partition progress floor, the pending rows and
ack gate, the dead-letter format and the lag statuses. The worker, the ops tools and the
unit tests all run the same code here."""
