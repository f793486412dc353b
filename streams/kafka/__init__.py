"""Kafka access shared by the worker and the ops tools (aiokafka, never Faust): client and
security options, topic creation, offset and high-watermark reading, changelog reading
and ending, and the group lag report."""
